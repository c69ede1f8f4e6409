"""One base for the clients of the network's modules: what `DataConsensusClient` and `TrainingRoundsClient`
(and the clients of the modules to come) do the same way.

    class DataConsensusClient(ModuleClient):
        CONTRACT = "DataConsensus"           # the deployment's contract this client drives
        POOL_ROLE = "CURATOR"                # the stake its panel pool locks
        PANEL_DRAWN = ModuleEvent("PanelDrawn")   # every event it reads, named once

- Reads: the contract, the latest and deploy blocks, `params()` (getParams by field name), panels and seats,
  pool bonds. Phases are judged conservatively from the latest block: a transaction sent now is checked (gas
  estimate) against the state at `latest` and lands in a later block, so a window counts as open only when it
  is open at `latest` and still open at `latest + 1` (`window_phase`).
- Events: `logs` scans bounded block ranges (`LOG_RANGE` blocks per eth_getLogs) and `receipt_event` reads a
  receipt; `logs` returns `Log`s, `receipt_event(s)` the events' argument dicts (each event named once per client,
  `ModuleEvent`).
- Writes: `settle_inflight` first waits until no transaction of this account is pending (a worker killed after
  sending and restarted sees its transaction land instead of sending a second); `require_free_stake` refuses a
  lock the stake cannot cover; `join_pool` locks stake in the module's panel pool. Every write raises
  `InvalidRequest` (one sentence, nothing sent) when it cannot succeed now.
- Salts: a commitment's salt is stored before the commitment is sent (`workers.chain.salts`) and checked
  against the contract's commitment function before it is used.
- `Step` is what one step of a role returns, and `raced` runs an action anyone may take.

The contracts store CIDs in binary form (`Cid.to_bytes()`); people and stores use strings (`cid_to_chain`,
`cid_from_chain`).
"""

from __future__ import annotations

import abc
import dataclasses
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from eth_utils import to_checksum_address
from web3 import Web3
from web3.logs import DISCARD

from ..storage.cids import Cid, parse_cid
from ..storage.errors import StorageError
from .client import ChainClient
from .errors import ChainError, InvalidRequest, ReceiptTimeout, TransactionReverted
from .roles import ROLES, parse_role
from .salts import VOTES_DIR_ENV, Salt, SaltKey, SaltNotFound, SaltStore, plain_json
from .units import format_dsh

#: Most blocks per eth_getLogs request.
LOG_RANGE = 5_000
#: Seconds between checks while this account has a transaction pending.
INFLIGHT_POLL = 0.2

T = TypeVar("T")


# ---------------------------------------------------------------- CIDs


def cid_to_chain(cid: str | Cid) -> bytes:
    """'bafk...' -> the binary CID a contract stores; `InvalidRequest` if it is not a CID."""
    try:
        return parse_cid(cid).to_bytes()
    except StorageError as exc:
        raise InvalidRequest(f"{cid!r} is not a valid CID ({exc})") from None


def cid_from_chain(raw: bytes) -> str:
    """The binary CID a contract stores -> its string form."""
    return str(Cid.from_bytes(bytes(raw)))


# ---------------------------------------------------------------- events


class ModuleEvent:
    """A contract event a client reads, named once per client: `ModuleEvent("PanelDrawn")`. The panel events
    (`PanelDrawn`, `Committed`, `Revealed`, `Settled`) are declared once in `SortitionPanel.sol`
    and have the same arguments on every panel module (`id`, `members`, `member`)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"ModuleEvent({self.name!r})"


@dataclass(frozen=True)
class Log:
    """One event: its arguments, where it is, which transaction."""

    name: str
    args: dict[str, Any]
    block: int
    log_index: int
    tx_hash: str


def event_logs(
    contract,
    event: str,
    filters: Mapping[str, Any] | None,
    start: int,
    end: int,
    *,
    first: bool = False,
    newest_first: bool = False,
) -> list[Log]:
    """The `event` logs of `contract` (a web3 contract) matching `filters` (by argument name) in blocks [start,
    end], `LOG_RANGE` blocks per eth_getLogs request, in block order (ranges walked from `end` down with
    `newest_first`); with `first`, stops at the first range that has any."""
    abi_event = getattr(contract.events, event)
    start = max(int(start), 0)
    ranges = [(low, min(low + LOG_RANGE - 1, end)) for low in range(start, int(end) + 1, LOG_RANGE)]
    if newest_first:
        ranges.reverse()
    found: list[Log] = []
    for low, high in ranges:
        logs = abi_event.get_logs(argument_filters=dict(filters or {}) or None, from_block=low, to_block=high)
        found.extend(
            Log(
                event,
                dict(log["args"]),
                int(log["blockNumber"]),
                int(log["logIndex"]),
                Web3.to_hex(log["transactionHash"]),
            )
            for log in logs
        )
        if first and logs:
            break
    return found


def tx_hash(receipt: Any) -> str:
    """The 0x-hex hash of a receipt's transaction."""
    return Web3.to_hex(receipt["transactionHash"])


def window_phase(latest: int, commit_deadline: int, reveal_deadline: int, all_revealed: bool, who: str = "") -> str:
    """What a transaction sent when `latest` is the newest block can do in a drawn panel's windows: `<who>
    commit`, `<who> reveal opens next block`, `<who> reveal`, `finalize opens next block` or `ready to finalize`
    (after the reveal window, or once every seat revealed after the commit window)."""
    prefix = f"{who} " if who else ""
    if latest + 1 <= commit_deadline:
        return f"{prefix}commit"
    if latest <= commit_deadline:
        return f"{prefix}reveal opens next block"
    if all_revealed or latest > reveal_deadline:
        return "ready to finalize"
    if latest + 1 <= reveal_deadline:
        return f"{prefix}reveal"
    return "finalize opens next block"


def full_mask(size: int) -> int:
    """The bit mask with one bit per seat of a panel of `size` seats."""
    return (1 << size) - 1


def inflight(chain: ChainClient, account: str | None = None) -> int:
    """Transactions of `account` (default: `chain`'s signer) sent but not yet mined."""
    account = to_checksum_address(account or chain.address)
    eth = chain.w3.eth
    pending, mined = eth.get_transaction_count(account, "pending"), eth.get_transaction_count(account, "latest")
    return max(int(pending) - int(mined), 0)


def settle_inflight(chain: ChainClient, timeout: float | None = None) -> None:
    """Waits until no transaction of `chain`'s signer is pending (a worker killed after sending and restarted sees
    its transaction land instead of sending a second); `ReceiptTimeout` after `timeout` seconds (default: the
    client's receipt timeout). A no-op for a read-only client."""
    if chain.signer is None:
        return
    deadline = time.monotonic() + (chain.receipt_timeout if timeout is None else timeout)
    while (count := inflight(chain)) > 0:
        if time.monotonic() > deadline:
            raise ReceiptTimeout(
                f"{count} earlier transaction(s) of {chain.address} are still pending: "
                "waiting for them before sending anything",
                "",
            )
        time.sleep(INFLIGHT_POLL)


# ---------------------------------------------------------------- steps


@dataclass(frozen=True)
class CommitResult:
    """A commitment sent: to what (`kind` on item `id`), the salt file kept for its reveal, the reveal window
    (blocks, inclusive) and the transaction."""

    id: int
    kind: str
    value: Any
    salt_path: str
    reveal_from: int
    reveal_deadline: int
    tx_hash: str


@dataclass(frozen=True)
class PanelVote:
    """One account's seat on a panel open for votes, as the vote flow needs it: `what` names the vote in
    messages ("vote on #3"), the windows are inclusive block numbers, `committed` reads the chain when
    called, and `item` is the module's own record (a submission, a round)."""

    what: str
    seat: int
    commit_deadline: int
    reveal_deadline: int
    revealed: bool
    committed: Callable[[], bool]
    item: Any


@dataclass(frozen=True)
class Step:
    """What one step of a role did (`workers.rounds.steps`, `workers.data.steps`): `action` is what it did
    (committed, revealed, claimed, drawn, failed, expired, finalized, settled, opened, training, fingerprinting,
    waiting or done),
    `id` the item it acted on (a round, a submission; None when there was none)."""

    role: str
    id: int | None
    action: str
    detail: str
    #: the block from which there is something to do again
    wake_at_block: int | None = None
    #: seconds after which to look again (an ML job is running)
    poll_after: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.wake_at_block is None and self.poll_after is None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def raced(action: Callable[[], T], taken: Callable[[], bool]) -> T | None:
    """Runs `action`, one that anyone may take (draw a panel, finalize, settle a seat). If it fails because
    someone else took it first (their transaction landed between our checks and ours), `taken()` says so and
    None is returned instead of the failure."""
    try:
        return action()
    except (TransactionReverted, InvalidRequest):
        if taken():
            return None
        raise


# ---------------------------------------------------------------- the client


class ModuleClient(abc.ABC):
    """One account acting on one module of its chain's deployment (read-only without a signer)."""

    #: The deployment's name of the contract (`ChainClient.contract`).
    CONTRACT: ClassVar[str]
    #: The stake role whose stake the module's panel pool locks.
    POOL_ROLE: ClassVar[str]
    POOL_JOINED: ClassVar[ModuleEvent] = ModuleEvent("PoolJoined")
    # The panel's events, declared once in SortitionPanel.sol for every panel module.
    PANEL_DRAWN: ClassVar[ModuleEvent] = ModuleEvent("PanelDrawn")
    COMMITTED: ClassVar[ModuleEvent] = ModuleEvent("Committed")
    REVEALED: ClassVar[ModuleEvent] = ModuleEvent("Revealed")
    SETTLED: ClassVar[ModuleEvent] = ModuleEvent("Settled")
    #: The panel's vote: its salt kind and the contract functions `commit(id, commitment)` and
    #: `reveal(id, value, salt)` (`commit_vote`, `reveal_vote`).
    VOTE_KIND: ClassVar[str]
    COMMIT_FUNCTION: ClassVar[str]
    REVEAL_FUNCTION: ClassVar[str]

    def __init__(self, chain: ChainClient, salts: SaltStore | None = None):
        self.chain = chain
        self.contract = chain.contract(self.CONTRACT)
        self.registry = chain.contract("StakeRegistry")
        self.salts = salts if salts is not None else SaltStore()

    # ------------------------------------------------------------ reads

    def latest_block(self) -> int:
        return int(self.chain.w3.eth.block_number)

    def deploy_block(self) -> int:
        return int(self.chain.deployment().get("deployBlock", 0))

    def params(self) -> dict[str, int]:
        """`getParams()` as a dict by field name."""
        return struct_of(self.contract, "getParams")

    def panel(self, panel_id: int) -> list[tuple[str, int]]:
        """(member, votes: its number of draws) of each seat of a drawn panel, in seat order."""
        members, weights = self.contract.functions.panelOf(int(panel_id)).call()
        return list(zip(members, (int(w) for w in weights), strict=True))

    def seat_of(self, panel_id: int, member: str | None = None) -> int | None:
        """The seat of `member` (default: this account) on the panel of `panel_id`, or None."""
        seat, on_panel = self.contract.functions.seatOf(int(panel_id), member or self.chain.address).call()
        return int(seat) if on_panel else None

    def pool_bond(self, account: str | None = None) -> int:
        """The panel-pool bond (wei) of `account` (default: this one)."""
        return int(self.contract.functions.poolMembers(account or self.chain.address).call()[2])

    # ------------------------------------------------------------ events

    def logs(
        self,
        event: ModuleEvent,
        filters: Mapping[str, Any] | None,
        start: int,
        end: int,
        *,
        contract=None,
        first: bool = False,
        newest_first: bool = False,
    ) -> list[Log]:
        """`event_logs` of `contract` (default: this module's)."""
        return event_logs(
            contract or self.contract, event.name, filters, start, end, first=first, newest_first=newest_first
        )

    def receipt_events(self, receipt: Any, event: ModuleEvent) -> list[dict[str, Any]]:
        """The arguments of each `event` the transaction of `receipt` emitted."""
        decoded = getattr(self.contract.events, event.name)().process_receipt(receipt, errors=DISCARD)
        return [dict(entry["args"]) for entry in decoded]

    def receipt_event(self, receipt: Any, event: ModuleEvent) -> dict[str, Any]:
        """The arguments of the first `event` of `receipt`; `ChainError` if it emitted none."""
        events = self.receipt_events(receipt, event)
        if not events:
            raise ChainError(f"transaction {tx_hash(receipt)} emitted no {event.name} event")
        return events[0]

    # ------------------------------------------------------------ transactions in flight

    def inflight(self, account: str | None = None) -> int:
        """Transactions of `account` (default: this one) sent but not yet mined."""
        return inflight(self.chain, account)

    def settle_inflight(self, timeout: float | None = None) -> None:
        """Waits until no transaction of this account is pending (`settle_inflight`)."""
        settle_inflight(self.chain, timeout)

    # ------------------------------------------------------------ stake

    def free_stake(self, role: int | str) -> tuple[int, int]:
        """(unlocked, staked) wei of this account's `role` stake."""
        account = to_checksum_address(self.chain.address)
        role = parse_role(role)
        staked = int(self.registry.functions.stakeOf(account, role).call())
        return staked - int(self.registry.functions.lockedOf(account, role).call()), staked

    def require_free_stake(self, role: int | str, amount: int, what: str) -> None:
        """`InvalidRequest` unless this account's unlocked `role` stake covers `amount` (wei) and it has ETH for gas;
        `what` names the lock in the message ("the bond")."""
        role = parse_role(role)
        account = to_checksum_address(self.chain.address)
        free, staked = self.free_stake(role)
        if free < amount:
            name = ROLES[role]
            raise InvalidRequest(
                f"{what} of {format_dsh(amount)} DSH exceeds the unlocked {name} stake of {account} "
                f"({format_dsh(free)} of {format_dsh(staked)} DSH): stake more with "
                f"`deepshard stake {name} AMOUNT`"
            )
        if self.chain.w3.eth.get_balance(account) == 0:
            raise InvalidRequest(f"{account} has no ETH to pay for gas")

    def join_pool(self, amount: int) -> int:
        """Locks `amount` (wei) more `POOL_ROLE` stake as this account's pool bond (its weight in panel draws, and
        what penalties are taken from); returns the new bond."""
        self.settle_inflight()
        bond = self.pool_bond()
        minimum = self.params()["minPoolBond"]
        if bond + amount < minimum:
            raise InvalidRequest(
                f"the pool bond would be {format_dsh(bond + amount)} DSH, below the minimum of "
                f"{format_dsh(minimum)} DSH"
            )
        self.require_free_stake(self.POOL_ROLE, amount, "the pool bond")
        receipt = self.chain.transact(self.contract.functions.joinPool(amount))
        return int(self.receipt_event(receipt, self.POOL_JOINED)["bond"])

    # ------------------------------------------------------------ salts

    @abc.abstractmethod
    def commitment_for(self, kind: str, value: Any, salt: bytes, account: str) -> bytes:
        """The commitment the contract expects for `value` of `kind` hidden with `salt` by `account`."""

    def salt_key(self, kind: str, item_id: int) -> SaltKey:
        """The key of this account's `kind` commitment on `item_id` of this module."""
        return SaltKey(self.chain.chain_id, self.contract.address, kind, item_id, self.chain.address)

    def stored_salt(self, kind: str, item_id: int) -> Salt | None:
        """This account's stored `kind` commitment on `item_id`, if any."""
        return self.salts.load(self.salt_key(kind, item_id))

    def salt_for(self, kind: str, item_id: int, value: Any) -> Salt:
        """The salt to commit `value` with: the stored one (an interrupted earlier commit), else a fresh random
        one, stored before it is returned. `InvalidRequest` if another value is stored: committing this one
        could never be revealed if the earlier commit lands."""
        key = self.salt_key(kind, item_id)
        stored = self.salts.load(key)
        if stored is None:
            salt = secrets.token_bytes(32)
            stored = self.salts.save(Salt(key, value, salt, self.commitment_for(kind, value, salt, key.account)))
        if stored.value != plain_json(value):
            raise InvalidRequest(
                f"another {kind} {stored.value} is already stored for #{key.id} in "
                f"{self.salts.path(key)} (an interrupted earlier commit): commit that one again to "
                "finish it, or delete the file if its commit can no longer land"
            )
        self.check_salt(stored)
        return stored

    def commit_salted(
        self, kind: str, item_id: int, value: Any, commit: Callable[[bytes], Any], windows: tuple[int, int]
    ) -> CommitResult:
        """Sends `commit(commitment)` (a contract function call) for `value` with its salt stored first
        (`salt_for`); `windows` is (commit deadline, reveal deadline) in blocks, reported in the result."""
        stored = self.salt_for(kind, item_id, value)
        receipt = self.chain.transact(commit(stored.commitment))
        commit_deadline, reveal_deadline = windows
        return CommitResult(
            item_id,
            kind,
            stored.value,
            str(self.salts.path(stored.key)),
            commit_deadline + 1,
            reveal_deadline,
            tx_hash(receipt),
        )

    def commit_vote(self, item_id: int, value: Any) -> CommitResult:
        """Commits this account's panel vote `value` on `item_id` (a curator's scores, an evaluator's
        fingerprints), its salt stored first. `InvalidRequest` when the item is not being voted on, this account
        has no seat, the commit window is over for a transaction sent now, or it committed already."""
        self.settle_inflight()
        vote = self.panel_vote(item_id)
        value = self.checked_vote(vote, value)
        if self.latest_block() + 1 > vote.commit_deadline:
            raise InvalidRequest(f"the commit window for {vote.what} closed at block {vote.commit_deadline}")
        if vote.committed():
            raise InvalidRequest(
                f"{self.chain.address} already committed its {vote.what}: "
                f"reveal it from block {vote.commit_deadline + 1}"
            )
        return self.commit_salted(
            self.VOTE_KIND,
            item_id,
            value,
            lambda commitment: getattr(self.contract.functions, self.COMMIT_FUNCTION)(item_id, commitment),
            (vote.commit_deadline, vote.reveal_deadline),
        )

    def reveal_vote(self, item_id: int) -> tuple[Salt, str]:
        """Reveals this account's committed panel vote on `item_id` from its stored salt; returns the salt and the
        tx hash. `InvalidRequest` outside the reveal window, when already revealed or never committed."""
        self.settle_inflight()
        vote = self.panel_vote(item_id)
        self.require_reveal_window(f"the reveal window for {vote.what}", vote.commit_deadline, vote.reveal_deadline)
        account = self.chain.address
        if vote.revealed:
            raise InvalidRequest(f"{account} already revealed its {vote.what}")
        if not vote.committed():
            raise InvalidRequest(f"{account} has no commitment of its {vote.what} to reveal")
        stored = self.revealable_salt(self.VOTE_KIND, item_id, vote.what)
        reveal = getattr(self.contract.functions, self.REVEAL_FUNCTION)(item_id, stored.value, stored.salt)
        return stored, tx_hash(self.chain.transact(reveal))

    @abc.abstractmethod
    def panel_vote(self, item_id: int) -> PanelVote:
        """This account's seat on the panel of `item_id`, which must be open for votes (`InvalidRequest`
        naming the phase otherwise)."""

    def checked_vote(self, vote: PanelVote, value: Any) -> Any:
        """`value` as the contract takes it, or `InvalidRequest` (nothing sent); the module's rule."""
        return value

    def require_reveal_window(self, what: str, commit_deadline: int, reveal_deadline: int) -> None:
        """`InvalidRequest` unless a reveal sent now lands in the window (commit_deadline, reveal_deadline] of
        `what` ("the reveal window of #3"): open at the latest block and still open at the next."""
        latest = self.latest_block()
        if latest <= commit_deadline:
            raise InvalidRequest(
                f"{what} opens once block {commit_deadline + 1} is mined; the chain is at block {latest}"
            )
        if latest + 1 > reveal_deadline:
            raise InvalidRequest(f"{what} closed at block {reveal_deadline}")

    def revealable_salt(self, kind: str, item_id: int, what: str) -> Salt:
        """This account's stored `kind` commitment on `item_id`, checked; `SaltNotFound` naming `what` ("vote on
        #3") and where the salt was expected otherwise."""
        key = self.salt_key(kind, item_id)
        stored = self.salts.load(key)
        if stored is None:
            raise SaltNotFound(
                f"no stored salt for {key.account}'s {what} (expected {self.salts.path(key)}; set "
                f"{VOTES_DIR_ENV} to the folder used when committing)"
            )
        self.check_salt(stored)
        return stored

    def check_salt(self, stored: Salt) -> None:
        # A damaged or foreign file must fail here, not as a CommitmentMismatch revert after the window.
        if self.commitment_for(stored.key.kind, stored.value, stored.salt, stored.key.account) != stored.commitment:
            raise SaltNotFound(
                f"stored salt {self.salts.path(stored.key)} is inconsistent (its salt and value do not "
                "give its commitment)"
            )


def struct_of(contract, function: str, *args: Any) -> dict[str, Any]:
    """The struct a view function returns, as a dict by field name."""
    names = [c["name"] for c in contract.get_function_by_name(function).abi["outputs"][0]["components"]]
    return dict(zip(names, getattr(contract.functions, function)(*args).call(), strict=True))
