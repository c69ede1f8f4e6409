"""Training-round role tasks: trainer, evaluator and keeper steps, run from chain events by the watcher.

    trainer_step(round_id)     queue trainer.<account>: train (train_delta), commit, reveal, claim
    evaluator_step(round_id)   queue evaluator.<account>: fingerprint (fingerprint_deltas), commit, reveal, settle
    keeper_step(round_id=None) queue keeper: draw the panel, finalize, settle seats, open the next round

Each task runs one step of `workers.rounds.steps` with the key of the worker's host, then queues itself
again for when the next phase opens (or, while an ML job runs, a few seconds later), until nothing is left.

Queues: one per role, and for the roles that sign as themselves (trainer, evaluator, curator) one per account
within it, `<role>.<checksum address>`: a trainer's step must run where its key is. `deepshard worker --role R`
consumes `R` and `R.<its address>`, and registers the address in Redis (the sorted set
`deepshard:<chain>:workers:<role>`, scored by its last heartbeat) so that the watcher knows whom to notify; a
worker beats every 30 s and deregisters when it stops, and one silent for 120 s is no longer notified.

ML jobs are called by name, never imported: `workers.tasks.training.train_delta` on the trainer's own queue and
`workers.tasks.evaluation.fingerprint_deltas` on the evaluator's. A job has a deterministic task id (job name,
chain, contract, round, account): a step looks its result up and sends it only when the result backend has
never heard of it (or, after `JOB_RESEND_AFTER` seconds without news, once more: the message was lost). So a
step killed and redelivered finds the job it started instead of training twice.

Reliability: `acks_late` with `reject_on_worker_lost` (the app's defaults): a step whose worker died is
delivered again; it reads the chain, and every write waits for this account's pending transactions and checks
on-chain state first, so nothing is sent twice. At most one step per (role, account, round) runs at a time (a
Redis lock, re-entrant for a redelivered message); scheduled wake-ups are deduplicated so event-triggered and
self-scheduled steps converge to one chain. A chain node, Redis or storage node that does not answer (and a
receipt that does not come) is retried with exponential backoff, each retry logged in one line.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from typing import Any, Callable

import redis as redis_lib
from celery.utils.log import get_task_logger
from eth_utils import to_checksum_address

from ..chain import ChainClient, ReceiptTimeout, load_signer
from ..chain.accounts import Signer
from ..rounds.specs import SpecBook
from ..rounds.steps import JobFailed, Step, evaluator_once, keeper_once, trainer_once
from .app import app
from .base import RETRY_POLICY, TRANSIENT_ERRORS, DeepshardTask, _connection_failure, _redis_location
from .errors import QueueUnavailable
from .waiting import BlockWait

logger = get_task_logger(__name__)

TRAIN_TASK = "workers.tasks.training.train_delta"
FINGERPRINT_TASK = "workers.tasks.evaluation.fingerprint_deltas"
ROLES = ("trainer", "evaluator", "curator", "keeper")
#: Roles whose tasks must run where one account's key is: they get a queue per account.
ACCOUNT_ROLES = ("trainer", "evaluator", "curator")

#: Waits between a round role's steps: 1 s to $DEEPSHARD_ROUNDS_MAX_WAIT (else 300 s).
WAIT = BlockWait("DEEPSHARD_ROUNDS_MAX_WAIT", min_wait=1.0)
#: Seconds a step holds its lock at most (a step never waits on training; a receipt takes < 2 minutes).
LOCK_TTL = 600
#: Seconds before a busy step (another one holds the lock) looks again.
BUSY_RETRY = 2.0
#: A scheduled wake-up this many seconds overdue is presumed lost.
SCHEDULE_GRACE = 120.0
#: Seconds without news of a sent ML job before it is sent again.
JOB_RESEND_AFTER = float(os.environ.get("DEEPSHARD_JOB_RESEND_AFTER", 3600))
JOB_MARKER_TTL = 7 * 24 * 3600


def account_queue(role: str, account: str) -> str:
    """The queue of one account's tasks in a role: `trainer.0xAbC...`."""
    return f"{role}.{to_checksum_address(account)}"


#: Seconds a worker's registration lasts without a heartbeat: past it the watcher stops queueing tasks for a
#: worker that is gone (they would only pile up in its queue). `deepshard worker` beats every quarter of it.
REGISTRATION_TTL = 120.0


def accounts_key(chain_id: int, role: str) -> str:
    """A sorted set: account -> the Redis server time of its worker's last heartbeat."""
    return f"deepshard:{int(chain_id)}:workers:{role}"


def _server_time(client: redis_lib.Redis) -> float:
    # Redis's clock, not this machine's: workers and the watcher may run on machines whose clocks differ.
    seconds, micros = client.time()
    return seconds + micros / 1e6


def register_account(client: redis_lib.Redis, chain_id: int, role: str, account: str) -> None:
    """Records, or refreshes, that a worker of `role` signs as `account` on this chain: the watcher queues its
    tasks for `REGISTRATION_TTL` seconds from now. Registrations older than that are dropped."""
    key = accounts_key(chain_id, role)
    now = _server_time(client)
    with client.pipeline(transaction=True) as pipe:
        pipe.zadd(key, {to_checksum_address(account): now})
        pipe.zremrangebyscore(key, "-inf", f"({now - REGISTRATION_TTL}")
        pipe.execute()


def deregister_account(client: redis_lib.Redis, chain_id: int, role: str, account: str) -> None:
    """Removes the registration (a worker stopping): the watcher stops queueing its tasks at once."""
    client.zrem(accounts_key(chain_id, role), to_checksum_address(account))


def registered_accounts(client: redis_lib.Redis, chain_id: int, role: str) -> list[str]:
    """The accounts whose `role` worker beat within the last `REGISTRATION_TTL` seconds."""
    members = client.zrangebyscore(accounts_key(chain_id, role), _server_time(client) - REGISTRATION_TTL, "+inf")
    return sorted(m.decode() if isinstance(m, bytes) else m for m in members)


# ---------------------------------------------------------------- process-wide resources

_signer: Signer | None = None


def set_worker_signer(signer: Signer | None) -> None:
    """The signer this process's tasks use (`deepshard worker` loads it once, prompting if needed)."""
    global _signer
    _signer = signer


def worker_signer() -> Signer:
    """The worker's signer: the one set by `deepshard worker`, else the environment's (loaded once)."""
    global _signer
    if _signer is None:
        _signer = load_signer()
    return _signer


@functools.lru_cache(maxsize=4)
def _redis_for(url: str) -> redis_lib.Redis:
    options = app.conf.broker_transport_options or {}
    return redis_lib.Redis.from_url(url, socket_connect_timeout=options.get("socket_connect_timeout", 3.0),
                                    socket_timeout=options.get("socket_timeout", 30.0))


def broker_redis() -> redis_lib.Redis:
    """A client of the broker's Redis (locks, schedules, registered accounts, published specs)."""
    return _redis_for(app.conf.broker_url)


def redis_unavailable(exc: BaseException) -> QueueUnavailable:
    return QueueUnavailable(f"Redis at {_redis_location(app.conf.broker_url)} does not answer ({exc})")


def send(name: str, *, args: tuple = (), kwargs: dict | None = None, queue: str, task_id: str | None = None,
         countdown: float | None = None):
    """`app.send_task`, with a dead broker turned into one clear `QueueUnavailable`."""
    try:
        return app.send_task(name, args=args, kwargs=kwargs, queue=queue, task_id=task_id, countdown=countdown)
    except Exception as exc:
        cause = _connection_failure(exc)
        if cause is None:
            raise
        raise QueueUnavailable(f"cannot queue {name}: Redis at {_redis_location(app.conf.broker_url)} does not "
                               f"answer ({cause})") from exc


# ---------------------------------------------------------------- ML jobs

class CeleryJobs:
    """`Jobs` for the steps: the ML tasks by name, on this account's own queue, with deterministic ids."""

    def __init__(self, redis_client: redis_lib.Redis, chain_id: int, contract: str, account: str):
        self.redis = redis_client
        self.chain_id, self.contract, self.account = chain_id, contract, account

    def job_id(self, name: str, round_id: int) -> str:
        return f"{name.rsplit('.', 1)[-1]}:{self.chain_id}:{self.contract}:{round_id}:{self.account}"

    def train(self, inputs: dict) -> dict | None:
        return self._job(TRAIN_TASK, inputs, account_queue("trainer", self.account), inputs["round_id"])

    def fingerprint(self, inputs: dict, delta_cids: list[str]) -> dict | None:
        return self._job(FINGERPRINT_TASK, {**inputs, "delta_cids": list(delta_cids)},
                         account_queue("evaluator", self.account), inputs["round_id"])

    def _job(self, name: str, kwargs: dict, queue: str, round_id: int) -> dict | None:
        job_id = self.job_id(name, round_id)
        result = app.AsyncResult(job_id)
        state = result.state
        if state == "SUCCESS":
            return result.result
        if state in ("FAILURE", "REVOKED"):
            raise JobFailed(f"{name} (task {job_id}) failed: {result.result!r}")
        marker = f"deepshard:job:{job_id}"
        sent_at = self.redis.get(marker)
        if state == "PENDING" and (sent_at is None or time.time() - float(sent_at) > JOB_RESEND_AFTER):
            # Sent first, recorded after: a crash in between sends it twice (same id, same result), never not at all.
            send(name, kwargs=kwargs, queue=queue, task_id=job_id)
            self.redis.set(marker, str(time.time()), ex=JOB_MARKER_TTL)
            logger.info("sent %s for round %s as task %s on queue %s", name, round_id, job_id, queue)
        return None


# ---------------------------------------------------------------- locks and schedules

class StepLock:
    """At most one step per (role, account, round) at a time; the same message, redelivered, may take it over."""

    def __init__(self, client: redis_lib.Redis, key: str, owner: str):
        self.client, self.key, self.owner = client, key, owner

    def acquire(self) -> bool:
        if self.client.set(self.key, self.owner, nx=True, ex=LOCK_TTL):
            return True
        holder = self.client.get(self.key)
        if holder is not None and holder.decode() == self.owner:
            self.client.expire(self.key, LOCK_TTL)
            return True
        return False

    def release(self) -> None:
        # Only our own lock: compare and delete in one script.
        self.client.eval("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end "
                         "return 0", 1, self.key, self.owner)


def _keys(chain_id: int, role: str, account: str, round_id: int | None) -> tuple[str, str]:
    scope = f"deepshard:{int(chain_id)}:{role}:{account}:{'current' if round_id is None else int(round_id)}"
    return f"{scope}:lock", f"{scope}:next"


def schedule(task, client: redis_lib.Redis, next_key: str, round_id: int | None, countdown: float,
             queue: str) -> str:
    """Queues `task(round_id)` in `countdown` seconds unless a wake-up no later than that is already queued."""
    now = time.time()
    eta = now + countdown
    raw = client.get(next_key)
    if raw is not None:
        try:
            existing = json.loads(raw)
            if now - SCHEDULE_GRACE < existing["eta"] <= eta + 0.5:
                return existing["id"]
        except (ValueError, KeyError, TypeError):
            pass
    task_id = uuid.uuid4().hex
    # Sent first, recorded after: a crash in between leaves two wake-ups (harmless), never none.
    send(task.name, args=(round_id,), queue=queue, task_id=task_id, countdown=countdown)
    client.set(next_key, json.dumps({"eta": eta, "id": task_id}), ex=int(countdown + SCHEDULE_GRACE) + 1)
    return task_id


# ---------------------------------------------------------------- the tasks

class RoundTask(DeepshardTask):
    """Logs each retry in one line: which step, why, which attempt."""

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        logger.warning("%s%s: %s; retry %d of %d with backoff", self.name.rsplit(".", 1)[-1], tuple(args), exc,
                       self.request.retries + 1, self.max_retries)


_RETRY = {**RETRY_POLICY, "autoretry_for": (*TRANSIENT_ERRORS, ReceiptTimeout)}


def run_step(task, role: str, round_id: int | None, once: Callable[[Any, SpecBook, CeleryJobs], Step]) -> dict:
    """Runs one step under its lock, then queues the next one when it is due."""
    from ..rounds.chain import TrainingRoundsClient  # noqa: PLC0415  (keeps `celery -A` imports light)

    chain = ChainClient(signer=worker_signer())  # $DEEPSHARD_RPC_URL, else the local node
    client = broker_redis()
    account = chain.address
    queue = account_queue(role, account) if role in ACCOUNT_ROLES else role
    lock_key, next_key = _keys(chain.chain_id, role, account, round_id)
    own_id = task.request.id or uuid.uuid4().hex
    try:
        lock = StepLock(client, lock_key, own_id)
        if not lock.acquire():
            schedule(task, client, next_key, round_id, BUSY_RETRY, queue)
            return {"role": role, "round_id": round_id, "action": "busy", "detail": "another step of this round runs"}
        _forget_schedule_if_mine(client, next_key, own_id)
    except redis_lib.exceptions.RedisError as exc:
        raise redis_unavailable(exc) from None
    try:
        rounds = TrainingRoundsClient(chain)
        jobs = CeleryJobs(client, chain.chain_id, rounds.contract.address, account)
        step = once(rounds, SpecBook(client), jobs)
        logger.info("%s step on round %s: %s (%s)", role, step.round_id, step.action, step.detail)
        if step.action == "opened" and step.round_id is not None:
            # The new round's own keeper chain (the watcher also sends one on RoundOpened; they converge).
            _, opened_key = _keys(chain.chain_id, role, account, step.round_id)
            schedule(task, client, opened_key, step.round_id, WAIT.min_wait, queue)
        elif step.poll_after is not None:
            schedule(task, client, next_key, round_id, step.poll_after, queue)
        elif step.wake_at_block is not None:
            schedule(task, client, next_key, round_id, WAIT.seconds_until(chain, step.wake_at_block), queue)
        return step.to_dict()
    except redis_lib.exceptions.RedisError as exc:
        raise redis_unavailable(exc) from None
    finally:
        try:
            lock.release()
        except redis_lib.exceptions.RedisError:
            pass  # it expires on its own


def _forget_schedule_if_mine(client: redis_lib.Redis, next_key: str, own_id: str) -> None:
    raw = client.get(next_key)
    if raw is None:
        return
    try:
        if json.loads(raw).get("id") == own_id:
            client.delete(next_key)
    except (ValueError, AttributeError):
        client.delete(next_key)


@app.task(bind=True, base=RoundTask, name="workers.tasks.rounds.trainer_step", throws=(JobFailed,), **_RETRY)
def trainer_step(self, round_id: int) -> dict:
    """One step of this worker's trainer in `round_id`; queues the next one when it is due."""
    return run_step(self, "trainer", round_id,
                    lambda rounds, specs, jobs: trainer_once(rounds, round_id, jobs, specs))


@app.task(bind=True, base=RoundTask, name="workers.tasks.rounds.evaluator_step", throws=(JobFailed,), **_RETRY)
def evaluator_step(self, round_id: int) -> dict:
    """One step of this worker's evaluator in `round_id`; queues the next one when it is due."""
    return run_step(self, "evaluator", round_id,
                    lambda rounds, specs, jobs: evaluator_once(rounds, round_id, jobs, specs))


@app.task(bind=True, base=RoundTask, name="workers.tasks.rounds.keeper_step", **_RETRY)
def keeper_step(self, round_id: int | None = None) -> dict:
    """Advances `round_id` (default: the current round) when due, settles it, opens the next round."""
    return run_step(self, "keeper", round_id, lambda rounds, specs, jobs: keeper_once(rounds, round_id, specs))

