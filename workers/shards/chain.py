"""The `Storage` contract from Python: what a storage node, a keeper and the publisher read and send.

    storage = StorageClient(chain)                      # chain: a ChainClient with this node's signer
    storage.register("/dns4/node.example/tcp/4001", 10 * 2**30)
    storage.replica(version, shard)                     # this node's record: status, root, size, assigned block
    storage.confirm(version, shard); storage.answer(epoch, chunk, proof)
    storage.challenge(epoch); storage.slash_missed(epoch); storage.expire(version, shard, node)   # anyone
    storage.assign(version, shard, node, root, size, cid)   # the publisher (PUBLISHER_ROLE)

Reads return plain dataclasses (amounts in wei, windows and deadlines in block numbers, sizes in bytes). Writes
return the transaction's hash and raise `TransactionReverted` (gas estimation: nothing sent) with the decoded
custom error when the contract refuses, or `InvalidRequest` (one sentence, nothing sent) for what is checked here
first: registration without the STORAGE stake the bond needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from eth_utils import to_checksum_address

from ..chain.client import ChainClient
from ..chain.errors import InvalidRequest
from ..chain.module import Log, ModuleEvent, cid_to_chain, event_logs, settle_inflight, struct_of, tx_hash
from ..chain.roles import parse_role
from ..chain.units import format_dsh
from ..protocol.constants import REPLICA_STATUSES

STORAGE_ROLE = parse_role("STORAGE")


@dataclass(frozen=True)
class StorageParams:
    """`Storage.params()`: R, the windows (blocks) and the amounts (wei)."""

    replication: int
    confirm_window: int
    audit_interval: int
    answer_window: int
    node_bond: int
    audit_slash: int
    audit_emission: int


@dataclass(frozen=True)
class NodeRecord:
    """`Storage.getNode`: capacity and used bytes, live replicas, the bond left (wei), the endpoint (text)."""

    registered: bool
    capacity: int
    used: int
    live: int
    bond: int
    endpoint: str


@dataclass(frozen=True)
class ReplicaRecord:
    """`Storage.getReplica`: the Merkle root (32 bytes), size (bytes), assignment block, the open audit's epoch
    (None: none) and the status name (`REPLICA_STATUSES`)."""

    root: bytes
    size: int
    assigned_block: int
    open_audit: int | None
    status: str


@dataclass(frozen=True)
class AuditRecord:
    """`Storage.getAudit`: the audited (version, shard, node), the chunk index, the last block to answer in
    (0: the epoch was never challenged) and whether it is closed (answered or slashed)."""

    epoch: int
    version: int
    shard: int
    node: str
    chunk_index: int
    deadline: int
    closed: bool

    @property
    def opened(self) -> bool:
        return self.deadline != 0


class StorageClient:
    """One account acting on `Storage` (read-only without a signer)."""

    CONTRACT: ClassVar[str] = "Storage"
    REPLICA_ASSIGNED = ModuleEvent("ReplicaAssigned")
    AUDIT_OPENED = ModuleEvent("AuditOpened")
    AUDIT_PASSED = ModuleEvent("AuditPassed")
    AUDIT_MISSED = ModuleEvent("AuditMissed")

    def __init__(self, chain: ChainClient):
        self.chain = chain
        self.contract = chain.contract(self.CONTRACT)
        self.registry = chain.contract("StakeRegistry")

    @property
    def address(self) -> str:
        """This account (checksum address)."""
        return to_checksum_address(self.chain.address)

    # ------------------------------------------------------------ reads

    def latest_block(self) -> int:
        return int(self.chain.w3.eth.block_number)

    def deploy_block(self) -> int:
        return int(self.chain.deployment().get("deployBlock", 0))

    def params(self) -> StorageParams:
        return StorageParams(*(int(value) for value in self.contract.functions.params().call()))

    def node(self, node: str | None = None) -> NodeRecord:
        """The record of `node` (default: this account)."""
        raw = struct_of(self.contract, "getNode", to_checksum_address(node or self.address))
        return NodeRecord(
            registered=bool(raw["registered"]),
            capacity=int(raw["capacity"]),
            used=int(raw["used"]),
            live=int(raw["live"]),
            bond=int(raw["bond"]),
            endpoint=bytes(raw["endpoint"]).decode("utf-8", errors="replace"),
        )

    def replica(self, version: int, shard: int, node: str | None = None) -> ReplicaRecord:
        """The record of `node`'s (default: this account's) replica of (`version`, `shard`)."""
        raw = struct_of(
            self.contract, "getReplica", int(version), int(shard), to_checksum_address(node or self.address)
        )
        open_audit = int(raw["openAudit"])
        return ReplicaRecord(
            root=bytes(raw["root"]),
            size=int(raw["size"]),
            assigned_block=int(raw["assignedBlock"]),
            open_audit=open_audit - 1 if open_audit else None,
            status=REPLICA_STATUSES[int(raw["status"])],
        )

    def audit(self, epoch: int) -> AuditRecord:
        raw = struct_of(self.contract, "getAudit", int(epoch))
        return AuditRecord(
            epoch=int(epoch),
            version=int(raw["version"]),
            shard=int(raw["shard"]),
            node=to_checksum_address(raw["node"]),
            chunk_index=int(raw["chunkIndex"]),
            deadline=int(raw["deadline"]),
            closed=bool(raw["closed"]),
        )

    def audit_set_size(self) -> int:
        return int(self.contract.functions.auditSetSize().call())

    def live_replicas(self, version: int, shard: int) -> int:
        return int(self.contract.functions.liveReplicas(int(version), int(shard)).call())

    def next_holder(self, version: int, shard: int, size: int) -> str | None:
        """The node the next replica of (`version`, `shard`) of `size` bytes goes to; None if no node has room."""
        best = self.contract.functions.nextHolder(int(version), int(shard), int(size)).call()
        return None if int(best, 16) == 0 else to_checksum_address(best)

    def nodes(self) -> list[str]:
        return [to_checksum_address(n) for n in self.contract.functions.nodes().call()]

    def owed(self, account: str | None = None) -> int:
        """Wei `account` (default: this one) can claim (audit pay)."""
        return int(self.contract.functions.owed(to_checksum_address(account or self.address)).call())

    def free_stake(self, account: str | None = None) -> int:
        """Unlocked STORAGE stake of `account` (default: this one), in wei."""
        account = to_checksum_address(account or self.address)
        staked = int(self.registry.functions.stakeOf(account, STORAGE_ROLE).call())
        return staked - int(self.registry.functions.lockedOf(account, STORAGE_ROLE).call())

    def logs(self, event: ModuleEvent, filters: dict[str, Any] | None, start: int, end: int) -> list[Log]:
        """`event` logs of Storage in blocks [start, end] (`event_logs`)."""
        return event_logs(self.contract, event.name, filters, start, end)

    # ------------------------------------------------------------ writes

    def _send(self, call) -> str:
        # A transaction of an interrupted earlier step lands first, so the state the caller read holds.
        settle_inflight(self.chain)
        return tx_hash(self.chain.transact(call))

    def register(self, endpoint: str, capacity: int) -> str:
        """Registers this account with `endpoint` (where it serves replicas) and `capacity` (bytes), locking
        `nodeBond` of its STORAGE stake. `InvalidRequest` (nothing sent) when the unlocked STORAGE stake is below
        the bond."""
        bond = self.params().node_bond
        free = self.free_stake()
        if free < bond:
            raise InvalidRequest(
                f"{self.address} has {format_dsh(free)} DSH of unlocked STORAGE stake, registering as a storage "
                f"node locks {format_dsh(bond)} DSH: run `deepshard stake STORAGE {format_dsh(bond - free)}` first"
            )
        return self._send(self.contract.functions.register(endpoint.encode(), int(capacity)))

    def confirm(self, version: int, shard: int) -> str:
        return self._send(self.contract.functions.confirm(int(version), int(shard)))

    def release(self, version: int, shard: int) -> str:
        return self._send(self.contract.functions.release(int(version), int(shard)))

    def expire(self, version: int, shard: int, node: str) -> str:
        """Fails `node`'s assignment left unconfirmed past `confirmWindow` (slashes up to `auditSlash`); anyone."""
        return self._send(self.contract.functions.expire(int(version), int(shard), to_checksum_address(node)))

    def answer(self, epoch: int, chunk: bytes, proof: list[bytes] | tuple[bytes, ...]) -> str:
        return self._send(self.contract.functions.answer(int(epoch), bytes(chunk), [bytes(p) for p in proof]))

    def challenge(self, epoch: int) -> str:
        return self._send(self.contract.functions.challenge(int(epoch)))

    def slash_missed(self, epoch: int) -> str:
        return self._send(self.contract.functions.slashMissed(int(epoch)))

    def assign(self, version: int, shard: int, node: str, root: bytes, size: int, cid: str) -> str:
        """The publisher records `node`'s replica (Merkle root, size in bytes, CID, logged in `ReplicaAssigned` for
        the node); the node must be `next_holder`. `InvalidRequest` (nothing sent) when `cid` is not a CID."""
        return self._send(
            self.contract.functions.assign(
                int(version), int(shard), to_checksum_address(node), root, int(size), cid_to_chain(cid)
            )
        )
