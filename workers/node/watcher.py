"""The watcher: turns contract events into Celery tasks, on the queue of each role or account concerned.

    watcher = Watcher(chain, redis_client)      # chain: a read-only ChainClient of the deployment
    watcher.poll_once()                         # dispatch every event up to the latest safe block
    watcher.run(stop_event)                     # ... forever, backing off while the node or Redis is down

TrainingRounds (every event also queues the round keeper's `keeper_step(round)`):
- RoundOpened: `trainer_step(round)` to every registered trainer;
- DeltaRevealed: only the keeper's step (it restarts a keeper chain that was lost);
- panel drawn: `evaluator_step(round)` to each drawn evaluator that is registered;
- panel revealed: only the keeper's step (it finalizes as soon as every seat revealed);
- RoundFinalized (also a round failed at the draw: too few deltas, or its panel expired undrawn): `trainer_step(round)`
  to registered trainers, `evaluator_step(round)` to the registered panel.

DataConsensus (every event also queues the data keeper's `keeper_step(id)`: it draws the panel once the seed
block is mined, finalizes as soon as every seat revealed or after the window, settles silent seats):
- Submitted, panel revealed: only the keeper's step;
- panel drawn: `curate(id)` to each drawn curator that is registered;
- Finalized: if Accepted, also the round keeper's `keeper_step()` (it opens a round once enough data is pending).

The event names are the clients' (`TrainingRoundsClient.PANEL_DRAWN` ...): a contract renaming an event changes
them there. Tasks that sign go to the account's queue `<role>.<address>`; "registered" accounts are those whose
`deepshard worker --role ROLE` beat in Redis recently (`workers.node.registry`), so a worker gone for good stops
getting tasks. Keeper tasks go to the `keeper` queue.

Cursor: per chain id and contract, in Redis, the next block to scan (`deepshard:watcher:<chain>:<address>:cursor`).
Logs are fetched with eth_getLogs over bounded ranges (`max_range` blocks), up to `latest - confirmations`
(`confirmations` defaults to 0 on the dev chains 31337 and 1337, `DEFAULT_CONFIRMATIONS` elsewhere). A node that
refuses a range as too large ("query exceeds max block range 500", "query returned more than 10000 results") makes
the watcher shrink its range (to the number the node names, else by half) and go on.

Chain identity and reorgs: the chain id and genesis block hash are stored once per chain id
(`deepshard:watcher:<chain>:identity`); a watcher whose chain has another genesis (a dev chain restarted under the
same id) refuses the stored cursors with `ForeignCursor` (reset them with `deepshard watch --reset-cursor`). With
each cursor the watcher keeps the hashes of the last `RECENT_BLOCKS` range ends it scanned (`...:<address>:recent`);
before scanning on, it checks them against the chain, and after a reorg it rewinds to the newest block the chain
still has and scans again from there (a rescanned event gets the same deterministic task id).

Failures: any error of a poll (the node refusing, timing out or gone, Redis gone) is logged in one line and the poll
retried with exponential backoff; the loop ends only when told to, or on a foreign cursor.
The cursor moves past a range only after every task of every event in it was queued; within the range, each
queued (event, task) is recorded in a set (`...:sent`) as soon as it is queued, and the set is cleared in the
same MULTI that moves the cursor. A watcher killed anywhere restarts where it stopped: no event skipped, and
none queued twice, except one task whose queueing the kill interrupted between Redis accepting it and the
record (tasks are idempotent anyway). Each task id is deterministic (`watch:<chain>:<contract>:<block>:<log
index>:<queue>:<task>:<tx hash>`), so a duplicate runs once (`workers.tasks.delivery`).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis as redis_lib
import requests
from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import BlockNotFound, Web3RPCError

from ..chain import ChainClient, ChainError, NodeUnavailable
from ..chain.module import ModuleEvent
from ..data.chain import DataConsensusClient
from ..protocol.constants import DATA_STATUSES
from ..rounds.chain import TrainingRoundsClient
from ..tasks import consensus as consensus_tasks
from ..tasks import rounds as round_tasks
from ..tasks.delivery import FAILED_JOBS_KEY
from ..tasks.errors import QueueUnavailable
from ..tasks.runner import account_queue, send
from .registry import registered_accounts

logger = logging.getLogger(__name__)

ROUNDS, DATA = TrainingRoundsClient, DataConsensusClient
#: The events the watcher turns into tasks, per contract.
WATCHED: dict[str, tuple[ModuleEvent, ...]] = {
    ROUNDS.CONTRACT: (
        ROUNDS.ROUND_OPENED,
        ROUNDS.DELTA_REVEALED,
        ROUNDS.PANEL_DRAWN,
        ROUNDS.REVEALED,
        ROUNDS.ROUND_FINALIZED,
    ),
    DATA.CONTRACT: (DATA.SUBMITTED, DATA.PANEL_DRAWN, DATA.REVEALED, DATA.FINALIZED),
}
TRAINER_STEP = round_tasks.trainer_step.name
EVALUATOR_STEP = round_tasks.evaluator_step.name
KEEPER_STEP = round_tasks.keeper_step.name
CURATE = consensus_tasks.curate.name
DATA_KEEPER_STEP = consensus_tasks.keeper_step.name
ACCEPTED = DATA_STATUSES.index("Accepted")

DEFAULT_MAX_RANGE = 1_000
DEFAULT_INTERVAL = 2.0
MAX_BACKOFF = 60.0
#: Chain ids of the local dev chains (anvil, Ganache), where nothing reorganises: no confirmations by default.
DEV_CHAIN_IDS = (31337, 1337)
#: Blocks an event must be buried under on any other chain before it is dispatched.
DEFAULT_CONFIRMATIONS = 12
#: Range ends (block, hash) kept with each cursor to find where a reorg forked.
RECENT_BLOCKS = 64
#: How nodes say an eth_getLogs range is too large (anvil, geth, Infura, Alchemy, QuickNode, BSC nodes ...).
RANGE_ERROR = re.compile(
    r"block range|range (is )?too (large|wide|big)|exceeds? .*range|more than \d+ results|response size|"
    r"too many (blocks|results|logs)|limited to",
    re.IGNORECASE,
)
_RANGE_LIMIT = re.compile(
    r"range(?: of| is| limit| to)?:? (\d+)|(\d+) block range|up to (?:a )?(\d+)([kK]?) block",
)


class ForeignCursor(ChainError):
    """The stored watcher cursors were made on another chain (another genesis block under the same chain id)."""


def default_confirmations(chain_id: int) -> int:
    """0 on the dev chains (`DEV_CHAIN_IDS`), else `DEFAULT_CONFIRMATIONS`."""
    return 0 if int(chain_id) in DEV_CHAIN_IDS else DEFAULT_CONFIRMATIONS


def range_limit(message: str) -> int | None:
    """The largest range (blocks) a node's range error names ("max block range 500" -> 500), if any."""
    found = _RANGE_LIMIT.search(message)
    if found is None:
        return None
    if found.group(3):
        return int(found.group(3)) * (1000 if found.group(4) else 1)
    return int(found.group(1) or found.group(2))


@dataclass(frozen=True)
class ChainEvent:
    contract: str
    name: str
    args: dict
    block: int
    log_index: int
    tx_hash: str

    @property
    def position(self) -> str:
        return f"{self.block}:{self.log_index}"


@dataclass(frozen=True)
class Dispatch:
    """One task to queue for an event."""

    task: str
    args: tuple
    queue: str
    key: str = field(default="")


def cursor_key(chain_id: int, address: str) -> str:
    return f"deepshard:watcher:{int(chain_id)}:{to_checksum_address(address)}:cursor"


def sent_key(chain_id: int, address: str) -> str:
    return f"deepshard:watcher:{int(chain_id)}:{to_checksum_address(address)}:sent"


def recent_key(chain_id: int, address: str) -> str:
    """JSON list of [block, hash] of the last range ends scanned, oldest first."""
    return f"deepshard:watcher:{int(chain_id)}:{to_checksum_address(address)}:recent"


def identity_key(chain_id: int) -> str:
    """JSON {"chain_id", "genesis"} of the chain the watcher cursors of this chain id were made on."""
    return f"deepshard:watcher:{int(chain_id)}:identity"


class Router:
    """Which tasks an event calls for (the table of the module docstring)."""

    def __init__(self, chain: ChainClient, accounts: Callable[[str], Iterable[str]]):
        self.chain = chain
        self.accounts = accounts
        self._rounds: TrainingRoundsClient | None = None

    def _panel(self, round_id: int) -> list[str]:
        if self._rounds is None:
            self._rounds = TrainingRoundsClient(self.chain)
        return [member for member, _ in self._rounds.panel(round_id)]

    def _to_registered(self, task: str, item: int, role: str, members: Iterable[str]) -> list[Dispatch]:
        members = {to_checksum_address(a) for a in members}
        return [Dispatch(task, (item,), account_queue(role, a)) for a in self.accounts(role) if a in members]

    def route(self, event: ChainEvent) -> list[Dispatch]:
        name, args = event.name, event.args
        out: list[Dispatch] = []
        if event.contract == ROUNDS.CONTRACT:
            # The panel events, shared with every panel module, name the round `id`.
            panel_event = name in (ROUNDS.PANEL_DRAWN.name, ROUNDS.REVEALED.name)
            round_id = int(args["id"] if panel_event else args["round"])
            if name in (ROUNDS.ROUND_OPENED.name, ROUNDS.ROUND_FINALIZED.name):
                out += [
                    Dispatch(TRAINER_STEP, (round_id,), account_queue("trainer", a)) for a in self.accounts("trainer")
                ]
            if name == ROUNDS.PANEL_DRAWN.name:
                out += self._to_registered(EVALUATOR_STEP, round_id, "evaluator", args["members"])
            if name == ROUNDS.ROUND_FINALIZED.name:
                out += self._to_registered(EVALUATOR_STEP, round_id, "evaluator", self._panel(round_id))
            out.append(Dispatch(KEEPER_STEP, (round_id,), "keeper"))
        elif event.contract == DATA.CONTRACT:
            submission_id = int(args["id"])
            if name == DATA.PANEL_DRAWN.name:
                out += self._to_registered(CURATE, submission_id, "curator", args["members"])
            out.append(Dispatch(DATA_KEEPER_STEP, (submission_id,), "keeper"))
            if name == DATA.FINALIZED.name and int(args["status"]) == ACCEPTED:
                out.append(Dispatch(KEEPER_STEP, (None,), "keeper"))
        return out


class Watcher:
    """Scans the watched contracts' events and queues their tasks (module docstring)."""

    def __init__(
        self,
        chain: ChainClient,
        redis_client: redis_lib.Redis,
        *,
        send: Callable[[Dispatch, str], None] | None = None,
        accounts: Callable[[str], Iterable[str]] | None = None,
        confirmations: int | None = None,
        max_range: int = DEFAULT_MAX_RANGE,
        start_block: int | None = None,
    ):
        confirmations = default_confirmations(chain.chain_id) if confirmations is None else confirmations
        if max_range < 1 or confirmations < 0:
            raise ValueError("max_range must be positive and confirmations non-negative")
        self.chain = chain
        self.redis = redis_client
        self.confirmations = confirmations
        self._identity_checked = False
        self.max_range = max_range
        self.start_block = start_block
        self._send = send or _celery_send
        self.router = Router(chain, accounts or self._registered)
        self.contracts = {name: chain.contract(name) for name in WATCHED}
        self._topics: dict[tuple[str, bytes], tuple[str, ModuleEvent, Any]] = {}
        for name, events in WATCHED.items():
            contract = self.contracts[name]
            for event in events:
                abi_event = getattr(contract.events, event.name)
                topic = bytes(Web3.keccak(text=abi_event.signature))
                self._topics[(contract.address, topic)] = (name, event, abi_event)
        #: (event, tasks queued for it) of every event processed by this instance, in order
        self.history: list[tuple[ChainEvent, list[Dispatch]]] = []

    def _registered(self, role: str) -> list[str]:
        return registered_accounts(self.redis, self.chain.chain_id, role)

    # ------------------------------------------------------------ cursor

    def cursor(self, name: str) -> int:
        """The next block to scan for contract `name`."""
        address = self.contracts[name].address
        value = self.redis.get(cursor_key(self.chain.chain_id, address))
        if value is not None:
            return int(value)
        return self._first_block()

    def _first_block(self) -> int:
        if self.start_block is not None:
            return self.start_block
        return int(self.chain.deployment().get("deployBlock", 0))

    def _genesis(self) -> str:
        return Web3.to_hex(self.chain.w3.eth.get_block(0)["hash"])

    def check_identity(self) -> None:
        """Records this chain's id and genesis hash for its cursors, or `ForeignCursor` if the stored cursors were
        made on another chain (module docstring)."""
        if self._identity_checked:
            return
        chain_id = self.chain.chain_id
        genesis = self._genesis()
        raw = self.redis.get(identity_key(chain_id))
        if raw is None:
            # Cursors stored before identities were: one past the chain's head cannot be of this chain.
            latest = int(self.chain.w3.eth.block_number)
            for name, contract in self.contracts.items():
                value = self.redis.get(cursor_key(chain_id, contract.address))
                if value is not None and int(value) > latest + 1:
                    raise self._foreign(f"its {name} cursor is at block {int(value)}, past this chain's head {latest}")
            self.redis.set(identity_key(chain_id), json.dumps({"chain_id": chain_id, "genesis": genesis}))
        else:
            stored = json.loads(raw)
            if stored.get("genesis") != genesis:
                raise self._foreign(f"genesis {stored.get('genesis')}, this chain's is {genesis}")
        self._identity_checked = True

    def _foreign(self, why: str) -> ForeignCursor:
        return ForeignCursor(
            f"the watcher cursors stored in Redis for chain {self.chain.chain_id} were made on another chain ({why}): "
            "refusing to follow them; if this chain replaced that one, run `deepshard watch --reset-cursor` once"
        )

    def reset_cursors(self) -> None:
        """Forgets the cursors (and their sets and block hashes) of the watched contracts on this chain id, and
        records this chain as theirs: the next poll starts from the start block (else the deployment block).

        The state of the jobs keyed by this chain id and these contracts goes too (task results, job markers,
        leases, failures): a restarted dev chain redeploys at the same addresses, and a result of the old chain
        (a delta trained for its round 1) must not stand for the new one's."""
        chain_id = self.chain.chain_id
        keys = [identity_key(chain_id)]
        failed = []
        for contract in self.contracts.values():
            keys += [f(chain_id, contract.address) for f in (cursor_key, sent_key, recent_key)]
            scope = f"*:{chain_id}:{contract.address}:*"
            for pattern in (f"celery-task-meta-{scope}", f"deepshard:job:{scope}"):
                keys += list(self.redis.scan_iter(match=pattern, count=1000))
            failed += [field for field, _ in self.redis.hscan_iter(FAILED_JOBS_KEY, match=scope)]
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(*keys)
            if failed:
                pipe.hdel(FAILED_JOBS_KEY, *failed)
            pipe.set(identity_key(chain_id), json.dumps({"chain_id": chain_id, "genesis": self._genesis()}))
            pipe.execute()
        self._identity_checked = True

    def _recent(self, address: str) -> list[list]:
        raw = self.redis.get(recent_key(self.chain.chain_id, address))
        return json.loads(raw) if raw is not None else []

    def _block_hash(self, number: int) -> str | None:
        try:
            return Web3.to_hex(self.chain.w3.eth.get_block(number)["hash"])
        except BlockNotFound:
            return None

    def _rewind_after_reorg(self, name: str) -> None:
        """Moves the cursor of `name` back to just after the newest scanned block the chain still has."""
        address = self.contracts[name].address
        recent = self._recent(address)
        if not recent or self._block_hash(recent[-1][0]) == recent[-1][1]:
            return
        kept = list(recent)
        while kept and self._block_hash(kept[-1][0]) != kept[-1][1]:
            kept.pop()
        resume = kept[-1][0] + 1 if kept else self._first_block()
        logger.warning(
            "watcher: reorg on chain %s: block %d is no longer %s…; rescanning %s from block %d",
            self.chain.chain_id,
            recent[-1][0],
            recent[-1][1][:10],
            name,
            resume,
        )
        chain_id = self.chain.chain_id
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(cursor_key(chain_id, address), resume)
            pipe.delete(sent_key(chain_id, address))
            pipe.set(recent_key(chain_id, address), json.dumps(kept))
            pipe.execute()

    # ------------------------------------------------------------ polling

    def safe_block(self) -> int:
        return int(self.chain.w3.eth.block_number) - self.confirmations

    def poll_once(self) -> int:
        """Dispatches every event up to the latest safe block; returns the number of events processed.
        `ForeignCursor` if the stored cursors are another chain's."""
        self.check_identity()
        latest = self.safe_block()
        processed = 0
        for name in WATCHED:
            self._rewind_after_reorg(name)
            start = self.cursor(name)
            while start <= latest:
                end = min(start + self.max_range - 1, latest)
                try:
                    processed += self._scan(name, start, end)
                except (Web3RPCError, ValueError) as exc:
                    message = str(getattr(exc, "message", None) or exc)
                    if end == start or not RANGE_ERROR.search(message):
                        raise
                    self._shrink(end - start + 1, message)
                    continue
                start = end + 1
        return processed

    def _shrink(self, tried: int, message: str) -> None:
        limit = range_limit(message)
        smaller = limit if limit is not None and limit < tried else tried // 2
        self.max_range = max(smaller, 1)
        logger.warning(
            "watcher: the node refused %d blocks of logs (%s); asking for %d at a time", tried, message, self.max_range
        )

    def _scan(self, name: str, start: int, end: int) -> int:
        contract = self.contracts[name]
        chain_id = self.chain.chain_id
        done_key = sent_key(chain_id, contract.address)
        topics = [Web3.to_hex(topic) for (address, topic) in self._topics if address == contract.address]
        # The range end's hash before its logs: a reorg between the two is seen at the next poll.
        end_hash = Web3.to_hex(self.chain.w3.eth.get_block(end)["hash"])
        recent = self._recent(contract.address)
        logs = self.chain.w3.eth.get_logs(
            {"address": contract.address, "fromBlock": start, "toBlock": end, "topics": [topics]}
        )
        done = {m.decode() if isinstance(m, bytes) else str(m) for m in self.redis.smembers(done_key)}
        events = sorted((self._decode(log) for log in logs), key=lambda e: (e.block, e.log_index))
        for event in events:
            dispatches = [
                Dispatch(d.task, d.args, d.queue, f"{event.position}:{d.queue}:{d.task}")
                for d in self.router.route(event)
            ]
            queued = []
            for dispatch in dispatches:
                if dispatch.key in done:
                    continue  # queued before a restart that interrupted this range
                # The transaction's hash too: after a reorg another event may sit at the same position.
                self._send(dispatch, f"watch:{chain_id}:{contract.address}:{dispatch.key}:{event.tx_hash}")
                self.redis.sadd(done_key, dispatch.key)
                queued.append(dispatch)
            self.history.append((event, queued))
            skipped = len(dispatches) - len(queued)
            logger.info(
                "%s.%s at block %d -> %s%s",
                name,
                event.name,
                event.block,
                ", ".join(f"{d.task.rsplit('.', 1)[-1]}{d.args} @{d.queue}" for d in queued) or "no task",
                f" ({skipped} queued before a restart)" if skipped else "",
            )
        recent = [*recent, [end, end_hash]][-RECENT_BLOCKS:]
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(cursor_key(chain_id, contract.address), end + 1)
            pipe.delete(done_key)
            pipe.set(recent_key(chain_id, contract.address), json.dumps(recent))
            pipe.execute()
        return len(events)

    def _decode(self, log) -> ChainEvent:
        name, event, abi_event = self._topics[(to_checksum_address(log["address"]), bytes(log["topics"][0]))]
        decoded = abi_event().process_log(log)
        return ChainEvent(
            name,
            decoded["event"],
            dict(decoded["args"]),
            int(log["blockNumber"]),
            int(log["logIndex"]),
            Web3.to_hex(log["transactionHash"]),
        )

    # ------------------------------------------------------------ the loop

    def run(
        self,
        stop: threading.Event,
        interval: float = DEFAULT_INTERVAL,
        on_error: Callable[[str, float], None] | None = None,
        backoff: float = 2.0,
    ) -> None:
        """Polls every `interval` seconds until `stop` is set. Any error of a poll (a node or Redis that does not
        answer, an RPC error) is reported in one line and the poll retried with exponential backoff (`backoff`
        seconds doubling, at most 60); `ForeignCursor` ends the loop."""
        failures = 0
        while not stop.is_set():
            try:
                self.poll_once()
                failures = 0
                wait = interval
            except ForeignCursor:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one failure, or events go unseen
                failures += 1
                wait = min(backoff * 2.0 ** (failures - 1), MAX_BACKOFF)
                message = describe_failure(exc, self)
                if on_error is not None:
                    on_error(message, wait)
                else:
                    logger.warning("watcher: %s; retrying in %.0f s", message, wait)
            stop.wait(wait)


def describe_failure(exc: BaseException, watcher: Watcher | None = None) -> str:
    """One line saying what does not answer."""
    if isinstance(exc, redis_lib.exceptions.RedisError):
        where = ""
        if watcher is not None:
            kwargs = watcher.redis.connection_pool.connection_kwargs
            where = f" at redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
        return f"Redis{where} does not answer ({exc})"
    if isinstance(exc, (requests.RequestException, OSError)) and watcher is not None:
        return f"the chain node at {watcher.chain.display_url} does not answer ({type(exc).__name__})"
    if isinstance(exc, (NodeUnavailable, QueueUnavailable)):
        return str(exc)
    where = f" at {watcher.chain.display_url}" if watcher is not None else ""
    return (
        f"the chain node{where} answered with an error ({type(exc).__name__}: {getattr(exc, 'message', None) or exc})"
    )


def _celery_send(dispatch: Dispatch, task_id: str) -> None:
    send(dispatch.task, args=dispatch.args, queue=dispatch.queue, task_id=task_id)


def wait_for_node(chain_factory: Callable[[], ChainClient], stop: threading.Event) -> ChainClient | None:
    """A client once the node answers (retrying with backoff), or None if `stop` is set first."""
    failures = 0
    while not stop.is_set():
        try:
            return chain_factory()
        except NodeUnavailable as exc:
            failures += 1
            wait = min(2.0**failures, MAX_BACKOFF)
            logger.warning("watcher: %s; retrying in %.0f s", exc, wait)
            stop.wait(wait)
    return None


__all__ = [
    "ChainEvent",
    "Dispatch",
    "ForeignCursor",
    "Router",
    "Watcher",
    "WATCHED",
    "cursor_key",
    "describe_failure",
    "sent_key",
    "wait_for_node",
]
