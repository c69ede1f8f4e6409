"""WeightedMedian (through WeightedMedianHarness) against workers.protocol.median on the same samples:
uint64 values (int32 fingerprints offset by 2**31 included), uint192 weights with zeros, one sample, the
largest panels, equal values; and its reverts."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contracts.conftest import reverts
from tests.contracts.libraries.conftest import EXAMPLES
from workers.protocol.constants import INT32_MAX, INT32_MIN, MAX_CURATORS, MAX_EVALUATORS, MAX_TRAINERS
from workers.protocol.median import lower_weighted_median

OFFSET = 2**31  # how TrainingRounds maps int32 onto uint32 without changing the order
UINT64_MAX, UINT192_MAX = 2**64 - 1, 2**192 - 1
EDGE_VALUES = [0, 1, UINT64_MAX, UINT64_MAX - 1, INT32_MIN + OFFSET, INT32_MAX + OFFSET, OFFSET]
values = st.one_of(st.sampled_from(EDGE_VALUES), st.integers(0, UINT64_MAX), st.integers(0, 2**32 - 1))
weights = st.one_of(
    st.sampled_from([0, 1, UINT192_MAX // 16]), st.integers(0, UINT192_MAX // 16), st.integers(0, 10**24)
)


@st.composite
def samples(draw):
    """(values, weights, count): `count` samples that weigh something, then up to three ignored ones."""
    count = draw(st.one_of(st.sampled_from([1, MAX_EVALUATORS, MAX_CURATORS, MAX_TRAINERS]), st.integers(1, 16)))
    pool = draw(st.lists(values, min_size=1, max_size=3))  # repeated values come up often
    vals = draw(st.lists(st.one_of(st.sampled_from(pool), values), min_size=count, max_size=count))
    ws = draw(st.lists(weights, min_size=count, max_size=count))
    if sum(ws) == 0:
        ws[draw(st.integers(0, count - 1))] = draw(st.integers(1, UINT192_MAX // 16))
    extra = draw(st.integers(0, 3))
    return (
        vals + draw(st.lists(values, min_size=extra, max_size=extra)),
        ws + draw(st.lists(weights, min_size=extra, max_size=extra)),
        count,
    )


def test_lower_median_matches_the_reference(median_harness):
    @settings(max_examples=4 * EXAMPLES, deadline=None)
    @given(samples())
    def check(sample):
        vals, ws, count = sample
        assert median_harness.lowerMedian(vals, ws, count) == lower_weighted_median(vals[:count], ws[:count])

    check()


def test_median_of_packed_sorts_and_matches(median_harness):
    @settings(max_examples=2 * EXAMPLES, deadline=None)
    @given(samples())
    def check(sample):
        vals, ws, count = sample
        packed = [(v << 192) | w for v, w in zip(vals, ws, strict=True)]
        median, buffer = median_harness.medianOfPacked(packed, count, sum(ws[:count]))
        assert median == lower_weighted_median(vals[:count], ws[:count])
        assert list(buffer) == sorted(packed[:count]) + packed[count:]  # only the first `count` are sorted

    check()


def test_pack_puts_the_value_above_the_weight(median_harness):
    for value, weight in [(0, 0), (UINT64_MAX, UINT192_MAX), (OFFSET, 1), (1, UINT192_MAX)]:
        assert median_harness.pack(value, weight) == (value << 192) | weight


def test_examples(median_harness):
    assert median_harness.lowerMedian([5], [1], 1) == 5
    assert median_harness.lowerMedian([1, 2], [1, 1], 2) == 1  # exactly half is enough
    assert median_harness.lowerMedian([9, 1, 5], [0, 0, 3], 3) == 5  # zero weights never decide
    assert median_harness.lowerMedian([7] * 16, [1] * 16, 16) == 7
    assert median_harness.lowerMedian([2, 1], [1, 1], 1) == 2  # samples past `count` are ignored


def test_reverts(median_harness):
    for value, weight in [(UINT64_MAX + 1, 1), (1, UINT192_MAX + 1), (2**256 - 1, 2**256 - 1)]:
        with reverts("SampleTooLarge", value, weight):
            median_harness.pack(value, weight)
        with reverts("SampleTooLarge", value, weight):
            median_harness.lowerMedian([0, value], [1, weight], 2)
    with reverts("NoWeight"):
        median_harness.lowerMedian([1, 2], [0, 0], 2)
    with reverts("NoWeight"):
        median_harness.lowerMedian([1], [1], 0)  # no sample, no weight
    with reverts("NoWeight"):
        median_harness.medianOfPacked([1 << 192], 1, 0)
    with reverts("CountTooLarge", 3, 2):
        median_harness.lowerMedian([1, 2], [1, 1, 1], 3)
    with reverts("CountTooLarge", 2, 1):
        median_harness.medianOfPacked([1], 2, 1)
