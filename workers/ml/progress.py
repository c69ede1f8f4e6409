"""Progress of the long ML steps (model cache build, training steps, fingerprinting) for a person watching.

On a terminal (standard error is a TTY) a tqdm bar; otherwise (a worker's log, a pipe) one log line when the step
starts and one when it ends, so logs stay readable. tqdm is the maintained library that draws the bar; this
module only chooses between the two.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

logger = logging.getLogger("workers.ml")

T = TypeVar("T")


def on_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress(items: Iterable[T], total: int, what: str, unit: str = "it") -> Iterator[T]:
    """Yields `items` (`total` of them), showing `what` progress (module docstring)."""
    if on_terminal():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=what, unit=unit, leave=False, file=sys.stderr)
        return
    logger.info("%s: %d %s%s…", what, total, unit, "" if total == 1 else "s")
    started = time.perf_counter()
    yield from items
    logger.info("%s: done in %.1f s", what, time.perf_counter() - started)


def announce(what: str) -> float:
    """A one-off long step without steps to count (building a cache): says it starts; returns the start time
    for `finished`."""
    if on_terminal():
        print(f"{what}…", file=sys.stderr, flush=True)
    else:
        logger.info("%s…", what)
    return time.perf_counter()


def finished(what: str, started: float) -> None:
    line = f"{what}: done in {time.perf_counter() - started:.1f} s"
    if on_terminal():
        print(line, file=sys.stderr, flush=True)
    else:
        logger.info(line)
