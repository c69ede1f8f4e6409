"""The buyer's side: fetch every shard from any of its holders, verify it, decrypt it, rebuild the state dict, check
the registry's weights hash, and write a folder `transformers` loads (model.safetensors + config + tokenizer).

A replica is accepted only if, in this order: its size is the manifest's, its bytes hash to the manifest's CID, its
chunk Merkle root (workers.protocol.merkle) is the manifest's, it decrypts under the key derived for its holder
(the AES-GCM tag also authenticates version, shard and node), its plaintext's sha256 is the manifest's, and it
holds exactly the listed tensors. A holder that is down or serves a bad copy is skipped and the next one tried;
a shard no holder can serve is refused naming the shard and each holder's fault.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from workers.chain.client import ChainClient
from workers.chain.module import cid_from_chain, struct_of
from workers.chain.registry import base_deltas
from workers.ml.models import VERSION_FILE, state_dict_hash
from workers.protocol.merkle import merkle_root
from workers.storage import ContentStore, StorageError, cid_of_bytes, parse_cid

from .crypto import key_hash, open_replica
from .errors import KeyRejected, ShardError, ShardRejected, WeightsMismatch
from .layout import load_shard
from .manifest import MAX_MANIFEST_BYTES, Manifest, PublicFile, Replica, ShardEntry, parse_manifest

# fetch(node address, CID) -> the bytes that node serves for that CID. Raises StorageError (or OSError) when
# the node cannot serve it; the bytes are verified here, so the callable need not verify anything.
Fetch = Callable[[str, str], bytes]
WEIGHTS_FILE = "model.safetensors"


def fetch_from_stores(stores: Mapping[str, ContentStore]) -> Fetch:
    """A Fetch over one content store per node address (0x-hex, any case); an unknown node raises StorageError."""
    by_node = {node.lower(): store for node, store in stores.items()}

    def fetch(node: str, cid: str) -> bytes:
        store = by_node.get(node.lower())
        if store is None:
            raise StorageError(f"no store is known for node {node}")
        return store.get(cid)

    return fetch


@dataclass
class Assembly:
    """What `assemble` did: the folder written, the weights hash checked, the node each shard came from, and
    every holder fault seen on the way (unavailable or bad copies that were skipped)."""

    folder: Path
    weights_hash: str
    served_by: dict[int, str] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)


def _shard_label(entry: ShardEntry) -> str:
    if entry.layers is not None:
        return f"shard {entry.index} (layers {entry.layers[0]}-{entry.layers[1]})"
    return f"shard {entry.index} ({entry.part})"


def check_replica(entry: ShardEntry, replica: Replica, data: bytes, version_key: bytes, version: int) -> bytes:
    """The plaintext of `data`, served as `replica` of shard `entry`, after every check in the module docstring.

    Raises ShardRejected naming the shard, the holder and the first check that failed."""
    label = f"{_shard_label(entry)} from {replica.node}"
    if len(data) != replica.size:
        raise ShardRejected(f"{label}: {len(data):,} bytes, the manifest says {replica.size:,}")
    if cid_of_bytes(data) != parse_cid(replica.cid).v1():
        raise ShardRejected(f"{label}: the bytes do not match the CID {replica.cid}")
    if merkle_root(data) != replica.merkle_root:
        raise ShardRejected(f"{label}: the chunk Merkle root is not the manifest's")
    try:
        plaintext = open_replica(data, version_key, version=version, shard=entry.index, node=replica.node)
    except ShardRejected:
        raise ShardRejected(f"{label}: does not decrypt (AES-GCM tag) under the version key") from None
    if hashlib.sha256(plaintext).digest() != entry.sha256:
        raise ShardRejected(f"{label}: the decrypted plaintext's sha256 is not the manifest's")
    return plaintext


def fetch_shard(
    entry: ShardEntry, version_key: bytes, version: int, fetch: Fetch, faults: list[str]
) -> tuple[dict[str, torch.Tensor], str]:
    """(tensors, serving node) of one shard from the first holder whose copy verifies; the faults of holders tried
    before are appended to `faults`. Raises ShardRejected naming the shard when no holder serves a valid copy."""
    tried = []
    for replica in entry.replicas:
        try:
            data = fetch(replica.node, replica.cid)
        except (StorageError, OSError) as exc:
            tried.append(f"{replica.node} unavailable ({exc})")
            continue
        try:
            plaintext = check_replica(entry, replica, data, version_key, version)
            tensors = load_shard(entry.index, plaintext, entry.tensors)
        except ShardRejected as exc:
            tried.append(str(exc))
            continue
        faults.extend(f"{_shard_label(entry)}: {fault}" for fault in tried)
        return tensors, replica.node
    raise ShardRejected(f"{_shard_label(entry)}: no holder served a valid copy: " + "; ".join(tried))


def fetch_file(manifest: Manifest, entry: PublicFile, fetch: Fetch) -> bytes:
    """A public loader file from the first holder that serves the right bytes. Raises ShardError if none does."""
    tried = []
    for node in manifest.holders:
        try:
            content = fetch(node, entry.cid)
        except (StorageError, OSError) as exc:
            tried.append(f"{node} unavailable ({exc})")
            continue
        if len(content) == entry.size and hashlib.sha256(content).digest() == entry.sha256:
            return content
        tried.append(f"{node} served other bytes")
    raise ShardError(f"file {entry.name}: no holder served it: " + "; ".join(tried))


def assemble(
    manifest: Manifest,
    version_key: bytes,
    fetch: Fetch,
    target: str | Path,
    *,
    weights_hash: str,
    record: Mapping[str, Any] | None = None,
) -> Assembly:
    """Fetch, verify, decrypt and assemble a version into the new folder `target` (model.safetensors, config and
    tokenizer files), loadable with `AutoModelForCausalLM.from_pretrained(target)`.

    Args:
        version_key: the 32-byte key (from `combine_shares`); must hash to the manifest's key hash.
        fetch: where replicas come from (see `Fetch`, `fetch_from_stores`).
        weights_hash: the version's weights hash as the registry holds it (0x-hex), not the manifest's word.
        record: written as `deepshard-version.json` (workers.ml.models.VERSION_FILE) once the weights checked out.
    Returns an Assembly. Raises KeyRejected (wrong key), ShardRejected (a shard no holder serves intact, named),
    WeightsMismatch (the manifest or the assembled weights are not the registry's), ShardError (target exists,
    a loader file is missing). Nothing is left at `target` on any error.
    """
    if manifest.weights_hash != weights_hash:
        raise WeightsMismatch(
            f"the manifest is for weights {manifest.weights_hash}, the registry's version is {weights_hash}"
        )
    if key_hash(version_key) != manifest.key_hash:
        raise KeyRejected("the version key does not hash to the manifest's key hash")
    target = Path(target)
    if target.exists():
        raise ShardError(f"{target} already exists; assemble writes a new folder")
    result = Assembly(folder=target, weights_hash=weights_hash)
    state: dict[str, torch.Tensor] = {}
    for entry in manifest.shards:
        tensors, node = fetch_shard(entry, version_key, manifest.version, fetch, result.faults)
        state.update(tensors)
        result.served_by[entry.index] = node
    files = {entry.name: fetch_file(manifest, entry, fetch) for entry in manifest.files}
    if record is not None:
        files[VERSION_FILE] = (json.dumps(dict(record), indent=2, sort_keys=True) + "\n").encode()
    full = dict(state)
    for alias, stored in manifest.aliases:
        full[alias] = full[stored]
    assembled = state_dict_hash(full)
    if assembled != weights_hash:
        raise WeightsMismatch(f"the assembled weights hash to {assembled}, not the registry's {weights_hash}")
    _write_folder(target, state, files)
    return result


def published_manifest(chain: ChainClient, store: ContentStore, version: int) -> tuple[str, Manifest]:
    """(CID, parsed manifest) of the shard manifest the publisher recorded for `version` in the ModelRegistry
    (`getVersion(version).shardManifestCid`), fetched from `store` (at most MAX_MANIFEST_BYTES, verified against
    its CID). Raises ShardError when the version has no manifest recorded (or is not registered), StorageError when
    the store cannot serve it, ManifestRejected (a ShardError) when it does not parse or is another version's."""
    models = chain.contract("ModelRegistry")
    latest = int(models.functions.latestVersion().call())
    if not 1 <= version <= latest:
        raise ShardError(f"version {version} is not registered: versions run from 1 to {latest}")
    recorded = bytes(struct_of(models, "getVersion", int(version))["shardManifestCid"])
    if not recorded:
        raise ShardError(f"version {version} has no shard manifest recorded yet (the publisher's step records it)")
    cid = cid_from_chain(recorded)
    manifest = parse_manifest(store.get(cid, max_size=MAX_MANIFEST_BYTES), what=f"the shard manifest {cid}")
    if manifest.version != version:
        raise ShardError(f"the shard manifest {cid} recorded for version {version} is version {manifest.version}'s")
    return cid, manifest


def assemble_version(
    chain: ChainClient,
    store: ContentStore,
    version: int,
    version_key: bytes,
    target: str | Path,
    *,
    fetch: Fetch | None = None,
    weights_hash: str | None = None,
) -> Assembly:
    """`assemble` of a registered version, from the manifest its publisher recorded (`published_manifest`), into a
    folder `deepshard serve --weights` serves: its `deepshard-version.json` holds the version, its base model, its
    lineage (the registry's delta CIDs and rounds, oldest first, the genesis left out) and the checked weights hash.

    Args:
        fetch: where replicas come from (default: `store` for every holder: an IPFS node reaches them all).
            Public loader files come from the holders or, when none serves one, from `store`.
        weights_hash: the hash the weights must have; default the manifest's, i.e. the publisher's word (the
            registry records lineages, not weights hashes: `deepshard model get` rebuilds a version to check it).
    Raises what `published_manifest` and `assemble` raise."""
    _, manifest = published_manifest(chain, store, version)
    lineage = base_deltas(chain.contract("ModelRegistry"), version)
    expected = (weights_hash or manifest.weights_hash).lower()
    record = {
        "version": version,
        "base_model": manifest.base_model,
        "lineage": [{"cid": cid, "round": round_id} for cid, round_id in lineage],
        "weights_hash": expected,
        "source": "bought: assembled from the version's encrypted shards (deepshard weights)",
    }
    replicas = fetch or fetch_from_stores(dict.fromkeys(manifest.holders, store))
    public = {entry.cid for entry in manifest.files}

    def with_public_files(node: str, cid: str) -> bytes:
        if cid not in public:
            return replicas(node, cid)
        try:
            return replicas(node, cid)
        except (StorageError, OSError):
            return store.get(cid)  # public and checked by its sha256: any store may serve it

    return assemble(manifest, version_key, with_public_files, target, weights_hash=expected, record=record)


def _write_folder(target: Path, state: dict[str, torch.Tensor], files: Mapping[str, bytes]) -> None:
    """Write into a staging folder beside `target`, then rename it: `target` appears whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    staging.mkdir()
    try:
        # Aliases (tied weights) are left out, as transformers' save_pretrained does; loading ties them again.
        save_file(state, staging / WEIGHTS_FILE, metadata={"format": "pt"})
        for name, content in files.items():
            (staging / name).write_bytes(content)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
