"""The base class of every Deepshard task, and the errors on which tasks retry.

Retry policy: a task retries, with exponential backoff and jitter, only on errors that time can fix
(a storage node, the chain's node or Redis not answering); anything else fails at once, and errors
about the input are raised as `TaskInputError`, never retried.

Delivery: every task run by a worker runs under `workers.tasks.delivery`'s guard (one run per task id at a
time, a bounded number of deliveries whose process died); a task called in-process (eagerly or directly) does not.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

import redis
import redis.exceptions
from celery import Task
from kombu.exceptions import OperationalError

from ..chain import NodeUnavailable
from ..storage import NodeUnreachable
from .delivery import run_guarded
from .errors import QueueUnavailable

#: Errors time can fix: the task is retried (a storage node, the chain's node, Redis not answering).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    NodeUnreachable,
    NodeUnavailable,
    QueueUnavailable,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OperationalError,
)
RETRY_POLICY = dict(
    autoretry_for=TRANSIENT_ERRORS,
    max_retries=8,
    retry_backoff=2,  # 2, 4, 8 ... seconds
    retry_backoff_max=300,
    retry_jitter=True,
)


def _redis_location(url: str) -> str:
    """redis://:secret@host:6379/2 -> redis://host:6379/2 (no password in messages)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _connection_failure(exc: BaseException) -> BaseException | None:
    """The connection error behind `exc`, if any.

    The Redis result backend reports a dead server as a RuntimeError caused by a redis ConnectionError.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@functools.lru_cache(maxsize=4)
def _redis_for(url: str, connect_timeout: float, socket_timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout)


def broker_redis_of(app) -> redis.Redis:
    """A client of `app`'s broker Redis (locks, leases, schedules, registered accounts, published specs)."""
    options = app.conf.broker_transport_options or {}
    return _redis_for(
        app.conf.broker_url, options.get("socket_connect_timeout", 3.0), options.get("socket_timeout", 30.0)
    )


class DeepshardTask(Task):
    """Runs each delivery under the delivery guard, and turns a dead broker at queueing time into one clear
    `QueueUnavailable`, raised within seconds."""

    def __call__(self, *args, **kwargs):
        request = self.request
        if request.called_directly or request.is_eager or not request.id:
            return super().__call__(*args, **kwargs)
        try:
            client = broker_redis_of(self.app)
            return run_guarded(self, client, lambda: super(DeepshardTask, self).__call__(*args, **kwargs))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            where = _redis_location(self.app.conf.broker_url)
            raise QueueUnavailable(f"{self.name}: Redis at {where} does not answer ({exc})") from exc

    def apply_async(self, *args, **kwargs):
        try:
            return super().apply_async(*args, **kwargs)
        except Exception as exc:
            cause = _connection_failure(exc)
            if cause is None:
                raise
            where = _redis_location(self.app.conf.broker_url)
            raise QueueUnavailable(f"cannot queue {self.name}: Redis at {where} does not answer ({cause})") from exc
