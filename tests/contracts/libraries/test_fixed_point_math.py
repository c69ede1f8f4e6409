"""FixedPointMath (through FixedPointMathHarness) against workers.protocol.fixedpoint: mulWad rounding and
overflow, powWad with exponent 0 and huge, base 0, 1 wei and one, and the base-above-one revert."""

import brownie
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contracts.conftest import reverts
from tests.contracts.libraries.conftest import EXAMPLES
from workers.protocol.constants import WAD
from workers.protocol.fixedpoint import LN2_WAD, MAX_EXP_INPUT, UINT256_MAX, exp_wad, mul_wad, pow_wad

bases = st.one_of(st.sampled_from([0, 1, 2, WAD // 2, WAD - 1, WAD]), st.integers(0, WAD))
exponents = st.one_of(
    st.sampled_from([0, 1, 2, 255, 256, 2**64, UINT256_MAX]), st.integers(0, 300), st.integers(0, UINT256_MAX)
)
factors = st.one_of(st.sampled_from([0, 1, WAD, UINT256_MAX]), st.integers(0, 2**128), st.integers(0, UINT256_MAX))


def test_wad(math_harness):
    assert math_harness.wad() == WAD


def test_pow_wad_matches_the_reference(math_harness):
    @settings(max_examples=4 * EXAMPLES, deadline=None)
    @given(bases, exponents)
    def check(base, exponent):
        assert math_harness.powWad(base, exponent) == pow_wad(base, exponent)

    check()


def test_exp_wad_matches_the_reference_over_its_whole_range(math_harness):
    inputs = st.one_of(
        st.sampled_from([0, 1, LN2_WAD - 1, LN2_WAD, LN2_WAD + 1, WAD, MAX_EXP_INPUT - 1, MAX_EXP_INPUT]),
        st.integers(0, MAX_EXP_INPUT),
    )

    @settings(max_examples=4 * EXAMPLES, deadline=None)
    @given(inputs)
    def check(x):
        assert math_harness.expWad(x) == exp_wad(x)

    check()
    with reverts("ExpInputTooLarge", MAX_EXP_INPUT + 1):
        math_harness.expWad(MAX_EXP_INPUT + 1)


def test_mul_wad_matches_the_reference_or_both_reject(math_harness):
    @settings(max_examples=2 * EXAMPLES, deadline=None)
    @given(factors, factors)
    def check(x, y):
        if x * y > UINT256_MAX:
            with brownie.reverts():  # checked arithmetic: a Panic(0x11)
                math_harness.mulWad(x, y)
            try:
                mul_wad(x, y)
            except ValueError:
                return
            raise AssertionError("the reference accepted an overflowing product")
        assert math_harness.mulWad(x, y) == mul_wad(x, y)

    check()


def test_edges(math_harness):
    assert math_harness.powWad(0, 0) == WAD == pow_wad(0, 0)
    assert math_harness.powWad(0, UINT256_MAX) == 0
    assert math_harness.powWad(WAD, UINT256_MAX) == WAD
    assert math_harness.powWad(1, 1) == 1 and math_harness.powWad(1, 2) == 0
    assert math_harness.powWad(WAD - 1, UINT256_MAX) == 0


def test_base_above_one_reverts(math_harness):
    for base in (WAD + 1, UINT256_MAX):
        with reverts("BaseAboveOne", base):
            math_harness.powWad(base, 0)
