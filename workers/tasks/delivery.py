"""How a task survives Celery's at-least-once delivery on Redis: one run per job at a time, a bounded number of
deliveries, and a visibility timeout longer than the longest job.

Celery's Redis transport puts back on the queue every message a worker has not acknowledged within the
`visibility_timeout` (with `acks_late`, a task is acknowledged only when it ends), and a worker whose pool process
dies puts the message back at once (`reject_on_worker_lost`). So a task that outlives the timeout runs a second
time while the first still runs (celery 5935, 5306), and a task whose process is killed every time (the OOM killer,
a segfault on a hostile input) comes back forever (celery PR 6103). Every Deepshard task runs under this module's
guard (`DeepshardTask.__call__`), keyed by the task id, which is the job's idempotency key (the step runner and the
watcher give deterministic ids):

- Single flight: a run holds a `Lease` (a Redis key owned by this delivery, `LEASE_SECONDS` long, renewed every
  third of that by a thread while the run lasts). A copy delivered while the lease is held does not run: it is
  queued again for when the lease could lapse, and acknowledged. A holder that died stops renewing, so its lease
  lapses (at once, when the holder was a process of this host, of this PID namespace and of this boot, that no longer
  exists: containers sharing the host's network share its hostname, not its PIDs) and the next copy takes over. A
  holder that finds its lease lost logs an error and goes on.
- Finished jobs: a run that returns, or fails for good (raises anything but Celery's `Retry`, `Ignore` or `Reject`,
  which send the job on under the same id), sets the job's terminal marker (`deepshard:job:<id>:done`, kept
  `RECORD_TTL`) before it releases the lease; a copy of a job with that marker, or in `failed_jobs`, is dropped.
  Celery's stored state cannot serve: with `task_track_started` each copy stores STARTED over a FAILURE before it
  runs, and the lease is released before Celery stores SUCCESS.
- Bounded deliveries: each run that takes the lease counts one delivery (`deepshard:job:<id>:deliveries`); a run
  that ends, by returning or raising, clears the count, so only runs whose process died are counted. The run after
  `MAX_DELIVERIES` such deaths does not start: the job fails for good with `TaskAbandoned` (its reason stored as the
  task's result, where the step that sent it reads it), and is recorded in the hash `deepshard:failed-jobs`
  (`failed_jobs`) where a person, the CLI or a health check can read it. The worker goes on with its other tasks.
- Visibility timeout: `$DEEPSHARD_VISIBILITY_TIMEOUT` (default 3,600 s), the same on every worker. It must exceed
  the longest ML job a TrainingSpec allows (`job_bound_seconds`); trainer and evaluator workers check the specs they
  know when they start (`check_visibility`), and refuse to start with one line naming the spec and the setting.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis as redis_lib
from celery.exceptions import Ignore, Reject, Retry
from celery.utils.log import get_task_logger

from ..chain.errors import ChainError
from ..config import env_number
from ..ml.spec import TrainingSpec

logger = get_task_logger(__name__)

LEASE_SECONDS_ENV = "DEEPSHARD_JOB_LEASE_SECONDS"
MAX_DELIVERIES_ENV = "DEEPSHARD_MAX_DELIVERIES"
VISIBILITY_TIMEOUT_ENV = "DEEPSHARD_VISIBILITY_TIMEOUT"
#: Seconds a lease lasts unless renewed (renewed every third of it while the run lasts).
DEFAULT_LEASE_SECONDS = 60.0
#: Deliveries whose process died that a job gets before it fails for good.
DEFAULT_MAX_DELIVERIES = 3
#: Seconds Redis waits for a delivered task's acknowledgement before delivering it again.
DEFAULT_VISIBILITY_TIMEOUT = 3600.0
#: How long a job's records (delivery count, failure) are kept, in seconds.
RECORD_TTL = 7 * 24 * 3600
FAILED_JOBS_KEY = "deepshard:failed-jobs"

#: Seconds an ML job spends besides its training or scoring loop, at most: loading the base model, fetching and
#: merging the lineage, fetching the datasets, pinning the delta.
JOB_OVERHEAD_SECONDS = 900.0
#: The slowest training speed a worker may have, in tokens per second, per base model: a tenth of what a loaded
#: 2-core CPU measured (LoRA training: tiny ~2,000 tokens/s, SmolLM2-135M ~200 tokens/s).
MIN_TOKENS_PER_SECOND = {"tiny": 200.0, "smollm2-135m": 20.0}
#: For a base model not in the table.
DEFAULT_MIN_TOKENS_PER_SECOND = 20.0


def lease_seconds() -> float:
    """`$DEEPSHARD_JOB_LEASE_SECONDS`, else 60 (at least 1)."""
    return env_number(LEASE_SECONDS_ENV, DEFAULT_LEASE_SECONDS, float, unit="seconds", minimum=1.0)


def max_deliveries() -> int:
    """`$DEEPSHARD_MAX_DELIVERIES`, else 3 (at least 1)."""
    return env_number(MAX_DELIVERIES_ENV, DEFAULT_MAX_DELIVERIES, int, unit="deliveries")


def visibility_timeout() -> float:
    """`$DEEPSHARD_VISIBILITY_TIMEOUT` in seconds, else 3,600 (at least 1)."""
    return env_number(VISIBILITY_TIMEOUT_ENV, DEFAULT_VISIBILITY_TIMEOUT, float, unit="seconds", minimum=1.0)


# ---------------------------------------------------------------- the longest job


def job_bound_seconds(spec: TrainingSpec) -> float:
    """The longest an ML job (training or fingerprinting a round) under `spec` may run, in seconds:
    `JOB_OVERHEAD_SECONDS` + steps × batch_size × sequence_length tokens at the base model's slowest speed
    (`MIN_TOKENS_PER_SECOND`). Fingerprinting scores fewer tokens than training, so one bound serves both."""
    tokens = spec.steps * spec.batch_size * spec.sequence_length
    speed = MIN_TOKENS_PER_SECOND.get(spec.base_model, DEFAULT_MIN_TOKENS_PER_SECOND)
    return JOB_OVERHEAD_SECONDS + tokens / speed


class VisibilityTooShort(ChainError):
    """A TrainingSpec's longest job exceeds the broker's visibility timeout."""


def check_visibility(specs: Iterable[TrainingSpec], timeout: float | None = None) -> None:
    """`VisibilityTooShort`, naming the spec and the setting, when a job under one of `specs` may run longer than
    the visibility timeout (default `visibility_timeout()`)."""
    timeout = visibility_timeout() if timeout is None else timeout
    for spec in specs:
        bound = job_bound_seconds(spec)
        if bound > timeout:
            raise VisibilityTooShort(
                f"a job under TrainingSpec {spec.spec_hash_hex()[:12]}… ({spec.base_model}, {spec.steps} steps × "
                f"{spec.batch_size} × {spec.sequence_length} tokens) may run {bound:,.0f} s, longer than the "
                f"visibility timeout of {timeout:,.0f} s: set {VISIBILITY_TIMEOUT_ENV} to at least {bound:,.0f} on "
                "every worker"
            )


# ---------------------------------------------------------------- leases


def _first_line(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.readline().strip() or None
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return None


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: the host's name, the PID namespace's inode and the boot id (each "-" where the system
    has none: such a holder is never taken for dead), the process id, and a random tag for the delivery."""

    host: str
    pid_namespace: str
    boot_id: str
    pid: int
    tag: str

    @classmethod
    def current(cls) -> Holder:
        return cls(
            socket.gethostname(),
            _pid_namespace() or "-",
            _first_line("/proc/sys/kernel/random/boot_id") or "-",
            os.getpid(),
            uuid.uuid4().hex[:12],
        )

    def text(self) -> str:
        return f"{self.host}|{self.pid_namespace}|{self.boot_id}|{self.pid}|{self.tag}"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        """The holder written by `text()`, or None (a malformed value, or one written by an older worker)."""
        parts = text.split("|")
        if len(parts) != 5 or not parts[3].isdigit():
            return None
        return cls(parts[0], parts[1], parts[2], int(parts[3]), parts[4])

    def shares_pids_with(self, other: Holder) -> bool:
        """Whether this holder's PIDs name the same processes as `other`'s: the same host, PID namespace and boot,
        each known."""
        if "-" in (self.pid_namespace, self.boot_id):
            return False
        return (self.host, self.pid_namespace, self.boot_id) == (other.host, other.pid_namespace, other.boot_id)


_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_STEAL = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end "
    "return 0"
)


class Lease:
    """A Redis key owned by one holder for `seconds` unless renewed; `acquire` also takes over the lease of a
    holder that was a process of this host, PID namespace and boot and no longer exists (its lease could only
    lapse)."""

    def __init__(self, client: redis_lib.Redis, key: str, seconds: float | None = None):
        self.client, self.key = client, key
        self.seconds = lease_seconds() if seconds is None else seconds
        self.holder = Holder.current().text()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def _ms(self) -> int:
        return max(int(self.seconds * 1000), 1)

    def acquire(self) -> bool:
        """Takes the lease if it is free or its holder is dead (`holder_is_dead`); False if someone else holds it."""
        if self.client.set(self.key, self.holder, nx=True, px=self._ms):
            return True
        current = _text(self.client.get(self.key))
        if current is not None and holder_is_dead(current):
            return bool(self.client.eval(_STEAL, 1, self.key, current, self.holder, self._ms))
        return False

    def remaining(self) -> float:
        """Seconds until the lease lapses unless renewed (0 when it is free)."""
        left = self.client.pttl(self.key)
        return max(int(left), 0) / 1000

    def renew(self) -> bool:
        return bool(self.client.eval(_RENEW, 1, self.key, self.holder, self._ms))

    def release(self) -> None:
        self._stop.set()
        self.client.eval(_RELEASE, 1, self.key, self.holder)

    def keep_alive(self) -> None:
        """Renews the lease every third of its length from a thread, until `release`."""

        def loop():
            while not self._stop.wait(self.seconds / 3):
                try:
                    if not self.renew():
                        logger.error(
                            "lease %s was lost (it lapsed or was taken over): this run goes on, and another copy of "
                            "the job may run at the same time",
                            self.key,
                        )
                        return
                except redis_lib.exceptions.RedisError as exc:
                    logger.warning("cannot renew lease %s: %s", self.key, exc)

        self._renewer = threading.Thread(target=loop, name=f"lease {self.key}", daemon=True)
        self._renewer.start()


def _text(value: bytes | str | None) -> str | None:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def holder_is_dead(holder: str, me: Holder | None = None) -> bool:
    """Whether the lease holder written as `holder` is a process that no longer exists: only when it shares PIDs
    with `me` (default: this process; `Holder.shares_pids_with`) and its PID names no process. Any doubt (another
    host, container or boot, a live PID, a malformed holder) is False: the lease then lapses on its own."""
    theirs = Holder.parse(holder)
    me = Holder.current() if me is None else me
    if theirs is None or not me.shares_pids_with(theirs):
        return False
    try:
        os.kill(theirs.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# ---------------------------------------------------------------- the guard


class TaskAbandoned(Exception):
    """A job whose worker process died on each of its allowed deliveries: it is not run again."""


@dataclass(frozen=True)
class FailedJob:
    """A job that failed for good: its task id, the task's name, why, and when (Unix seconds)."""

    job_id: str
    task: str
    reason: str
    at: float


def job_keys(job_id: str) -> tuple[str, str, str]:
    """(lease key, delivery-count key, terminal-marker key) of the job with task id `job_id`."""
    base = f"deepshard:job:{job_id}"
    return f"{base}:lease", f"{base}:deliveries", f"{base}:done"


def failed_jobs(client: redis_lib.Redis) -> list[FailedJob]:
    """Every job recorded as failed for good, oldest first."""
    out = []
    for job_id, raw in client.hgetall(FAILED_JOBS_KEY).items():
        data = json.loads(raw)
        out.append(FailedJob(str(_text(job_id)), data["task"], data["reason"], float(data["at"])))
    return sorted(out, key=lambda job: job.at)


#: Exceptions with which a run hands the job on under the same task id (a retry, `Task.replace`): not the end of it.
_NOT_FINAL = (Retry, Ignore, Reject)


def _finished(client: redis_lib.Redis, task, job_id: str, done_key: str) -> bool:
    how = _text(client.get(done_key)) or ("FAILURE" if client.hexists(FAILED_JOBS_KEY, job_id) else None)
    if how is None:
        return False
    logger.info("%s[%s] finished already (%s): this copy is dropped", task.name, job_id, how)
    return True


def run_guarded(task, client: redis_lib.Redis, body: Callable[[], Any]) -> Any:
    """Runs `body()` as the one run of the job `task.request.id` (module docstring). Raises `Ignore` for a copy that
    must not run (after queueing it again when the job may still need it) and `TaskAbandoned` when the job's
    deliveries are spent."""
    job_id = task.request.id
    lease_key, count_key, done_key = job_keys(job_id)
    if _finished(client, task, job_id, done_key):
        raise Ignore()
    lease = Lease(client, lease_key)
    if not lease.acquire():
        # Back when the lease could lapse, and well within the visibility timeout (a held countdown is redelivered
        # too once it outlives it).
        visibility = float((task.app.conf.broker_transport_options or {}).get("visibility_timeout", 3600))
        wait = min(max(lease.remaining(), 1.0), max(visibility / 2, 1.0))
        queue = (task.request.delivery_info or {}).get("routing_key") or None
        task.apply_async(task.request.args, task.request.kwargs, task_id=job_id, queue=queue, countdown=wait)
        logger.info("%s[%s] is running elsewhere: this copy looks again in %.0f s", task.name, job_id, wait)
        raise Ignore()
    try:
        # Again under the lease: the run that held it may have finished since the first look.
        if _finished(client, task, job_id, done_key):
            raise Ignore()
        deliveries = int(client.incr(count_key))
        client.expire(count_key, RECORD_TTL)
        limit = max_deliveries()
        if deliveries > limit:
            reason = (
                f"{task.name} (task {job_id}) was delivered {limit} times and each time the worker process running "
                "it died before it finished (killed, out of memory or crashed): it is not run again"
            )
            record = {"task": task.name, "reason": reason, "at": time.time()}
            client.hset(FAILED_JOBS_KEY, job_id, json.dumps(record))
            client.set(done_key, "FAILURE", ex=RECORD_TTL)
            client.delete(count_key)
            logger.error("%s", reason)
            raise TaskAbandoned(reason)
        lease.keep_alive()
        try:
            result = body()
        except _NOT_FINAL:
            raise
        except Exception:  # not SystemExit or KeyboardInterrupt: a worker shutting down has not finished the job
            client.set(done_key, "FAILURE", ex=RECORD_TTL)
            raise
        finally:
            client.delete(count_key)  # the run ended in this process: it did not die
        client.set(done_key, "SUCCESS", ex=RECORD_TTL)
        return result
    finally:
        lease.release()
