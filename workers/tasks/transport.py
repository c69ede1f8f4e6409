"""Broker messages from outside the process, decoded with the bounds of `workers.safejson` (issue 10).

Anyone who can write to the Redis can queue a message. kombu decodes two JSON documents per message with
Python's `json`, which recurses once per nesting level: the transport's envelope (in the consumer's event
loop: a `RecursionError` there ended the whole worker, "Unrecoverable error") and the task body (a
`DecodeError` Celery logs). Results read back from the result backend go through the same serializer.

- `bounded_loads`: kombu's own `loads` (its type hooks kept) after `safejson.bounded_text` has bounded the
  depth; registered as the `json` serializer (kombu's documented `register`), so task bodies and results
  are bounded, and used by the Redis transport for envelopes.
- `Transport`: kombu's Redis transport whose channel sets aside an envelope that fails those bounds: one error
  line naming why, its raw text pushed onto the Redis list `REJECTED_KEY` (newest first, at most
  `REJECTED_KEPT`), so nothing is lost and the worker keeps consuming. Celery selects it with
  `broker_transport` (workers.tasks.app).
"""

from __future__ import annotations

import logging
from queue import Empty
from typing import Any

from kombu import serialization
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

from ..safejson import JsonRejected, bounded_text

logger = logging.getLogger(__name__)

#: Nesting (levels) a message may have. Our tasks' arguments are at most lists of lists inside Celery's
#: [args, kwargs, embed] body; envelopes are {properties: {delivery_info: {...}}}: far below.
MAX_MESSAGE_DEPTH = 32
#: The Redis list holding the raw envelopes set aside, and how many it keeps.
REJECTED_KEY = "deepshard.rejected-messages"
REJECTED_KEPT = 100


class MessageRejected(JsonRejected):
    """A broker message refused by the bounds; `raw` is its text as received."""

    def __init__(self, error: JsonRejected, raw: Any) -> None:
        super().__init__(error.what, error.reason)
        self.raw = raw


def bounded_loads(data: Any, *args: Any, **kwargs: Any) -> Any:
    """kombu's JSON `loads`, after the depth (levels) and encoding checks of `safejson.bounded_text`.

    Raises: MessageRejected ("broker message: ..."), a ValueError kombu reports as a DecodeError for bodies.
    """
    try:
        text = bounded_text(data, what="broker message", max_depth=MAX_MESSAGE_DEPTH)
    except JsonRejected as error:
        raise MessageRejected(error, data) from None
    return kombu_loads(text, *args, **kwargs)


def _install() -> None:
    # kombu's documented hook: the `json` serializer decodes task bodies and results.
    serialization.register(
        "json", kombu_dumps, bounded_loads, content_type="application/json", content_encoding="utf-8"
    )
    # The Redis transport decodes envelopes with its module's own `loads`; there is no setting for it.
    kombu_redis.loads = bounded_loads  # type: ignore[assignment]  # kombu's stub names its 4 parameters


class Channel(kombu_redis.Channel):
    """kombu's Redis channel; an envelope that fails the bounds is set aside instead of ending the worker."""

    def _brpop_read(self, **options: Any) -> bool:
        try:
            return super()._brpop_read(**options)
        except MessageRejected as error:
            self._set_aside(error)
            return True  # one message consumed: the event loop goes on

    def _get(self, queue: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super()._get(queue, *args, **kwargs)
        except MessageRejected as error:
            self._set_aside(error)
            raise Empty() from None

    def _set_aside(self, error: MessageRejected) -> None:
        logger.error("set aside a broker message (kept in the Redis list %s): %s", REJECTED_KEY, error)
        with self.conn_or_acquire() as client:
            client.lpush(REJECTED_KEY, error.raw)
            client.ltrim(REJECTED_KEY, 0, REJECTED_KEPT - 1)


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with the bounded channel."""

    Channel = Channel


_install()
