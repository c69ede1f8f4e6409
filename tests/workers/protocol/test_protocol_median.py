"""The lower weighted median of workers.protocol.median against its definition (the contract's twin is
checked in tests/contracts/libraries)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.protocol.constants import INT32_MAX, INT32_MIN
from workers.protocol.median import lower_median, lower_weighted_median

values = st.integers(min_value=INT32_MIN, max_value=INT32_MAX)
weights = st.integers(min_value=0, max_value=2**96)


@st.composite
def samples(draw, max_size=20):
    """(values, weights) with a positive total weight; values often repeat, weights are often zero."""
    size = draw(st.integers(min_value=1, max_value=max_size))
    pool = draw(st.lists(values, min_size=1, max_size=4))
    vals = draw(st.lists(st.one_of(st.sampled_from(pool), values), min_size=size, max_size=size))
    ws = draw(st.lists(st.one_of(st.just(0), weights), min_size=size, max_size=size))
    if sum(ws) == 0:
        ws[draw(st.integers(min_value=0, max_value=size - 1))] = draw(st.integers(min_value=1, max_value=2**96))
    return vals, ws


@given(samples())
def test_median_is_the_smallest_value_holding_half_the_weight(sample):
    vals, ws = sample
    median = lower_weighted_median(vals, ws)
    total = sum(ws)
    assert median in vals
    at_most = sum(w for v, w in zip(vals, ws, strict=True) if v <= median)
    below = sum(w for v, w in zip(vals, ws, strict=True) if v < median)
    assert 2 * at_most >= total  # the median holds half of the weight ...
    assert 2 * below < total  # ... and no smaller value does


@given(samples(), st.randoms(use_true_random=False))
def test_order_of_samples_does_not_matter(sample, rng):
    vals, ws = sample
    pairs = list(zip(vals, ws, strict=True))
    rng.shuffle(pairs)
    assert lower_weighted_median([v for v, _ in pairs], [w for _, w in pairs]) == lower_weighted_median(vals, ws)


@given(st.lists(values, min_size=1, max_size=33))
def test_equal_weights_give_the_lower_median(vals):
    assert lower_median(vals) == sorted(vals)[(len(vals) - 1) // 2]
    assert lower_weighted_median(vals, [7] * len(vals)) == lower_median(vals)


@given(
    honest=st.lists(st.integers(-1_000, 1_000), min_size=1, max_size=8),
    liars=st.lists(values, min_size=0, max_size=8),
    data=st.data(),
)
def test_a_coalition_under_half_the_weight_cannot_leave_the_honest_range(honest, liars, data):
    honest_weights = data.draw(st.lists(st.integers(1, 10**24), min_size=len(honest), max_size=len(honest)))
    budget = (sum(honest_weights) - 1) // max(len(liars), 1)  # liars weigh strictly less than the honest
    liar_weights = data.draw(st.lists(st.integers(0, budget), min_size=len(liars), max_size=len(liars)))
    median = lower_weighted_median(honest + liars, honest_weights + liar_weights)
    assert min(honest) <= median <= max(honest)


def test_examples():
    assert lower_weighted_median([5], [1]) == 5  # one sample
    assert lower_weighted_median([1, 2, 3], [1, 1, 1]) == 2
    assert lower_weighted_median([1, 2, 3, 4], [1, 1, 1, 1]) == 2  # lower of the two middle values
    assert lower_weighted_median([1, 2], [1, 1]) == 1  # exactly half is enough
    assert lower_weighted_median([1, 2], [1, 2]) == 2
    assert lower_weighted_median([9, 1, 5], [0, 0, 3]) == 5  # zero weights never decide
    assert lower_weighted_median([INT32_MAX, INT32_MIN], [1, 1]) == INT32_MIN
    assert lower_weighted_median([3, 3, 3], [0, 1, 0]) == 3


@pytest.mark.parametrize(
    "vals, ws, message",
    [
        ([], [], "no weight"),
        ([1, 2], [0, 0], "no weight"),
        ([1, 2], [1], "2 values but 1 weights"),
        ([1, 2], [3, -1], "non-negative"),
    ],
)
def test_bad_samples_raise(vals, ws, message):
    with pytest.raises(ValueError, match=message):
        lower_weighted_median(vals, ws)


def test_lower_median_of_nothing_raises():
    with pytest.raises(ValueError, match="no weight"):
        lower_median([])


def test_large_random_sample_matches_a_sort():
    rng = random.Random(7)
    vals = [rng.randint(INT32_MIN, INT32_MAX) for _ in range(999)]
    assert lower_median(vals) == sorted(vals)[499]
