"""The storage node role (`deepshard worker --role storage`): a loop of bounded steps against `Storage`.

    node = StorageNode(StorageClient(chain), store, sources=[publisher_store],
                       endpoint="/dns4/node.example/tcp/4001", capacity=10 * 2**30)
    node.step()                  # one bounded pass; returns the lines it reported
    node.run(stop_event, 2.0)    # steps until `stop_event` is set

Each step:
1. registers the account if it is not (endpoint, capacity; `InvalidRequest` when the unlocked STORAGE stake does not
   cover `nodeBond`);
2. scans at most `max_range` new blocks from its cursor (the deploy block in a new process) of `ReplicaAssigned`
   events naming this node and `AuditOpened` events (all of them when it keeps, else its own); while that leaves
   the cursor behind the head (a restart on a long chain), also its own assignments of the last `confirmWindow`
   blocks and the audits of the last `answerWindow`, which cannot wait for the catch-up;
3. answers every open audit naming it, from its own pinned replica (`audit.answer_challenge`): chunk and Merkle
   proof, before the answer window closes; a replica the catch-up has not reached is read from the chain (its
   record, and the CID of its `ReplicaAssigned` event at the record's assignment block);
4. for each replica assigned to it (at most `max_fetches` fetched per step): fetches the CID its
   `ReplicaAssigned` event names from its own store or a source, at most the on-chain size (a bigger CID is not
   downloaded past it), checks its size and chunk Merkle root against the on-chain record, pins it and calls
   `confirm` within `confirmWindow`; a replica that does not verify is neither pinned nor confirmed, reported in
   one line and its CID not fetched again for that record. A store or CID failure (`ShardError`, `StorageError`)
   is that replica's alone: reported in one line, the CID rejected when the failure is the content's own
   (`CONTENT_ERRORS`), and the other replicas go on. A confirmed replica missing from its store is fetched again;
   if no source has it at `RELEASE_AFTER` steps in a row and no audit is open on it, it is released (the next node
   in the ranking repairs it). A released or failed replica is unpinned;
5. as a keeper (`keeper=True`, the default): `challenge(epoch)` of the newest epoch whose seed block is mined and
   in reach, if nobody did, `slashMissed` of every audit whose answer window closed unanswered, and `expire` of
   every other node's assignment left unconfirmed past `confirmWindow` (tracked until sent, so a failed `expire` is
   sent again at the next step), and `settle` of every purchase of any version (`WeightAccess`, its `Purchased`
   events read in the same block ranges) whose delivery window is over and that nobody settled: the custodians
   who delivered are paid and the version's storage pot funded (or the buyer refunded, the silent custodians
   slashed) without waiting for the buyer, who may never come back.

Every decision reads the chain first (a replica is confirmed only while `Assigned`, an audit answered only while
open), so a restarted node neither confirms nor answers twice; before each transaction the account's pending ones
are waited for. A revert (`TransactionReverted`, decoded custom error), a refusal or a store failure is reported
in one line and the step goes on; the same problem is reported once, not at every step.

Where the CIDs come from: `Storage.assign` logs each replica's CID in `ReplicaAssigned` beside its Merkle root and
size, so every assignment, a repair's too, tells its node where to fetch from the chain alone. The CID only says
where to look: the bytes are checked against the on-chain root and size, whatever the publisher logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, partial

from ..chain.errors import InvalidRequest, TransactionRejected, TransactionReverted
from ..chain.module import LOG_RANGE, Log, cid_from_chain
from ..protocol.merkle import merkle_root
from ..storage import (
    ContentStore,
    FileTooLarge,
    IntegrityError,
    InvalidCid,
    StorageError,
    UnsupportedContent,
    parse_cid,
)
from .access import Purchase, WeightAccessClient
from .audit import Holding, answer_challenge
from .chain import AuditRecord, StorageClient
from .errors import ShardError

logger = logging.getLogger(__name__)

#: Replicas fetched and verified per step at most (each is a whole download and a Merkle tree).
DEFAULT_MAX_FETCHES = 4
#: Steps in a row a confirmed replica must be missing, and unavailable from every source, before it is released.
RELEASE_AFTER = 3
#: Seconds between steps.
DEFAULT_INTERVAL = 2.0
MAX_BACKOFF = 60.0
#: `blockhash` reaches back this many blocks (`Storage.challenge`).
BLOCKHASH_REACH = 256
#: Failures that are the content's own (the same at every try, from every source): the CID is rejected for that
#: on-chain record. Any other `StorageError` (a node down, a disk full) is retried at the next step.
CONTENT_ERRORS = (ShardError, IntegrityError, FileTooLarge, InvalidCid, UnsupportedContent)


@dataclass
class Tracked:
    """A replica assigned to this node: the on-chain root (32 bytes), size (bytes), the CID its assignment logged
    (None: the logged bytes are no CID, reported once; the assignment then expires) and the assignment's block."""

    version: int
    shard: int
    root: bytes
    size: int
    cid: str | None
    assigned: int
    #: steps in a row at which the confirmed replica was missing and no source had it
    misses: int = 0

    @property
    def label(self) -> str:
        return f"version {self.version} shard {self.shard}"

    @property
    def content(self) -> tuple[str | None, bytes, int]:
        """What a rejection is cached by: the same CID may well verify against another record."""
        return (self.cid, self.root, self.size)


class StorageNode:
    """A storage node's steps (module docstring)."""

    def __init__(
        self,
        storage: StorageClient,
        store: ContentStore,
        *,
        sources: Sequence[ContentStore] = (),
        endpoint: str | None = None,
        capacity: int | None = None,
        keeper: bool = True,
        max_fetches: int = DEFAULT_MAX_FETCHES,
        max_range: int = LOG_RANGE,
        out: Callable[[str], None] | None = None,
    ):
        if max_fetches < 1 or max_range < 1:
            raise ValueError("max_fetches and max_range must be positive")
        self.storage = storage
        self.store = store
        self.sources = [store, *(s for s in sources if s is not store)]
        self.endpoint = endpoint
        self.capacity = capacity
        self.keeper = keeper
        self.max_fetches = max_fetches
        self.max_range = max_range
        self.out = out or (lambda line: logger.info("%s", line))
        self.address = storage.address
        self.cursor: int | None = None
        self.replicas: dict[tuple[int, int], Tracked] = {}
        #: epoch -> AuditOpened arguments, while the audit may be open
        self.audits: dict[int, dict] = {}
        #: (version, shard, node) -> block of the assignment, of other nodes' replicas, until confirmed or expired
        self.assignments: dict[tuple[int, int, str], int] = {}
        #: purchase id -> purchase unsettled when its `Purchased` event was read, until settled (keeper)
        self.purchases: dict[int, Purchase] = {}
        #: (CID, root, size) whose bytes do not verify against that record (or cannot be stored under that CID):
        #: never fetched again
        self.rejected: set[tuple[str | None, bytes, int]] = set()
        self._reported: set[str] = set()
        #: replicas fetched in the current step (at most `max_fetches`)
        self._fetches = 0
        self._lines: list[str] = []

    # ------------------------------------------------------------ reporting

    def _say(self, line: str) -> None:
        self._lines.append(line)
        self.out(line)

    def _problem(self, line: str) -> None:
        """Reports `line` once (a problem that lasts would otherwise be repeated at every step)."""
        if line not in self._reported:
            self._reported.add(line)
            self._say(line)

    def _send(self, what: str, send: Callable[[], str]) -> str | None:
        """Sends one transaction; a revert or refusal is reported in one line and None returned."""
        try:
            return send()
        except (TransactionReverted, TransactionRejected, InvalidRequest) as exc:
            self._problem(f"storage {self.address}: {what} not sent: {exc}")
            return None

    # ------------------------------------------------------------ the step

    def ensure_registered(self) -> None:
        """Registers this account if it is not. `InvalidRequest` without the STORAGE stake for the bond, or
        without an endpoint and capacity to register with."""
        if self.storage.node().registered:
            return
        if not self.endpoint or not self.capacity or self.capacity < 1:
            raise InvalidRequest(
                f"{self.address} is not a registered storage node: give an endpoint and a capacity in bytes to "
                "register with (--endpoint, --capacity)"
            )
        self.storage.register(self.endpoint, self.capacity)
        self._say(f"storage {self.address}: registered ({self.endpoint}, {self.capacity:,} bytes)")

    def step(self) -> list[str]:
        """One bounded pass (module docstring): registration, the holder's duties, then the keeper's if it keeps;
        returns the lines it reported."""
        self._lines = []
        self.ensure_registered()
        latest = self.storage.latest_block()
        self._scan(latest)
        self._answer_audits(latest)
        self._replica_duties(latest)
        if self.keeper:
            self._keep(latest)
        return self._lines

    def keep(self) -> list[str]:
        """The keeper's duties alone, which any account may run (registered or not): `challenge` the newest epoch
        in reach, `slashMissed` every audit whose answer window closed and `expire` every other node's assignment
        left unconfirmed; returns the lines it reported."""
        self._lines = []
        latest = self.storage.latest_block()
        self._scan(latest)
        self._keep(latest)
        return self._lines

    def run(self, stop: threading.Event, interval: float = DEFAULT_INTERVAL, backoff: float = 2.0) -> None:
        """Steps every `interval` seconds until `stop` is set. Registration refused (`InvalidRequest`) ends it;
        any other failure of a step is reported in one line and the step retried with exponential backoff."""
        self.ensure_registered()
        failures = 0
        while not stop.is_set():
            try:
                self.step()
                failures, wait = 0, interval
            except InvalidRequest:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one failure, or audits go unanswered
                failures += 1
                wait = min(backoff * 2.0 ** (failures - 1), MAX_BACKOFF)
                self.out(f"storage {self.address}: step failed ({type(exc).__name__}: {exc}); retrying in {wait:.0f} s")
            stop.wait(wait)

    # ------------------------------------------------------------ events

    def _scan(self, latest: int) -> None:
        """Reads the next `max_range` blocks of events from the cursor; while that leaves the cursor behind the head
        (a restart on a long chain), also this node's assignments over the last `confirmWindow` blocks and the
        audits over the last `answerWindow`, which cannot wait for the catch-up."""
        start = self.storage.deploy_block() if self.cursor is None else self.cursor
        if start > latest:
            return
        end = min(latest, start + self.max_range - 1)
        # A keeper follows every assignment and audit (to expire and slash the missed ones), a holder only its own.
        mine = None if self.keeper else {"node": self.address}
        self._read_events(mine, start, end, mine, start, end)
        if self.keeper:
            # Settling has no deadline: purchases are read with the catch-up alone, never from the recent blocks.
            self.purchases.update((p.id, p) for p in self.access.purchases(None, start, end) if not p.settled)
        self.cursor = end + 1
        if end < latest:
            params = self.storage.params()
            recent = max(self.storage.deploy_block(), end + 1)
            self._read_events(
                {"node": self.address},
                max(recent, latest - params.confirm_window),
                latest,
                mine,
                max(recent, latest - params.answer_window),
                latest,
            )

    def _read_events(
        self,
        assigned_filter: dict | None,
        assigned_from: int,
        assigned_to: int,
        audit_filter: dict | None,
        audits_from: int,
        audits_to: int,
    ) -> None:
        """`ReplicaAssigned` and `AuditOpened` logs matching the filters in the two block ranges (inclusive)."""
        for log in self.storage.logs(self.storage.REPLICA_ASSIGNED, assigned_filter, assigned_from, assigned_to):
            self._assigned(log)
        for log in self.storage.logs(self.storage.AUDIT_OPENED, audit_filter, audits_from, audits_to):
            self.audits[int(log.args["epoch"])] = dict(log.args)

    def _assigned(self, log: Log) -> None:
        args = log.args
        version, shard = int(args["version"]), int(args["shard"])
        if args["node"] != self.address:
            self.assignments[(version, shard, args["node"])] = log.block
            return
        known = self.replicas.get((version, shard))
        if known is not None and known.assigned >= log.block:
            return  # read already (the recent window and the catch-up overlap), or a newer assignment is known
        tracked = Tracked(version, shard, bytes(args["root"]), int(args["size"]), None, log.block)
        try:
            tracked.cid = cid_from_chain(bytes(args["cid"]))
        except StorageError as exc:
            self._problem(f"storage {self.address}: {tracked.label}: the assignment logged no CID ({exc})")
        self.replicas[(version, shard)] = tracked

    def _tracked_from_chain(self, version: int, shard: int) -> Tracked | None:
        """This node's live replica of (`version`, `shard`) from the chain alone (its record, and the CID from its
        `ReplicaAssigned` event at the record's assignment block), for an audit on a replica the catch-up has not
        reached; None when there is none."""
        record = self.storage.replica(version, shard)
        if record.status not in ("Assigned", "Holding"):
            return None
        where = {"version": version, "shard": shard, "node": self.address}
        for log in self.storage.logs(
            self.storage.REPLICA_ASSIGNED, where, record.assigned_block, record.assigned_block
        ):
            self._assigned(log)
        return self.replicas.get((version, shard))

    # ------------------------------------------------------------ audits

    def _open_audits(self) -> Iterator[AuditRecord]:
        """The audits seen that are still open (closed ones are forgotten)."""
        for epoch in sorted(self.audits):
            audit = self.storage.audit(epoch)
            if audit.closed:
                del self.audits[epoch]
            else:
                yield audit

    def _answer_audits(self, latest: int) -> None:
        for audit in self._open_audits():
            # A transaction sent now lands at latest + 1 at the earliest.
            if audit.node == self.address and latest + 1 <= audit.deadline:
                self._answer(audit)

    def _slash_missed(self, latest: int) -> None:
        for audit in self._open_audits():
            # Gas is estimated at the latest block, where the window must already be over.
            if latest > audit.deadline:
                epoch = audit.epoch
                if self._send(f"slashMissed({epoch})", partial(self.storage.slash_missed, epoch)):
                    self._say(f"storage {self.address}: slashed the missed audit {epoch} of {audit.node}")

    def _answer(self, audit: AuditRecord) -> None:
        tracked = self.replicas.get((audit.version, audit.shard))
        where = f"audit {audit.epoch} (version {audit.version} shard {audit.shard} chunk {audit.chunk_index})"
        if tracked is None:
            tracked = self._tracked_from_chain(audit.version, audit.shard)
        if tracked is None:
            self._problem(f"storage {self.address}: {where}: no assignment of this replica on chain; cannot answer")
            return
        data = self._local_copy(tracked)
        if data is None:
            self._problem(
                f"storage {self.address}: {where}: the replica is not in {self.store.location}; cannot answer"
            )
            return
        holding = Holding(tracked.shard, tracked.cid or "", tracked.root, tracked.size)
        try:
            answer = answer_challenge(holding, data, audit.chunk_index)
        except ShardError as exc:
            self._problem(f"storage {self.address}: {where}: {exc}")
            return
        if self._send(f"answer to {where}", lambda: self.storage.answer(audit.epoch, answer.chunk, answer.proof)):
            self._say(f"storage {self.address}: answered {where}")

    # ------------------------------------------------------------ replicas

    def _replica_duties(self, latest: int) -> None:
        self._fetches = 0
        for key, tracked in list(self.replicas.items()):
            # One replica's store or CID failure is its own: the others, and the keeper's duties, go on.
            try:
                self._replica_duty(key, tracked, latest)
            except (ShardError, StorageError) as exc:
                self._problem(f"storage {self.address}: {tracked.label}: {exc}; skipped")
                if isinstance(exc, CONTENT_ERRORS):
                    self.rejected.add(tracked.content)

    def _replica_duty(self, key: tuple[int, int], tracked: Tracked, latest: int) -> None:
        record = self.storage.replica(tracked.version, tracked.shard)
        if record.status in ("Released", "Failed", "None"):
            del self.replicas[key]
            self._drop(tracked, record.status)
        elif record.status == "Assigned":
            deadline = record.assigned_block + self.storage.params().confirm_window
            if latest + 1 > deadline:
                self._problem(f"storage {self.address}: {tracked.label}: the confirm window closed at block {deadline}")
            elif self._fetches < self.max_fetches:
                self._fetches += 1
                if self._obtain(tracked) and self._send(
                    f"confirm of {tracked.label}", partial(self.storage.confirm, tracked.version, tracked.shard)
                ):
                    self._say(f"storage {self.address}: confirmed {tracked.label} ({tracked.size:,} bytes)")
        elif record.status == "Holding" and not self._held(tracked) and self._fetches < self.max_fetches:
            self._fetches += 1
            if self._obtain(tracked):
                tracked.misses = 0
                self._say(f"storage {self.address}: fetched {tracked.label} again (it was missing locally)")
                return
            tracked.misses += 1
            # A source may be down for a while: only a replica missed at RELEASE_AFTER steps in a row is given
            # up, and never while an audit is open on it (the contract refuses; the audit is missed anyway).
            if tracked.misses >= RELEASE_AFTER and record.open_audit is None:
                release = partial(self.storage.release, tracked.version, tracked.shard)
                if self._send(f"release of {tracked.label}", release):
                    self._say(f"storage {self.address}: released {tracked.label}: lost locally, no source has it")

    def _drop(self, tracked: Tracked, status: str) -> None:
        # Only a CID pinned for this assignment is unpinned: a rejected one may be another replica's it holds (the
        # publisher names any CID), and a CID another live assignment names stays.
        if tracked.cid is None or tracked.content in self.rejected:
            return
        if any(other is not tracked and other.cid == tracked.cid for other in self.replicas.values()):
            return
        if self.store.is_pinned(tracked.cid):
            self.store.unpin(tracked.cid)
            self._say(f"storage {self.address}: unpinned {tracked.label} ({status})")

    def _held(self, tracked: Tracked) -> bool:
        """Whether the store holds the replica's CID pinned (the bytes are checked again before any answer). A
        store that cannot tell (a corrupt local block: IntegrityError) is reported once and counts as not holding
        it, so that it is fetched again (adding the good blocks replaces the damaged ones)."""
        if tracked.cid is None:
            return False
        try:
            return self.store.has(tracked.cid) and self.store.is_pinned(tracked.cid)
        except StorageError as exc:
            self._problem(
                f"storage {self.address}: {tracked.label}: the local copy of {tracked.cid} is unreadable ({exc})"
            )
            return False

    def _local_copy(self, tracked: Tracked) -> bytes | None:
        if not self._held(tracked):
            return None
        try:
            return self.store.get(tracked.cid or "", max_size=tracked.size)
        except StorageError:
            return None

    def _obtain(self, tracked: Tracked) -> bool:
        """Fetches, verifies and pins the replica its assignment names; True once it is pinned. Each failure is one
        line; a CID whose bytes do not verify is never fetched again."""
        cid = tracked.cid
        if cid is None or tracked.content in self.rejected:
            return False
        # The own store is the first source: a replica pinned before an interruption is only confirmed.
        data = self._fetch(tracked, cid)
        if data is None:
            return False
        if not self._verified(tracked, data):
            return False
        stored = self.store.add_bytes(data)
        if parse_cid(stored).v1() != parse_cid(cid).v1():
            # Verified bytes the store names otherwise (a raw-codec CID over bytes it chunks): not answerable by
            # the named CID, so rejected (by the step); the copy is unpinned unless another replica names it.
            if not any(
                other.cid and parse_cid(other.cid).v1() == parse_cid(stored).v1() for other in self.replicas.values()
            ):
                self.store.unpin(stored)
            raise ShardError(f"{self.store.location} named {tracked.label} {stored}, not {cid}")
        return True

    def _fetch(self, tracked: Tracked, cid: str) -> bytes | None:
        errors = []
        for source in self.sources:
            try:
                # Bounded by the size the chain records: a hostile CID costs that much download at most.
                return source.get(cid, max_size=tracked.size)
            except FileTooLarge as exc:
                self._reject(tracked, str(exc))  # the CID's own size: no other source serves less
                return None
            except StorageError as exc:
                errors.append(f"{source.location}: {exc}")
        self._problem(f"storage {self.address}: {tracked.label}: no source serves {cid} ({'; '.join(errors)})")
        return None

    def _verified(self, tracked: Tracked, data: bytes) -> bool:
        """Whether `data` (already checked against its CID by the store) is the replica the chain records."""
        problem = None
        if len(data) != tracked.size:
            problem = f"{len(data):,} bytes, the chain records {tracked.size:,}"
        elif merkle_root(data) != tracked.root:
            problem = f"Merkle root 0x{merkle_root(data).hex()}, the chain records 0x{tracked.root.hex()}"
        if problem is None:
            return True
        self._reject(tracked, problem)
        return False

    def _reject(self, tracked: Tracked, problem: str) -> None:
        self.rejected.add(tracked.content)
        self._problem(
            f"storage {self.address}: {tracked.label}: replica {tracked.cid} does not verify ({problem}); not confirmed"
        )

    # ------------------------------------------------------------ keeper

    @cached_property
    def access(self) -> WeightAccessClient:
        return WeightAccessClient(self.storage.chain)

    def _keep(self, latest: int) -> None:
        self._slash_missed(latest)
        self._expire(latest)
        self._challenge(latest)
        self._settle_purchases(latest)

    def _settle(self, purchase: Purchase) -> str:
        return self.access.settle(purchase).tx_hash

    def _settle_purchases(self, latest: int) -> None:
        """`settle` every tracked purchase whose delivery window is over (forgotten once settled, by anyone)."""
        for purchase_id, purchase in list(self.purchases.items()):
            # Gas is estimated at the latest block, where the window must already be over (block > deliverBy).
            if latest <= purchase.deliver_by:
                continue
            if self.access.is_settled(purchase_id):
                del self.purchases[purchase_id]
                continue
            settled = self._send(f"settle of purchase {purchase_id}", partial(self._settle, purchase))
            if settled:
                del self.purchases[purchase_id]
                self._say(f"storage {self.address}: settled purchase {purchase_id} of version {purchase.version}")

    def _expire(self, latest: int) -> None:
        """`expire` every other node's assignment left unconfirmed past its window (read only once it is past)."""
        window = self.storage.params().confirm_window
        for (version, shard, node), assigned in list(self.assignments.items()):
            # Gas is estimated at the latest block, where the window must already be over.
            if latest <= assigned + window:
                continue
            record = self.storage.replica(version, shard, node)
            if record.status != "Assigned" or latest <= record.assigned_block + window:
                # confirmed, released or failed already (or assigned again later: its own event tracks it)
                del self.assignments[(version, shard, node)]
                continue
            label = f"version {version} shard {shard} of {node}"
            # Forgotten only once sent: a refused expire is tried again at the next step.
            if self._send(f"expire of {label}", partial(self.storage.expire, version, shard, node)):
                del self.assignments[(version, shard, node)]
                self._say(f"storage {self.address}: expired the unconfirmed assignment of {label}")

    def _challenge(self, latest: int) -> None:
        interval = self.storage.params().audit_interval
        epoch = latest // interval
        seed_block = epoch * interval
        # `challenge` needs the seed block mined before its own and within blockhash's reach of it. Gas is estimated
        # at the latest block (anvil, geth's default), so the seed block must be older than that one.
        if seed_block >= latest:
            epoch -= 1
            seed_block -= interval
        if epoch <= 0 or latest + 1 - seed_block > BLOCKHASH_REACH or self.storage.audit(epoch).opened:
            return
        if self.storage.audit_set_size() == 0:
            return
        if self._send(f"challenge({epoch})", lambda: self.storage.challenge(epoch)):
            self._say(f"storage {self.address}: challenged audit epoch {epoch}")
