"""The base class of every Deepshard task, and the errors on which tasks retry.

Retry policy: a task retries, with exponential backoff and jitter, only on errors that time can fix
(a storage node, the chain's node or Redis not answering); anything else fails at once, and errors
about the input are raised as `TaskInputError`, never retried.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis.exceptions
from celery import Task
from kombu.exceptions import OperationalError

from ..chain import NodeUnavailable
from ..storage import NodeUnreachable
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


class DeepshardTask(Task):
    """Turns a dead broker at queueing time into one clear `QueueUnavailable`, raised within seconds."""

    def apply_async(self, *args, **kwargs):
        try:
            return super().apply_async(*args, **kwargs)
        except Exception as exc:
            cause = _connection_failure(exc)
            if cause is None:
                raise
            where = _redis_location(self.app.conf.broker_url)
            raise QueueUnavailable(f"cannot queue {self.name}: Redis at {where} does not answer ({cause})") from exc
