"""JSON from outside the process (dataset lines, manifests, delta headers, deployment records, task payloads, HTTP
bodies), parsed with bounds on its size and nesting depth checked *before* the parser runs.

Python's `json` recurses once per nesting level, so `[[[[...]]]]` a few thousand levels deep raises `RecursionError`
(or exhausts the C stack) instead of a parse error; the same kind hit simplejson (issue 270) and model scanners
(promptfoo/modelaudit PR 244). A linear scan that counts brackets outside strings bounds the depth first, so every
caller gets one clear `JsonRejected` naming what it was parsing, never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

# Deepest document any of our formats needs is 4 levels (a safetensors header: {tensor: {shape: [..]}} with
# `__metadata__`); 32 leaves room for user metadata without letting a hostile file near the recursion limit.
DEFAULT_MAX_DEPTH = 32


class JsonRejected(ValueError):
    """A JSON document refused before or while parsing: too large, too deep, not UTF-8, not JSON, a key
    repeated in one object, or a string that is not Unicode text (an unpaired surrogate escape).

    `what` names the source (as given to `parse_json`), `reason` says what is wrong without it; str() is
    "<what>: <reason>".
    """

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what = what
        self.reason = reason


class _RepeatedKey(ValueError):
    pass


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # `json` keeps the last of repeated keys, other readers the first: the same bytes would mean two things.
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return value


def _refuse_constant(name: str) -> None:
    # Python's json accepts NaN, Infinity and -Infinity, which are not JSON (RFC 8259).
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # 1e999 is valid JSON, but Python reads it as infinity: the NaN/Infinity kind again, by another door.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is out of a double's range")
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_repeated_keys, parse_constant=_refuse_constant, parse_float=_finite_float
)
# A \\uD800-\\uDFFF escape: the only way an unpaired surrogate gets into a parsed string.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _unpaired_surrogate(value: Any, path: str) -> tuple[str, str] | None:
    """(where, code point) of the first string (key or value) holding an unpaired surrogate, else None.
    Recursion is bounded by the depth already checked."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return path, f"\\u{ord(value[exc.start]):04x}"
        return None
    items: Any = ()
    if isinstance(value, dict):
        for key in value:
            found = _unpaired_surrogate(key, f"{path} key")
            if found:
                return found
        top = path == "the document"
        items = ((f"field {key!r}" if top else f"{path} field {key!r}", item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{path} item {index}", item) for index, item in enumerate(value))
    for where, item in items:
        found = _unpaired_surrogate(item, where)
        if found:
            return found
    return None


# A whole JSON string (skipped in one regex step, in C), or one bracket. An unterminated string runs to the end of
# the text: were the closing quote required, every later quote would start a fresh scan to the end (quadratic time,
# hours for a 1 MiB line of escaped quotes).
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)|[\[\]{}]')


def nesting_depth(text: str, *, limit: int) -> int:
    """The maximum nesting depth of arrays/objects in `text`, counting only brackets outside strings; stops
    scanning as soon as the depth exceeds `limit` and returns that depth (limit + 1). Linear time, no recursion:
    the regex steps over each string whole, so prose costs one step per string. Malformed input is not
    diagnosed here (the parser does that after)."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def bounded_text(
    data: str | bytes | bytearray | memoryview,
    *,
    what: str,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_bytes: int | None = None,
) -> str:
    """The checks `parse_json` makes before any parser runs, for a caller whose parser is another library's
    (kombu's message decoding): size, UTF-8 and nesting depth.

    Returns: `data` as text. Raises: JsonRejected naming `what` and the reason.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        data = bytes(data)
        if max_bytes is not None and len(data) > max_bytes:
            raise JsonRejected(what, f"{len(data):,} bytes is over the {max_bytes:,}-byte limit")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRejected(what, f"not UTF-8 (byte 0x{data[exc.start]:02x} at byte {exc.start + 1})") from None
    else:
        text = data
        if max_bytes is not None and len(text) > max_bytes:
            size = len(text.encode("utf-8", "surrogatepass"))
            if size > max_bytes:
                raise JsonRejected(what, f"{size:,} bytes is over the {max_bytes:,}-byte limit")
    # Depth never exceeds the number of opening brackets: most documents are settled by two C-speed counts.
    if text.count("[") + text.count("{") > max_depth and nesting_depth(text, limit=max_depth) > max_depth:
        raise JsonRejected(what, f"nested more than {max_depth} levels deep")
    return text


def parse_json(
    data: str | bytes,
    *,
    what: str,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_bytes: int | None = None,
) -> Any:
    """Parse one JSON document from outside, strictly (RFC 8259): no NaN/Infinity (nor a number too large for a
    double), no key repeated within an object, no unpaired surrogate escapes.

    Args:
        data: the document, as text or UTF-8 bytes.
        what: names the source in errors, e.g. "dataset line 7" or "delta header of <cid>".
        max_depth: the deepest nesting of arrays/objects accepted (levels).
        max_bytes: the largest accepted size of `data` in bytes (UTF-8), or None for no size bound.

    Returns: the parsed value (dict, list, str, int, float, bool or None).
    Raises: JsonRejected naming `what` and the reason (size, depth, encoding, syntax, repeated key,
        constant or surrogate).
    """
    text = bounded_text(data, what=what, max_depth=max_depth, max_bytes=max_bytes)
    try:
        start = _skip_space(text, 0)
        value, end = _DECODER.raw_decode(text, start)
        rest = _skip_space(text, end)
        if rest != len(text):
            raise json.JSONDecodeError("extra data after the JSON value", text, rest)
    except _RepeatedKey as exc:
        raise JsonRejected(what, f"field {exc.args[0]!r} appears more than once") from None
    except json.JSONDecodeError as exc:
        where = f"column {exc.colno}" if exc.lineno == 1 else f"line {exc.lineno} column {exc.colno}"
        raise JsonRejected(what, f"not valid JSON ({exc.msg} at {where})") from None
    except (RecursionError, ValueError) as exc:  # NaN/Infinity; an integer string over Python's digit limit
        raise JsonRejected(what, f"not valid JSON ({exc})") from None
    if _SURROGATE_ESCAPE.search(text):
        found = _unpaired_surrogate(value, "the document")
        if found:
            raise JsonRejected(
                what, f"{found[0]} contains an unpaired surrogate ({found[1]}), which is not Unicode text"
            )
    return value


def _skip_space(text: str, index: int) -> int:
    # JSON's whitespace only (RFC 8259): not the Unicode spaces str.strip() would take.
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


class FileTooLarge(ValueError):
    """A file over the size its reader accepts; str() names the file and the limit."""


def read_limited(path: str | os.PathLike, *, what: str, max_bytes: int) -> bytes:
    """The bytes of file `path`, reading at most `max_bytes` + 1 of them: a file that is too large (or endless,
    like /dev/zero) is refused after that many bytes instead of being read whole first.

    Args:
        path: the file.
        what: names it in the error ("the version file").
        max_bytes: the largest accepted size in bytes.

    Raises: FileTooLarge when the file holds more than `max_bytes` bytes; OSError when it cannot be read.
    """
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLarge(f"{what} {os.fspath(path)} is over {max_bytes:,} bytes")
    return data


def load_json_file(path: str | os.PathLike, *, what: str, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """`parse_json` of the file `path`, read by `read_limited` (never whole before its size is checked).

    Raises: JsonRejected (too large included, naming `what`), OSError when it cannot be read.
    """
    try:
        data = read_limited(path, what=what, max_bytes=max_bytes)
    except FileTooLarge:
        raise JsonRejected(what, f"over the {max_bytes:,}-byte limit") from None
    return parse_json(data, what=what, max_depth=max_depth, max_bytes=max_bytes)
