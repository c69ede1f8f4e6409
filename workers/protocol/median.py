"""The lower weighted median, as `WeightedMedian.sol` computes it.

The lower weighted median of (value, weight) samples is the smallest value v such that the samples <= v
weigh at least half of the total (2 * cumulative >= total). Voters holding less than half of the weight
cannot move it outside the range of the values the others voted for.
"""

from __future__ import annotations

from collections.abc import Sequence


def lower_weighted_median(values: Sequence[int], weights: Sequence[int]) -> int:
    """Lower weighted median of `values` (ints) weighted by `weights` (non-negative ints, same length).

    Ties in value are interchangeable, so the order of equal values does not matter.
    Raises ValueError on mismatched lengths, a negative weight, an empty sample or a zero total weight
    (`NoWeight()` on-chain).
    """
    if len(values) != len(weights):
        raise ValueError(f"{len(values)} values but {len(weights)} weights")
    if any(weight < 0 for weight in weights):
        raise ValueError("weights must be non-negative")
    total = sum(weights)
    if not values or total == 0:
        raise ValueError("no weight: the median of an empty or weightless sample is undefined")
    cumulative = 0
    for value, weight in sorted(zip(values, weights, strict=True)):
        cumulative += weight
        if 2 * cumulative >= total:
            return value
    raise AssertionError("unreachable: the cumulative weight always reaches half of the total")


def lower_median(values: Sequence[int]) -> int:
    """The lower median with equal weights: `sorted(values)[(n - 1) // 2]`."""
    return lower_weighted_median(values, [1] * len(values))
