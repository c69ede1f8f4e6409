"""The publisher's side: seal every shard once per holder, pin each replica in its holder's store, and write the
manifest. Which nodes hold which shard is the caller's input (the on-chain rendezvous ranking decides it; this
module does not rank)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from workers.protocol.merkle import merkle_root
from workers.storage import ContentStore, cid_of_bytes, parse_cid

from .crypto import key_hash, node_bytes, seal_replica
from .errors import ShardError
from .layout import ShardedVersion
from .manifest import Manifest, PublicFile, Replica, ShardEntry


def seal_and_pin(
    plaintext: bytes, version_key: bytes, *, version: int, shard: int, node: str, store: ContentStore
) -> Replica:
    """Seal node `node`'s replica of a shard, pin it in `store` and return its manifest entry (CID, Merkle root,
    size in bytes). Raises ShardError when the store names the replica by another CID than its content's."""
    replica = seal_replica(plaintext, version_key, version=version, shard=shard, node=node)
    cid = store.add_bytes(replica)
    if parse_cid(cid).v1() != cid_of_bytes(replica):
        raise ShardError(f"shard {shard}: {store.location} named the replica of {node} {cid}, not its content's CID")
    return Replica(node=node.lower(), cid=cid, merkle_root=merkle_root(replica), size=len(replica))


def publish_version(
    sharded: ShardedVersion,
    version_key: bytes,
    *,
    version: int,
    base_model: str,
    assignment: Mapping[int, Sequence[str]],
    stores: Mapping[str, ContentStore],
) -> Manifest:
    """Seal and pin every shard of `sharded` for each of its holders, pin the public loader files with every holder,
    and return the manifest (not pinned: pin `manifest.to_json()` where the version record points).

    Args:
        version_key: the 32-byte version key (`new_version_key`); only keccak(key) enters the manifest.
        version: the registry's version number (bound into each replica's associated data).
        assignment: shard index -> holder addresses (0x-hex), as the on-chain ranking assigns them.
        stores: holder address -> the content store that holder pins into.
    Raises ShardError for a shard without holders, a bad holder address or a holder without a store;
    StorageError from the stores.
    """
    entries = []
    for shard in sharded.shards:
        holders = list(assignment.get(shard.index, ()))
        if not holders:
            raise ShardError(f"shard {shard.index} has no holders assigned")
        for node in holders:
            node_bytes(node)
            if node not in stores:
                raise ShardError(f"shard {shard.index}: holder {node} has no store")
        replicas = tuple(
            seal_and_pin(
                shard.plaintext, version_key, version=version, shard=shard.index, node=node, store=stores[node]
            )
            for node in holders
        )
        entries.append(
            ShardEntry(
                index=shard.index,
                part=shard.part,
                layers=shard.layers,
                tensors=shard.tensors,
                size=len(shard.plaintext),
                sha256=shard.sha256,
                replicas=replicas,
            )
        )
    every_holder = dict.fromkeys(node for nodes in assignment.values() for node in nodes)
    files = []
    for name, content in sorted(sharded.files.items()):
        cids = {stores[node].add_bytes(content) for node in every_holder}
        files.append(PublicFile(name=name, cid=cids.pop(), size=len(content), sha256=hashlib.sha256(content).digest()))
    return Manifest(
        version=version,
        base_model=base_model,
        weights_hash=sharded.weights_hash,
        key_hash=key_hash(version_key),
        aliases=sharded.aliases,
        files=tuple(files),
        shards=tuple(entries),
    )
