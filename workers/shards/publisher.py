"""The publisher's step: a registered version's weights into encrypted replicas held R times, its manifest on
record, its key split among custodians and on sale; and the repair pass that keeps every shard at R.

    publisher = Publisher(chain, store, key_dir, handover_dir)      # chain: the account holding PUBLISHER_ROLE
    report = publisher.step(version, sharded, base_model="tiny", custodians=[...], threshold=3)
    report.done                     # False: call again (bounded work per call, or waiting for room)
    publisher.step(version, sharded, ...)   # later: only repairs (a shard below R gets the next node in the ranking)

One `step` does what is left, in this order, each part read from the chain first:

1. **The version key**: read from its file (`key_path`: hex, mode 0600, written once); drawn (`new_version_key`)
   and written only when the version has nothing on chain yet (no replica assigned, no manifest, no custody). A
   version with something on chain and no key file is refused: the key is never drawn again.
2. **Replicas**: for each shard, while fewer than R (`Storage.params().replication`) replicas are live, the next
   holder is `Storage.nextHolder`; its replica is sealed (`seal_and_pin`, deterministic), pinned in the
   publisher's store (the nodes' source) and `assign`ed with its Merkle root, size and CID. At most
   `max_assignments` per call. This is also the repair pass: a replica released, expired or failed leaves its
   shard below R, and the next node in the ranking gets a fresh replica. The contract never ranks a node twice
   for a shard, so a re-run never assigns twice.
3. **The manifest**, once every shard has R live replicas and none is recorded: `publish_version` re-seals the
   holders' replicas (deterministic: the same CIDs and roots), each root is checked against the chain's (a key
   file that is not the one the replicas were sealed with is refused), the manifest is pinned and recorded with
   `ModelRegistry.publishShards` (write-once: later repairs are on chain only, in `ReplicaAssigned`).
4. **Custody**, once the manifest is recorded and none is published: the key is split k-of-n (`split_key`), each
   share sealed to its custodian's X25519 public key (`seal_share`, the buyer's scheme) and written, with its
   commitment keccak256(share), to the hand-over file (`handover_path`) **before** `WeightAccess.publish(version,
   keccak256(key), k, custodians, commitments)`: a crash between the two re-publishes the same shares, never new
   ones. Custodians have no public key on chain (KeyCustody records addresses and commitments only), so each
   gives the publisher its X25519 public key (`deepshard weights custodian-key`) and takes its share from the
   hand-over file with `receive_share` (`deepshard weights receive FILE`), which checks it against the on-chain
   commitment and keeps it with `save_share` (its own 0600 file). No share is written in plaintext anywhere else.

Every refusal of the chain (a decoded revert) or of this module is a `PublishError`, one line naming the version,
the shard and the node where there is one; what was sent before it stays sent, and the next call continues.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from eth_utils import keccak, to_checksum_address

from workers.chain import registry
from workers.chain.client import ChainClient
from workers.chain.errors import InvalidRequest, TransactionRejected, TransactionReverted
from workers.chain.module import cid_to_chain, settle_inflight
from workers.chain.writeonce import write_once
from workers.protocol.storage import score
from workers.safejson import parse_json
from workers.storage import ContentStore

from .access import Custody, WeightAccessClient, default_custody_dir, save_share, share_path
from .chain import StorageClient
from .crypto import (
    KEY_BYTES,
    SEALED_SHARE_BYTES,
    TAG_BYTES,
    X25519_KEY_BYTES,
    key_hash,
    new_version_key,
    open_share,
    seal_share,
    split_key,
)
from .errors import ShardError
from .keyfiles import read_hex_secret, read_limited, write_hex_secret
from .layout import ShardedVersion
from .manifest import recorded_manifest
from .publish import publish_version, seal_and_pin

#: Replicas sealed and assigned per call at most (each is a seal of a whole shard and a transaction).
DEFAULT_MAX_ASSIGNMENTS = 32
#: Largest hand-over file read (255 custodians of a few hundred bytes each fit easily).
MAX_HANDOVER_BYTES = 256 * 1024
#: Replica statuses that count toward R (`Storage._liveReplicas`).
LIVE = ("Assigned", "Holding")


class PublishError(ShardError):
    """The publisher's step stopped: one line saying where and why (what was sent before it stays sent)."""


@dataclass(frozen=True)
class CustodianKey:
    """A custodian: its account (0x address) and the X25519 public key (32 bytes) its share is sealed to."""

    address: str
    public_key: bytes


@dataclass
class PublishReport:
    """What one `step` did (`lines`, one per action), whether the version is complete (`done`: R live replicas
    per shard, manifest recorded, custody published) and the manifest's CID once recorded."""

    version: int
    lines: list[str] = field(default_factory=list)
    done: bool = False
    manifest_cid: str | None = None


def key_path(root: str | os.PathLike, chain_id: int, registry: str, version: int) -> Path:
    """Where the publisher keeps `version`'s key: <root>/<chain id>/<ModelRegistry address>/version-<v>.key."""
    return Path(root) / str(int(chain_id)) / to_checksum_address(registry) / f"version-{int(version)}.key"


def handover_path(root: str | os.PathLike, chain_id: int, access: str, version: int) -> Path:
    """Where `version`'s sealed shares are handed over: <root>/<chain id>/<WeightAccess address>/version-<v>.json."""
    return Path(root) / str(int(chain_id)) / to_checksum_address(access) / f"version-{int(version)}.json"


class Publisher:
    """The publisher's step and repair pass (module docstring), for the account of `chain` (PUBLISHER_ROLE on
    ModelRegistry, Storage and WeightAccess). `store` pins the replicas and the manifest (the storage nodes'
    source); `key_dir` keeps the version keys; `handover_dir` the sealed shares for the custodians."""

    def __init__(
        self,
        chain: ChainClient,
        store: ContentStore,
        key_dir: str | os.PathLike,
        handover_dir: str | os.PathLike,
        *,
        max_assignments: int = DEFAULT_MAX_ASSIGNMENTS,
    ):
        if max_assignments < 1:
            raise ValueError("max_assignments must be positive")
        self.chain = chain
        self.store = store
        self.storage = StorageClient(chain)
        self.access = WeightAccessClient(chain)
        self.models = chain.contract("ModelRegistry")
        self.key_dir = Path(key_dir)
        self.handover_dir = Path(handover_dir)
        self.max_assignments = max_assignments

    # ------------------------------------------------------------ the step

    def step(
        self,
        version: int,
        sharded: ShardedVersion,
        *,
        base_model: str,
        custodians: Sequence[CustodianKey] = (),
        threshold: int = 0,
    ) -> PublishReport:
        """Does what is left of publishing `version` (module docstring), at most `max_assignments` assignments.

        `sharded`: the version's weights cut into shards (`shard_version` of the merged model the registry's
        version is); `custodians` and `threshold` (k) are needed only until custody is published. Raises
        PublishError (one line) for an unregistered version, a missing or wrong key file, a node the contract
        refuses, no custodians when they are needed; StorageError from the store."""
        report = PublishReport(int(version))
        try:
            recorded = registry.published(self.models, version)
        except InvalidRequest as exc:
            raise PublishError(str(exc)) from None
        custody = self._custody(version)
        key = self._version_key(version, sharded, bool(recorded), custody is not None, report)
        if custody is not None and custody.key_hash != key_hash(key):
            raise PublishError(
                f"version {version}: the key in {self._key_path(version)} is not the one its custody publishes"
            )
        if recorded:
            # Repairs re-seal from `sharded`: it must be the version the recorded manifest describes.
            report.manifest_cid = recorded[0]
            self._check_recorded(version, sharded, key, report.manifest_cid)
        holders, full = self._fill(version, sharded, key, report)
        if not recorded and full:
            report.manifest_cid = self._record_manifest(version, sharded, key, holders, base_model, report)
        if report.manifest_cid is not None and custody is None:
            self._publish_custody(version, key, custodians, threshold, report)
            custody = self._custody(version)
        report.done = full and report.manifest_cid is not None and custody is not None
        return report

    # ------------------------------------------------------------ key

    def _key_path(self, version: int) -> Path:
        return key_path(self.key_dir, self.chain.chain_id, self.models.address, version)

    def _version_key(
        self, version: int, sharded: ShardedVersion, recorded: bool, custody: bool, report: PublishReport
    ) -> bytes:
        path = self._key_path(version)
        if not path.exists():
            assigned = any(self.storage.live_replicas(version, s.index) for s in sharded.shards)
            if recorded or custody or assigned:
                raise PublishError(
                    f"version {version} is already (partly) published but its key file {path} is missing: the key "
                    "is never drawn again (restore the file)"
                )
            write_hex_secret(path, new_version_key(), f"key of version {version}")
            report.lines.append(f"version {version}: drew its key ({path}, mode 0600)")
        return read_hex_secret(path, f"key of version {version}", KEY_BYTES)

    # ------------------------------------------------------------ replicas

    def live_holders(self, version: int, shard: int, nodes: Sequence[str] | None = None) -> list[str]:
        """The nodes (of `nodes`, default the registered ones) holding a live (assigned or confirmed) replica of
        (`version`, `shard`), best-ranked first (rendezvous score, `workers.protocol.storage.score`): at most
        `Storage.MAX_NODES` reads."""
        candidates = self.storage.nodes() if nodes is None else nodes
        live = [n for n in candidates if self.storage.replica(version, shard, n).status in LIVE]
        return sorted(live, key=lambda node: score(version, shard, node), reverse=True)

    def _fill(
        self, version: int, sharded: ShardedVersion, key: bytes, report: PublishReport
    ) -> tuple[dict[int, list[str]], bool]:
        """Assigns the missing replicas of every shard (bounded); returns the live holders and whether every shard
        has R."""
        replication = self.storage.params().replication
        budget = self.max_assignments
        holders: dict[int, list[str]] = {}
        full = True
        nodes = self.storage.nodes()  # a node holding a replica cannot leave, so none is missed
        for shard in sharded.shards:
            current = self.live_holders(version, shard.index, nodes)
            size = len(shard.plaintext) + TAG_BYTES
            while len(current) < replication:
                if budget == 0:
                    full = False
                    break
                node = self.storage.next_holder(version, shard.index, size)
                if node is None:
                    report.lines.append(
                        f"version {version} shard {shard.index}: {len(current)} of {replication} replicas live and "
                        f"no registered node that never held it has {size:,} bytes free; waiting for one"
                    )
                    full = False
                    break
                replica = seal_and_pin(
                    shard.plaintext, key, version=version, shard=shard.index, node=node, store=self.store
                )
                where = f"version {version} shard {shard.index}"
                assign = partial(
                    self.storage.assign, version, shard.index, node, replica.merkle_root, replica.size, replica.cid
                )
                self._send(f"{where}: assign to {node}", assign)
                budget -= 1
                current.append(node)
                report.lines.append(f"{where}: assigned to {node} ({replica.size:,} bytes, {replica.cid})")
            holders[shard.index] = current
        return holders, full

    # ------------------------------------------------------------ manifest

    def _record_manifest(
        self,
        version: int,
        sharded: ShardedVersion,
        key: bytes,
        holders: dict[int, list[str]],
        base_model: str,
        report: PublishReport,
    ) -> str:
        manifest = publish_version(
            sharded,
            key,
            version=version,
            base_model=base_model,
            assignment=holders,
            stores={node: self.store for nodes in holders.values() for node in nodes},
        )
        for entry in manifest.shards:
            for replica in entry.replicas:
                if self.storage.replica(version, entry.index, replica.node).root != replica.merkle_root:
                    raise PublishError(
                        f"version {version} shard {entry.index}: the replica of {to_checksum_address(replica.node)} "
                        f"sealed with the key in {self._key_path(version)} is not the one the chain records"
                    )
        cid = self.store.add_bytes(manifest.to_json())
        self._send(
            f"version {version}: publishShards",
            lambda: self.chain.transact(
                self.models.functions.publishShards(
                    int(version), cid_to_chain(cid), bytes.fromhex(sharded.weights_hash.removeprefix("0x"))
                )
            ),
        )
        report.lines.append(f"version {version}: manifest {cid} recorded ({len(manifest.shards)} shards)")
        return cid

    def _check_recorded(self, version: int, sharded: ShardedVersion, key: bytes, cid: str) -> None:
        """PublishError unless the recorded manifest (read from the publisher's store) has `sharded`'s weights
        hash and shards (index, plaintext sha256) and `key`'s hash; StorageError when the store lacks it."""
        manifest = recorded_manifest(self.store, cid, version)
        shards = [(e.index, e.sha256) for e in manifest.shards]
        if (manifest.weights_hash, shards) != (sharded.weights_hash, [(s.index, s.sha256) for s in sharded.shards]):
            raise PublishError(
                f"version {version}: the weights given are not the ones its recorded manifest {cid} describes "
                "(other weights or another shard layout)"
            )
        if manifest.key_hash != key_hash(key):
            raise PublishError(f"version {version}: the key in {self._key_path(version)} is not its manifest's")

    # ------------------------------------------------------------ custody

    def _custody(self, version: int) -> Custody | None:
        try:
            return self.access.custody(version)
        except InvalidRequest:
            return None

    def _publish_custody(
        self,
        version: int,
        key: bytes,
        custodians: Sequence[CustodianKey],
        threshold: int,
        report: PublishReport,
    ) -> None:
        path = handover_path(self.handover_dir, self.chain.chain_id, self.access.contract.address, version)
        if path.exists():
            # A crash after the hand-over was written: publish exactly those shares (never a new split).
            handover = read_handover(path, version)
            named = tuple(to_checksum_address(c.address) for c in custodians)
            if custodians and (named, threshold) != (handover.custodians, handover.threshold):
                raise PublishError(
                    f"version {version}: the hand-over {path} already splits the key {handover.threshold}-of-"
                    f"{len(handover.custodians)} among other custodians; publish it as written or move it away"
                )
        else:
            if not custodians or not 1 <= threshold <= len(custodians):
                raise PublishError(
                    f"version {version}: its key custody needs custodians and a threshold k (1 <= k <= n), "
                    f"got {len(custodians)} custodians and k = {threshold}"
                )
            shares = split_key(key, len(custodians), threshold)
            handover = Handover(
                version=int(version),
                threshold=int(threshold),
                custodians=tuple(to_checksum_address(c.address) for c in custodians),
                sealed=tuple(
                    seal_share(share, c.public_key, version=version)
                    for share, c in zip(shares, custodians, strict=True)
                ),
                commitments=tuple(keccak(share) for share in shares),
            )
            write_handover(path, handover)
            report.lines.append(f"version {version}: key shares sealed to {len(custodians)} custodians in {path}")
        self._send(
            f"version {version}: WeightAccess.publish",
            lambda: self.chain.transact(
                self.access.contract.functions.publish(
                    int(version),
                    key_hash(key),
                    handover.threshold,
                    list(handover.custodians),
                    list(handover.commitments),
                )
            ),
        )
        report.lines.append(
            f"version {version}: on sale, key custody {handover.threshold}-of-{len(handover.custodians)} published"
        )

    # ------------------------------------------------------------ sending

    def _send(self, what: str, send: Callable[[], object]) -> None:
        settle_inflight(self.chain)
        try:
            send()
        except (TransactionReverted, TransactionRejected, InvalidRequest) as exc:
            raise PublishError(f"{what} refused: {exc}") from None


# ---------------------------------------------------------------- the hand-over file


@dataclass(frozen=True)
class Handover:
    """`version`'s key shares as handed to its custodians: k, the custodians in share order, each share sealed to
    its custodian's X25519 key (81 bytes, `seal_share`) and keccak256 of each share (its on-chain commitment)."""

    version: int
    threshold: int
    custodians: tuple[str, ...]
    sealed: tuple[bytes, ...]
    commitments: tuple[bytes, ...]


def write_handover(path: Path, handover: Handover) -> None:
    """Writes the hand-over file once (JSON, mode 0600: it names who holds what). ShardError if it exists."""
    document = {
        "version": handover.version,
        "threshold": handover.threshold,
        "custodians": [
            {"address": address, "sealed_share": "0x" + sealed.hex(), "commitment": "0x" + commitment.hex()}
            for address, sealed, commitment in zip(
                handover.custodians, handover.sealed, handover.commitments, strict=True
            )
        ],
    }
    data = (json.dumps(document, sort_keys=True, indent=1) + "\n").encode()
    try:
        written = write_once(path, data)
    except OSError as exc:
        raise ShardError(f"cannot write the key hand-over {path}: {exc.strerror}") from None
    if not written:
        raise ShardError(f"the key hand-over {path} already exists")


def _hex(value, size: int, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ShardError(f"{what} is not 0x-hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise ShardError(f"{what} is not 0x-hex") from None
    if len(raw) != size:
        raise ShardError(f"{what} is {len(raw)} bytes, not {size}")
    return raw


def read_handover(path: str | os.PathLike, version: int | None = None) -> Handover:
    """Parses a hand-over file strictly (bounded size, every field checked). ShardError naming the field, or
    JsonRejected naming the file when it is no JSON within the bounds."""
    data = read_limited(path, "key hand-over", MAX_HANDOVER_BYTES)
    document = parse_json(data, what=str(path), max_depth=4)
    if not isinstance(document, dict) or set(document) != {"version", "threshold", "custodians"}:
        raise ShardError(f"{path} is not a key hand-over (version, threshold, custodians)")
    entries = document["custodians"]
    number, threshold = document["version"], document["threshold"]
    if not isinstance(number, int) or (version is not None and number != version):
        raise ShardError(f"{path} is not the key hand-over of version {version}")
    if not isinstance(entries, list) or not isinstance(threshold, int) or not 1 <= threshold <= len(entries):
        raise ShardError(f"{path}: threshold and custodians do not fit (1 <= k <= n)")
    custodians, sealed, commitments = [], [], []
    for index, entry in enumerate(entries):
        where = f"{path}: custodians[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"address", "sealed_share", "commitment"}:
            raise ShardError(f"{where} is not (address, sealed_share, commitment)")
        custodians.append(to_checksum_address(_hex(entry["address"], 20, f"{where}.address")))
        sealed.append(_hex(entry["sealed_share"], SEALED_SHARE_BYTES, f"{where}.sealed_share"))
        commitments.append(_hex(entry["commitment"], 32, f"{where}.commitment"))
    return Handover(number, threshold, tuple(custodians), tuple(sealed), tuple(commitments))


def receive_share(
    chain: ChainClient, path: str | os.PathLike, private_key: bytes, root: str | os.PathLike | None = None
) -> Path:
    """A custodian takes its share of a hand-over file: opens the share sealed to it with its X25519 private key
    (32 bytes), checks keccak256(share) against its on-chain commitment (`custodyOf`) and keeps it with
    `save_share` (hex, mode 0600, under `root`); returns the share file. Idempotent: a share kept already is
    checked and its file returned. Raises ShardError (ShareRejected for a share that does not open) or
    InvalidRequest (no custody on chain) naming what is wrong."""
    if len(private_key) != X25519_KEY_BYTES:
        raise ShardError(f"a custodian key is {X25519_KEY_BYTES} bytes")
    handover = read_handover(path)
    me = to_checksum_address(chain.address)
    access = WeightAccessClient(chain)
    custody = access.custody(handover.version)
    if me not in custody.custodians:
        raise ShardError(f"{me} is not a custodian of version {handover.version}")
    index = custody.custodians.index(me)
    if me not in handover.custodians:
        raise ShardError(f"{path} holds no share for {me}")
    share = open_share(handover.sealed[handover.custodians.index(me)], private_key, version=handover.version)
    if keccak(share) != custody.commitments[index]:
        raise ShardError(
            f"the share in {path} for {me} does not match its on-chain commitment of version {handover.version}"
        )
    target = share_path(root or default_custody_dir(), chain.chain_id, access.contract.address, handover.version, me)
    if target.exists():
        if read_hex_secret(target, "key share", len(share)) != share:
            raise ShardError(f"{target} holds another share of version {handover.version}; not replaced")
        return target
    return save_share(chain, handover.version, share, root)
