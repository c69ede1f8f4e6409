"""Long-running processes: a role's Celery worker (`deepshard worker`) and the watcher (`deepshard watch`).

A worker of role R consumes the queue `R` and, for the roles that sign as one account (trainer, evaluator,
curator), `R.<its address>`; it registers that address in Redis so that the watcher sends it its tasks, and
queues a catch-up step for the current round (a worker started late, or restarted, picks up where the round
is). A keeper worker also runs the watcher in a thread unless told not to (`--no-watch`: run `deepshard watch`
elsewhere; one watcher per network is enough, and two are harmless).

The signer is loaded once, in this process, before Celery starts (a keystore's password is asked here, or
taken from $DEEPSHARD_KEYSTORE_PASSWORD), and the tasks of this worker (pool children included) sign with it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from typing import Callable

import redis as redis_lib

from ..chain import ChainClient, InvalidRequest, load_signer
from ..chain.accounts import KEYSTORE_ENV, KEYSTORE_PASSWORD_ENV, PRIVATE_KEY_ENV
from ..chain.client import RPC_URL_ENV
from .watcher import DEFAULT_INTERVAL, DEFAULT_MAX_RANGE, Watcher, wait_for_node

logger = logging.getLogger(__name__)

ROLES = ("trainer", "evaluator", "curator", "keeper")
DEFAULT_POOLS = {"trainer": "prefork", "evaluator": "prefork", "curator": "solo", "keeper": "solo"}


@dataclass(frozen=True)
class WorkerPlan:
    role: str
    account: str
    queues: list[str]
    catch_up: str | None


def load_worker_signer(account: str | None):
    """The signer: the keystore `account` (a path) if given, else the environment's. A password typed at
    the prompt is kept in this process's environment so that pool children and the curator task can sign."""
    if account:
        os.environ.pop(PRIVATE_KEY_ENV, None)
        os.environ[KEYSTORE_ENV] = account
    typed: list[str] = []

    def prompt(text: str) -> str:
        import getpass

        typed.append(getpass.getpass(text))
        return typed[-1]

    signer = load_signer(prompt=prompt)
    if typed:
        os.environ[KEYSTORE_PASSWORD_ENV] = typed[-1]
    return signer


def plan_worker(role: str, chain: ChainClient, client: redis_lib.Redis) -> WorkerPlan:
    """Registers the account for `role`, queues its catch-up step; returns the queues to consume."""
    from ..tasks.rounds import (
        ACCOUNT_ROLES,
        account_queue,
        redis_unavailable,
        register_account,
        send,
    )
    from .chain import TrainingRoundsClient

    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    account = chain.address
    rounds = TrainingRoundsClient(chain)  # also checks that the network is deployed on this chain
    queues = [role]
    catch_up = None
    try:
        if role in ACCOUNT_ROLES:
            queues.append(account_queue(role, account))
            register_account(client, chain.chain_id, role, account)
        current = rounds.current_round()
        if role == "keeper":
            send("workers.tasks.rounds.keeper_step", args=(None,), queue="keeper")
            catch_up = "keeper_step(current round)"
        elif role in ("trainer", "evaluator") and current is not None:
            send(f"workers.tasks.rounds.{role}_step", args=(current.id,), queue=account_queue(role, account))
            catch_up = f"{role}_step({current.id})"
    except redis_lib.exceptions.RedisError as exc:
        raise redis_unavailable(exc) from None
    return WorkerPlan(role, account, queues, catch_up)


def run_worker(role: str, rpc_url: str, *, account: str | None = None, pool: str | None = None,
               concurrency: int = 1, loglevel: str = "INFO", watch: bool = True,
               watch_interval: float = DEFAULT_INTERVAL, out: Callable[[str], None] = print) -> int:
    """Starts the Celery worker of `role` in this process (returns when it stops)."""
    from celery import signals

    from ..tasks.rounds import (
        ACCOUNT_ROLES,
        REGISTRATION_TTL,
        app,
        broker_redis,
        deregister_account,
        redis_unavailable,
        register_account,
        set_worker_signer,
    )

    signer = load_worker_signer(account)
    chain = ChainClient(rpc_url, signer)
    os.environ[RPC_URL_ENV] = rpc_url  # the tasks connect where this process did
    set_worker_signer(signer)
    plan = plan_worker(role, chain, broker_redis())
    if role == "curator":
        # `curate` queues its own next step; it must come back to this account's queue, not to any curator.
        app.conf.task_routes = ({"workers.tasks.curator.curate": {"queue": plan.queues[-1]}}, app.conf.task_routes)
    out(f"{role} worker for {plan.account} on chain {chain.chain_id}: queues {', '.join(plan.queues)}"
        + (f"; queued {plan.catch_up}" if plan.catch_up else ""))

    stop = threading.Event()
    background = []
    if role in ACCOUNT_ROLES:
        def heartbeat_loop():
            # Keeps the registration alive, and restores it after Redis lost it (a restart without persistence).
            while not stop.wait(REGISTRATION_TTL / 4):
                try:
                    register_account(broker_redis(), chain.chain_id, role, plan.account)
                except redis_lib.exceptions.RedisError as exc:
                    logger.warning("registration heartbeat: %s", redis_unavailable(exc))
                except Exception:  # noqa: BLE001 - the beat must outlive any one failure, or the worker goes deaf
                    logger.exception("registration heartbeat failed; beating again in %.0f s", REGISTRATION_TTL / 4)

        def deregister():
            try:
                deregister_account(broker_redis(), chain.chain_id, role, plan.account)
            except redis_lib.exceptions.RedisError as exc:
                logger.warning("could not deregister (the registration lapses by itself): %s", redis_unavailable(exc))

        background.append(("deepshard-heartbeat", heartbeat_loop))
    if role == "keeper" and watch:
        def watch_loop():
            node = wait_for_node(lambda: ChainClient(rpc_url), stop)
            if node is not None:
                logger.info("watcher started (chain %s)", node.chain_id)
                Watcher(node, broker_redis()).run(stop, watch_interval)

        background.append(("deepshard-watcher", watch_loop))

    def start_background(**_):
        for name, loop in background:
            threading.Thread(target=loop, name=name, daemon=True).start()

    def stop_background(**_):
        stop.set()
        if role in ACCOUNT_ROLES:
            deregister()

    signals.worker_ready.connect(start_background, weak=False)
    signals.worker_shutdown.connect(stop_background, weak=False)

    pool = pool or DEFAULT_POOLS[role]
    argv = ["worker", "-Q", ",".join(plan.queues), f"--pool={pool}", f"--concurrency={concurrency}",
            "-n", f"{role}-{plan.account[:10]}@%h", f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    app.worker_main(argv)
    return 0


def run_watch(rpc_url: str, *, confirmations: int = 0, max_range: int = DEFAULT_MAX_RANGE,
              start_block: int | None = None, interval: float = DEFAULT_INTERVAL,
              out: Callable[[str], None] = print, err: Callable[[str], None] = print) -> int:
    """Runs the watcher in the foreground until SIGINT or SIGTERM."""
    from ..tasks.rounds import broker_redis

    chain = ChainClient(rpc_url)
    watcher = Watcher(chain, broker_redis(), confirmations=confirmations, max_range=max_range,
                      start_block=start_block)
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
