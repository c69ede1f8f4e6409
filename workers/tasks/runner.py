"""The step runner: how every role's Celery task runs one step of a role (`workers.rounds.steps`,
`workers.data.steps`) and comes back when the next one is due.

    @app.task(bind=True, base=StepTask, name="workers.tasks.rounds.trainer_step", **STEP_RETRY)
    def trainer_step(self, round_id):
        return run_step(self, "trainer", "round", round_id, lambda chain, redis: trainer_once(...))

- Signer and chain: the worker's (`configure_worker`, called once by `deepshard worker` before Celery starts, so
  a keystore's password is asked once and pool children inherit the unlocked key; keys never travel in task
  arguments nor in the environment). Without it, the environment's key and `$DEEPSHARD_RPC_URL`.
- Queues: a role's steps run on the queue of the role (`keeper`) or, for the roles that sign as one account
  (`ACCOUNT_ROLES`), on the account's own queue `<role>.<checksum address>` (`account_queue`): a trainer's
  step must run where its key is.
- Locks: at most one step per (chain, role, account, item) at a time (a `workers.tasks.delivery.Lease`, renewed
  while the step runs; a step whose process died leaves it to lapse, at once on the same host). A step that
  finds the lock taken looks again in `BUSY_RETRY` seconds.
- Wake-ups: after a step, the task queues itself for when there is something to do again (`schedule`): the
  step's block, converted to seconds from the chain's block time (`BLOCK_WAIT`), or its `poll_after`. A wake-up
  is not queued when one no later is already queued, so event-triggered and self-scheduled steps converge to
  one chain per item.
- Retries: a chain node, Redis or storage node that does not answer, and a receipt that does not come, are
  retried with exponential backoff (`STEP_RETRY`), each retry logged in one line (`StepTask`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import redis as redis_lib
from celery.utils.log import get_task_logger
from eth_utils import to_checksum_address

from ..chain import ChainClient, ReceiptTimeout, load_signer
from ..chain.accounts import Signer
from ..chain.module import Step
from ..protocol.constants import ACCOUNT_ROLES
from .app import app
from .base import RETRY_POLICY, TRANSIENT_ERRORS, DeepshardTask, _connection_failure, _redis_location, broker_redis_of
from .delivery import Lease
from .errors import QueueUnavailable
from .waiting import BlockWait

logger = get_task_logger(__name__)

#: Waits between a role's steps: 1 s to $DEEPSHARD_MAX_WAIT (else 300 s).
BLOCK_WAIT = BlockWait("DEEPSHARD_MAX_WAIT", min_wait=1.0)
#: Seconds before a busy step (another one holds the lock) looks again.
BUSY_RETRY = 2.0
#: A scheduled wake-up this many seconds overdue is presumed lost.
SCHEDULE_GRACE = 120.0


def account_queue(role: str, account: str) -> str:
    """The queue of one account's tasks in a role: `trainer.0xAbC...`."""
    return f"{role}.{to_checksum_address(account)}"


def role_queue(role: str, account: str) -> str:
    """Where a role's step runs: the account's own queue for `ACCOUNT_ROLES`, else the role's (`keeper`)."""
    return account_queue(role, account) if role in ACCOUNT_ROLES else role


# ---------------------------------------------------------------- process-wide resources

_signer: Signer | None = None
_rpc_url: str | None = None


def configure_worker(signer: Signer | None, rpc_url: str | None = None) -> None:
    """The signer and chain this process's tasks use (`deepshard worker` loads the signer once, prompting if
    needed); None for either: the environment's."""
    global _signer, _rpc_url
    _signer, _rpc_url = signer, rpc_url


def worker_chain() -> ChainClient:
    """A client of the worker's chain signing with the worker's key (loaded from the environment once, when
    `configure_worker` gave none)."""
    global _signer
    if _signer is None:
        _signer = load_signer()
    return ChainClient(_rpc_url, _signer)  # None: $DEEPSHARD_RPC_URL, else the local node


def broker_redis() -> redis_lib.Redis:
    """A client of the broker's Redis (locks, schedules, registered accounts, published specs)."""
    return broker_redis_of(app)


def redis_unavailable(exc: BaseException) -> QueueUnavailable:
    return QueueUnavailable(f"Redis at {_redis_location(app.conf.broker_url)} does not answer ({exc})")


def send(
    name: str,
    *,
    args: tuple = (),
    kwargs: dict | None = None,
    queue: str,
    task_id: str | None = None,
    countdown: float | None = None,
):
    """`app.send_task`, with a dead broker turned into one clear `QueueUnavailable`."""
    try:
        return app.send_task(name, args=args, kwargs=kwargs, queue=queue, task_id=task_id, countdown=countdown)
    except Exception as exc:
        cause = _connection_failure(exc)
        if cause is None:
            raise
        raise QueueUnavailable(
            f"cannot queue {name}: Redis at {_redis_location(app.conf.broker_url)} does not answer ({cause})"
        ) from exc


# ---------------------------------------------------------------- locks and schedules


def step_keys(chain_id: int, role: str, account: str, scope: str, item: int | None) -> tuple[str, str]:
    """(lock key, next-wake-up key) of one role's steps on one item (`scope` "round" or "submission"; None:
    the current one)."""
    base = f"deepshard:{int(chain_id)}:{role}:{account}:{scope}:{'current' if item is None else int(item)}"
    return f"{base}:lock", f"{base}:next"


def schedule(task, client: redis_lib.Redis, next_key: str, item: int | None, countdown: float, queue: str) -> str:
    """Queues `task(item)` in `countdown` seconds unless a wake-up no later than that is already queued;
    returns the id of the wake-up that will come."""
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
    send(task.name, args=(item,), queue=queue, task_id=task_id, countdown=countdown)
    client.set(next_key, json.dumps({"eta": eta, "id": task_id}), ex=int(countdown + SCHEDULE_GRACE) + 1)
    return task_id


def _forget_schedule_if_mine(client: redis_lib.Redis, next_key: str, own_id: str) -> None:
    raw = client.get(next_key)
    if raw is None:
        return
    try:
        if json.loads(raw).get("id") == own_id:
            client.delete(next_key)
    except (ValueError, AttributeError):
        client.delete(next_key)


# ---------------------------------------------------------------- running a step


class StepTask(DeepshardTask):
    """A role's step task: logs each retry in one line (which step, why, which attempt)."""

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        logger.warning(
            "%s%s: %s; retry %d of %d with backoff",
            self.name.rsplit(".", 1)[-1],
            tuple(args),
            exc,
            self.request.retries + 1,
            self.max_retries,
        )


#: The retry policy of step tasks: a receipt timeout is transient too (the next run sees whether the transaction
#: landed before sending anything).
STEP_RETRY = {**RETRY_POLICY, "autoretry_for": (*TRANSIENT_ERRORS, ReceiptTimeout)}


def run_step(
    task, role: str, scope: str, item: int | None, once: Callable[[ChainClient, redis_lib.Redis], Step]
) -> dict:
    """Runs `once(chain, redis)`, one step of `role` on `item` (a round or a submission, per `scope`), under
    its lock, then queues `task` again for when the next step is due; returns the step as a dict."""
    chain = worker_chain()
    client = broker_redis()
    account = chain.address
    queue = role_queue(role, account)
    lock_key, next_key = step_keys(chain.chain_id, role, account, scope, item)
    own_id = task.request.id or uuid.uuid4().hex
    lock = Lease(client, lock_key)
    try:
        if not lock.acquire():
            # Forget this wake-up's own record first: otherwise `schedule` takes it for the retry already
            # queued, and the chain of steps of this item stops here.
            _forget_schedule_if_mine(client, next_key, own_id)
            schedule(task, client, next_key, item, BUSY_RETRY, queue)
            return {"role": role, "id": item, "action": "busy", "detail": f"another step of this {scope} runs"}
        _forget_schedule_if_mine(client, next_key, own_id)
    except redis_lib.exceptions.RedisError as exc:
        raise redis_unavailable(exc) from None
    lock.keep_alive()
    try:
        step = once(chain, client)
        logger.info("%s step on %s %s: %s (%s)", role, scope, step.id, step.action, step.detail)
        if step.action == "opened" and step.id is not None and step.id != item:
            # The step started a new item (a keeper opened a round): that item gets its own chain of steps.
            _, started_key = step_keys(chain.chain_id, role, account, scope, step.id)
            schedule(task, client, started_key, step.id, BLOCK_WAIT.min_wait, queue)
        elif step.poll_after is not None:
            schedule(task, client, next_key, item, step.poll_after, queue)
        elif step.wake_at_block is not None:
            schedule(task, client, next_key, item, BLOCK_WAIT.seconds_until(chain, step.wake_at_block), queue)
        return step.to_dict()
    except redis_lib.exceptions.RedisError as exc:
        raise redis_unavailable(exc) from None
    finally:
        try:
            lock.release()
        except redis_lib.exceptions.RedisError:
            pass  # it expires on its own
