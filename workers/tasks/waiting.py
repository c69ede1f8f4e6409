"""How long a task waits before its next step, when that step needs a block the chain has not mined yet."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..chain import ChainClient

#: Blocks sampled to measure the chain's block time.
BLOCK_TIME_SAMPLE = 100


@dataclass(frozen=True)
class BlockWait:
    """Waits of a role's tasks: at least `min_wait` seconds, at most `$<max_wait_env>` (else
    `default_max_wait`). Dev chains that mine only on demand have no block time to go by: a short maximum
    makes the workers poll instead."""

    max_wait_env: str
    min_wait: float
    default_max_wait: float = 300.0

    def max_wait(self) -> float:
        configured = os.environ.get(self.max_wait_env)
        try:
            return max(float(configured), self.min_wait) if configured else self.default_max_wait
        except ValueError:
            raise ValueError(f"{self.max_wait_env} must be a number of seconds, not {configured!r}") from None

    def seconds_until(self, chain: ChainClient, block: int) -> float:
        """A wait, within [min_wait, max_wait()], after which the chain has probably reached `block`, judged
        from the block time of the last BLOCK_TIME_SAMPLE blocks."""
        latest = chain.w3.eth.get_block("latest")
        blocks = block - int(latest["number"])
        if blocks <= 0:
            return self.min_wait
        earlier = chain.w3.eth.get_block(max(int(latest["number"]) - BLOCK_TIME_SAMPLE, 0))
        span = int(latest["number"]) - int(earlier["number"])
        block_time = (int(latest["timestamp"]) - int(earlier["timestamp"])) / span if span else 0.0
        return min(max(blocks * block_time, self.min_wait), self.max_wait())
