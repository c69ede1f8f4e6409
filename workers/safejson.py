"""JSON from outside the process (dataset lines, manifests, delta headers, deployment records, task payloads, HTTP
bodies), parsed with bounds on its size and nesting depth checked *before* the parser runs.

Python's `json` recurses once per nesting level, so `[[[[...]]]]` a few thousand levels deep raises `RecursionError`
(or exhausts the C stack) instead of a parse error; the same kind hit simplejson (issue 270) and model scanners
(promptfoo/modelaudit PR 244). A linear scan that counts brackets outside strings bounds the depth first, so every
caller gets one clear `JsonRejected` naming what it was parsing, never a traceback.
"""

from __future__ import annotations

import json
from typing import Any

# Deepest document any of our formats needs is 4 levels (a safetensors header: {tensor: {shape: [..]}} with
# `__metadata__`); 32 leaves room for user metadata without letting a hostile file near the recursion limit.
DEFAULT_MAX_DEPTH = 32


class JsonRejected(ValueError):
    """A JSON document refused before or while parsing: too large, too deep, not UTF-8 or not JSON."""


def nesting_depth(text: str, *, limit: int) -> int:
    """The maximum nesting depth of arrays/objects in `text`, counting only brackets outside strings; stops
    scanning as soon as the depth exceeds `limit` and returns that depth (limit + 1). Linear time, no recursion.
    Malformed input is not diagnosed here (the parser does that after)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def parse_json(
    data: str | bytes,
    *,
    what: str,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_bytes: int | None = None,
) -> Any:
    """Parse one JSON document from outside.

    Args:
        data: the document, as text or UTF-8 bytes.
        what: names the source in errors, e.g. "dataset line 7" or "delta header of <cid>".
        max_depth: the deepest nesting of arrays/objects accepted (levels).
        max_bytes: the largest accepted size of `data` in bytes (UTF-8), or None for no size bound.

    Returns: the parsed value (dict, list, str, int, float, bool or None).
    Raises: JsonRejected naming `what` and the reason (size, depth, encoding or syntax).
    """
    if isinstance(data, bytes):
        if max_bytes is not None and len(data) > max_bytes:
            raise JsonRejected(f"{what}: {len(data):,} bytes is over the {max_bytes:,}-byte limit")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRejected(f"{what}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    else:
        text = data
        if max_bytes is not None and len(text) > max_bytes:
            size = len(text.encode("utf-8", "surrogatepass"))
            if size > max_bytes:
                raise JsonRejected(f"{what}: {size:,} bytes is over the {max_bytes:,}-byte limit")
    depth = nesting_depth(text, limit=max_depth)
    if depth > max_depth:
        raise JsonRejected(f"{what}: nested more than {max_depth} levels deep")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonRejected(f"{what}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (RecursionError, ValueError) as exc:  # ValueError: e.g. an integer string over Python's digit limit
        raise JsonRejected(f"{what}: {exc}") from None
