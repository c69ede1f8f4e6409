"""Long-running processes: a role's Celery worker (`deepshard worker`) and the watcher (`deepshard watch`).

A worker of role R consumes the queue `R` and, for the roles that sign as one account (trainer, evaluator,
curator), `R.<its address>`; it registers that address in Redis (`workers.node.registry`) so that the watcher
sends it its tasks, beats while it runs and deregisters when it stops. On start it queues catch-up steps, so a
worker started late, or restarted, picks up where the network is (`plan_worker`):

- trainer, evaluator: its step on the current round;
- curator: `curate(id)` for every submission where its seat is not settled yet;
- keeper: the round keeper's step on the current round, and the data keeper's on every submission that still
  needs one (a panel to draw, a vote to finalize, a silent seat to settle).

A storage worker (`--role storage`) is no Celery worker: it runs the storage node's loop of bounded steps against
`Storage` in this process (`run_storage_worker`, `workers.shards.node`), since every step it takes is its own.

A keeper worker also runs the watcher in a thread unless told not to (`--no-watch`: run `deepshard watch`
elsewhere; one watcher per network is enough, and two are harmless). The keeper needs no stake, only ETH for gas.

The signer is loaded once, in this process, before Celery starts (a keystore's password is asked here, or taken
from $DEEPSHARD_KEYSTORE_PASSWORD), and handed to the step runner (`workers.tasks.runner.configure_worker`):
pool children are forked from this process and inherit it, so neither the key nor its password is ever put in
the environment.
"""

from __future__ import annotations

import getpass
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import redis as redis_lib
from eth_utils import to_checksum_address

from ..chain import ROLES, ChainClient, InvalidRequest, format_dsh, load_keystore, load_signer
from ..chain.accounts import KEYSTORE_PASSWORD_ENV, Signer
from ..data.chain import DataConsensusClient
from ..protocol.constants import ACCOUNT_ROLES, NODE_ROLES
from ..rounds.chain import TrainingRoundsClient
from ..rounds.specs import DEV_CHAIN_IDS, SAMPLE_SPEC_FILE, SPEC_ENV, SpecBook, configured_spec, sample_spec
from ..rounds.steps import configured_trainer_bond
from ..tasks import consensus as consensus_tasks
from ..tasks import rounds as round_tasks
from ..tasks.app import app
from ..tasks.delivery import check_visibility, failed_jobs
from ..tasks.runner import account_queue, broker_redis, configure_worker, redis_unavailable, send
from .registry import REGISTRATION_TTL, deregister_account, register_account, report_health
from .watcher import DEFAULT_INTERVAL, DEFAULT_MAX_RANGE, Watcher, wait_for_node

logger = logging.getLogger(__name__)

DEFAULT_POOLS = {"trainer": "prefork", "evaluator": "prefork", "curator": "solo", "keeper": "solo"}


@dataclass(frozen=True)
class WorkerPlan:
    role: str
    account: str
    queues: list[str]
    #: the catch-up steps queued, as "task(argument)"
    catch_up: list[str] = field(default_factory=list)


def load_worker_signer(account: str | None, env: dict | None = None) -> Signer:
    """The worker's signer: the encrypted JSON keystore at `account` if given (its password from
    $DEEPSHARD_KEYSTORE_PASSWORD, else asked once), else the environment's key (`load_signer`)."""
    if account:
        return load_keystore(account, (os.environ if env is None else env).get(KEYSTORE_PASSWORD_ENV), getpass.getpass)
    return load_signer(env)


def check_role_account(role: str, chain: ChainClient) -> None:
    """Refuses (`InvalidRequest`, one line saying what to do) an account that cannot do `role`'s work: a
    trainer, evaluator or curator without the role's minimum stake, an evaluator or curator outside its panel
    pool (it would never be drawn), any account without ETH for gas."""
    account = chain.address
    if chain.w3.eth.get_balance(to_checksum_address(account)) == 0:
        raise InvalidRequest(f"{account} has no ETH to pay for gas: fund it before starting a {role} worker")
    if role not in ACCOUNT_ROLES:
        return
    role_name = role.upper()
    index = ROLES.index(role_name)
    registry = chain.contract("StakeRegistry")
    staked = int(registry.functions.stakeOf(account, index).call())
    minimum = int(registry.functions.minStake(index).call())
    if staked < minimum:
        raise InvalidRequest(
            f"{account} stakes {format_dsh(staked, grouped=True)} DSH as {role_name}, the minimum is "
            f"{format_dsh(minimum, grouped=True)} DSH: run `deepshard stake {role_name} {format_dsh(minimum)}` first"
        )
    if role == "trainer":
        configured_trainer_bond()  # a malformed $DEEPSHARD_TRAINER_BOND refuses the worker now, not every round
        return
    module = TrainingRoundsClient(chain) if role == "evaluator" else DataConsensusClient(chain)
    if module.pool_bond(account) == 0:
        join = "round join-pool" if role == "evaluator" else "data join-pool"
        raise InvalidRequest(
            f"{account} has not joined the {role} pool, so it is never drawn: run `deepshard {join} AMOUNT` first"
        )


def plan_worker(role: str, chain: ChainClient, client: redis_lib.Redis) -> WorkerPlan:
    """Registers the account for `role` and queues its catch-up steps (module docstring); returns the queues to
    consume."""
    if role not in NODE_ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(NODE_ROLES)}, not {role!r}")
    account = chain.address
    rounds = TrainingRoundsClient(chain)  # also checks that the network is deployed on this chain
    check_role_account(role, chain)
    queues = [role]
    catch_up: list[tuple[str, tuple, str]] = []  # (task, args, queue)
    if role in ACCOUNT_ROLES:
        queues.append(account_queue(role, account))
        # Registered before the chain is read: an event between the read and the registration would otherwise
        # reach neither the watcher's routing nor this catch-up (a seat drawn then would go silent).
        try:
            register_account(client, chain.chain_id, role, account)
        except redis_lib.exceptions.RedisError as exc:
            raise redis_unavailable(exc) from None
    current = rounds.current_round()
    if role == "keeper":
        catch_up.append((round_tasks.keeper_step.name, (None,), "keeper"))
        for submission in DataConsensusClient(chain).unfinished():
            if not submission.finalized or submission.silent_seats:
                catch_up.append((consensus_tasks.keeper_step.name, (submission.id,), "keeper"))
    elif role in ("trainer", "evaluator") and current is not None:
        step = round_tasks.trainer_step if role == "trainer" else round_tasks.evaluator_step
        catch_up.append((step.name, (current.id,), queues[-1]))
    elif role == "curator":
        consensus = DataConsensusClient(chain)
        live: list[int] = []
        claims: list[int] = []
        for submission in consensus.unfinished():
            seat = consensus.seat_of(submission.id, account) if submission.panel_size else None
            if seat is not None and not submission.settled(seat):
                (claims if submission.finalized else live).append(submission.id)
        # Votes with a deadline first; claims, which have none, after them.
        catch_up.extend((consensus_tasks.curate.name, (sid,), queues[-1]) for sid in live + claims)
    try:
        for task, args, queue in catch_up:
            send(task, args=args, queue=queue)
    except redis_lib.exceptions.RedisError as exc:
        raise redis_unavailable(exc) from None
    shown = [
        f"{task.removeprefix('workers.tasks.')}({'current' if args == (None,) else args[0]})"
        for task, args, _ in catch_up
    ]
    return WorkerPlan(role, account, queues, shown)


def run_worker(
    role: str,
    rpc_url: str,
    *,
    account: str | None = None,
    pool: str | None = None,
    concurrency: int = 1,
    loglevel: str = "INFO",
    watch: bool = True,
    watch_interval: float = DEFAULT_INTERVAL,
    out: Callable[[str], None] = print,
) -> int:
    """Starts the Celery worker of `role` in this process (returns when it stops)."""
    from celery import signals

    if role == "storage":
        raise InvalidRequest("the storage role runs no Celery worker: use run_storage_worker")
    signer = load_worker_signer(account)
    chain = ChainClient(rpc_url, signer)
    configure_worker(signer, rpc_url)  # the tasks sign with this key and connect where this process did
    if role in ("trainer", "evaluator"):
        # Redis redelivers a job that outlives the visibility timeout: refuse to start if a known spec allows one.
        check_visibility(SpecBook(broker_redis()).known())
    plan = plan_worker(role, chain, broker_redis())
    if role == "keeper" and configured_spec() is None and chain.chain_id in DEV_CHAIN_IDS:
        # Set before Celery starts: every task's SpecBook, in this process and its pool's, reads it.
        os.environ[SPEC_ENV] = str(SAMPLE_SPEC_FILE)
        out(f"keeper: no ${SPEC_ENV}; on this dev chain rounds open with the sample spec ({SAMPLE_SPEC_FILE.name})")
    out(
        f"{role} worker for {plan.account} on chain {chain.chain_id}: queues {', '.join(plan.queues)}"
        + (f"; queued {', '.join(plan.catch_up)}" if plan.catch_up else "")
    )

    stop = threading.Event()
    background = []
    health = {"watcher": "running" if role == "keeper" and watch else "not run"}

    def report():
        client = broker_redis()
        failed = [job.job_id for job in failed_jobs(client)]
        report_health(client, chain.chain_id, role, plan.account, {**health, "failed_jobs": failed})

    def heartbeat_loop():
        # Keeps the registration alive, and restores it after Redis lost it (a restart without persistence).
        while True:
            try:
                if role in ACCOUNT_ROLES:
                    register_account(broker_redis(), chain.chain_id, role, plan.account)
                report()
            except redis_lib.exceptions.RedisError as exc:
                logger.warning("heartbeat: %s", redis_unavailable(exc))
            except Exception:  # noqa: BLE001 - the beat must outlive any one failure, or the worker goes deaf
                logger.exception("heartbeat failed; beating again in %.0f s", REGISTRATION_TTL / 4)
            if stop.wait(REGISTRATION_TTL / 4):
                return

    background.append(("deepshard-heartbeat", heartbeat_loop))
    if role in ACCOUNT_ROLES:

        def deregister():
            try:
                deregister_account(broker_redis(), chain.chain_id, role, plan.account)
            except redis_lib.exceptions.RedisError as exc:
                logger.warning("could not deregister (the registration lapses by itself): %s", redis_unavailable(exc))

    if role == "keeper" and watch:

        def watch_loop():
            try:
                node = wait_for_node(lambda: ChainClient(rpc_url), stop)
                if node is not None:
                    logger.info("watcher started (chain %s)", node.chain_id)
                    Watcher(node, broker_redis()).run(stop, watch_interval)
                health["watcher"] = "stopped"
            except BaseException as exc:  # the thread ends: say so where health is read, and in the log
                health["watcher"] = f"dead: {exc}"
                logger.critical("the watcher thread died: %s", exc)
                try:
                    report()
                except Exception:  # noqa: BLE001 - the heartbeat reports it at its next beat
                    pass
                raise

        background.append(("deepshard-watcher", watch_loop))
    pool = pool or DEFAULT_POOLS[role]
    if role in ("trainer", "evaluator") and pool != "prefork":
        # Tasks run in this process: load torch and the base model while waiting for work, so that the first job
        # fits a short commit window (on a dev chain: about 30 s less). Prefork children load their own.
        spec = configured_spec() or (sample_spec() if chain.chain_id in DEV_CHAIN_IDS else None)

        def warm_up():
            from ..tasks.training import genesis_model, ml_runtime

            try:
                ml_runtime()
                if spec is not None:
                    genesis_model(spec.base_model)
                    logger.info("warmed up: torch and the %s base model are loaded", spec.base_model)
            except Exception:  # noqa: BLE001 - a failed warm-up only leaves the work to the first task
                logger.exception("warm-up failed; the first task loads the model itself")

        background.append(("deepshard-warm-up", warm_up))

    def start_background(**_):
        for name, loop in background:
            threading.Thread(target=loop, name=name, daemon=True).start()

    def stop_background(**_):
        stop.set()
        if role in ACCOUNT_ROLES:
            deregister()

    signals.worker_ready.connect(start_background, weak=False)
    signals.worker_shutdown.connect(stop_background, weak=False)

    argv = [
        "worker",
        "-Q",
        ",".join(plan.queues),
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        "-n",
        f"{role}-{plan.account[:10]}@%h",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]
    app.worker_main(argv)
    return 0


@dataclass(frozen=True)
class StorageOptions:
    """A storage worker's settings: `endpoint` and `capacity` (bytes) to register with (needed only until it is
    registered), `sources` (IPFS RPC API addresses or embedded store folders to fetch replicas from,
    besides its own store), `keeper` (challenge,
    slash missed audits and expire unconfirmed assignments too) and the poll `interval` in seconds."""

    endpoint: str | None = None
    capacity: int | None = None
    sources: tuple[str, ...] = ()
    keeper: bool = True
    interval: float = 2.0


def run_storage_worker(
    rpc_url: str,
    options: StorageOptions,
    *,
    account: str | None = None,
    out: Callable[[str], None] = print,
) -> int:
    """Runs the storage node (`workers.shards.node.StorageNode`) in the foreground until SIGINT or SIGTERM. Its own
    store is `open_store()` ($DEEPSHARD_IPFS_API, else the embedded store). Raises `InvalidRequest` (nothing sent)
    when the account cannot register: no ETH, STORAGE stake below the bond, no endpoint or capacity."""
    from ..shards.chain import StorageClient
    from ..shards.node import StorageNode
    from ..storage import EmbeddedStore, IpfsStore, open_store

    signer = load_worker_signer(account)
    chain = ChainClient(rpc_url, signer)
    check_role_account("storage", chain)
    store = open_store()
    sources = [
        IpfsStore(source)
        if source.startswith(("/ip4/", "/ip6/", "/dns", "http://", "https://"))
        else EmbeddedStore(source)
        for source in options.sources
    ]
    node = StorageNode(
        StorageClient(chain),
        store,
        sources=sources,
        endpoint=options.endpoint,
        capacity=options.capacity,
        keeper=options.keeper,
        out=out,
    )
    node.ensure_registered()
    out(
        f"storage worker for {chain.address} on chain {chain.chain_id}: replicas in {store.location}"
        + (f", fetched also from {', '.join(s.location for s in sources)}" if sources else "")
        + ("; keeping audits" if options.keeper else "")
    )
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        node.run(stop, options.interval)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out("storage worker stopped")
    return 0


def run_watch(
    rpc_url: str,
    *,
    confirmations: int | None = None,
    max_range: int = DEFAULT_MAX_RANGE,
    start_block: int | None = None,
    interval: float = DEFAULT_INTERVAL,
    reset_cursor: bool = False,
    out: Callable[[str], None] = print,
    err: Callable[[str], None] = print,
) -> int:
    """Runs the watcher in the foreground until SIGINT or SIGTERM (`confirmations` None: `default_confirmations`).
    With `reset_cursor`, first forgets the stored cursors of this chain id (`Watcher.reset_cursors`). A cursor of
    another chain raises `ForeignCursor`."""
    chain = ChainClient(rpc_url)
    watcher = Watcher(chain, broker_redis(), confirmations=confirmations, max_range=max_range, start_block=start_block)
    if reset_cursor:
        try:
            watcher.reset_cursors()
        except redis_lib.exceptions.RedisError as exc:
            raise redis_unavailable(exc) from None
        out(f"forgot the watcher cursors of chain {chain.chain_id}")
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        cursors = []
        for name in watcher.contracts:
            try:
                cursors.append(f"{name} from block {watcher.cursor(name)}")
            except redis_lib.exceptions.RedisError:
                cursors.append(f"{name} from its stored cursor")
        out(f"watching chain {chain.chain_id} at {chain.display_url}: {', '.join(cursors)}")
        watcher.run(stop, interval, on_error=lambda message, wait: err(f"watcher: {message}; retrying in {wait:.0f} s"))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out("watcher stopped")
    return 0
