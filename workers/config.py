"""Settings read from the environment. One parser of a number serves every variable, so each refuses a bad value
the same way: one line naming the variable, the value given and what was expected, raised as the error type the
caller's users already catch (a chain setting as `InvalidRequest`, a storage one as `StorageError`, ...)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)


def env_number(
    name: str,
    default: N,
    kind: Callable[[str], N],
    *,
    unit: str,
    minimum: N | None = None,
    error: Callable[[str], Exception] = ValueError,
) -> N:
    """`$name` read as `kind` (`int` for counts and bytes, `float` for seconds), else `default` when the variable is
    unset or empty. Without `minimum` the value must be positive (> 0); with it, at least `minimum`. A float must be
    finite (inf and nan are refused: no timeout or lease is endless). Whitespace around the number is ignored, as
    `int()` and `float()` do; a value of whitespace only is refused, like any other non-number. `unit` names what
    the number counts ("seconds", "bytes") for the message of `error`."""
    raw = os.environ.get(name)
    if not raw:
        return default
    whole = kind is int
    expected = f"a {'positive ' if minimum is None else ''}{'whole ' if whole else ''}number of {unit}"
    if minimum is not None:
        expected += f", at least {minimum:g}"
    try:
        value: N | None = kind(raw)
    except ValueError:  # not a number, or an int longer than the interpreter's limit (4,300 digits)
        value = None
    if (
        value is None
        or (isinstance(value, float) and not math.isfinite(value))
        or (value <= 0 if minimum is None else value < minimum)
    ):
        raise error(f"{name} must be {expected}, not {raw!r}")
    return value
