"""WAD maths of workers.protocol.fixedpoint: rounding, the bounds of repeated squaring, bad inputs."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.protocol.constants import WAD
from workers.protocol.fixedpoint import UINT256_MAX, mul_wad, pow_wad

bases = st.one_of(st.sampled_from([0, 1, 2, WAD // 2, WAD - 1, WAD]), st.integers(min_value=0, max_value=WAD))


@given(st.integers(0, 2**128), st.integers(0, 2**128))
def test_mul_wad_rounds_down(x, y):
    assert mul_wad(x, y) == x * y // WAD
    assert mul_wad(x, y) * WAD <= x * y < (mul_wad(x, y) + 1) * WAD


@given(bases, st.integers(min_value=0, max_value=300))
def test_pow_wad_is_within_its_rounding_bound(base, exponent):
    """Each step rounds down by under one wei and squaring at most doubles an error, so the result lies
    between the exact power minus 2**bitlen(exponent) and the exact power."""
    exact = Fraction(base, WAD) ** exponent * WAD
    result = pow_wad(base, exponent)
    assert exact - 2 ** exponent.bit_length() <= result <= exact


@given(st.integers(min_value=0, max_value=UINT256_MAX))
def test_pow_wad_edges(exponent):
    assert pow_wad(WAD, exponent) == WAD  # one to any power
    assert pow_wad(0, exponent) == (WAD if exponent == 0 else 0)  # 0 ** 0 is one
    assert pow_wad(1, exponent) == {0: WAD, 1: 1}.get(exponent, 0)  # one wei squared rounds to zero


@given(bases)
def test_pow_wad_small_exponents(base):
    assert pow_wad(base, 0) == WAD
    assert pow_wad(base, 1) == base
    assert pow_wad(base, 2) == mul_wad(base, base)
    assert pow_wad(base, 3) == mul_wad(base, mul_wad(base, base))


def test_huge_exponent_decays_to_zero():
    assert pow_wad(WAD - 1, UINT256_MAX) == 0
    assert 0 < pow_wad(WAD - 1, 2**64) < WAD // 10**7  # (1 - 1e-18) ** 2**64 = e ** -18.4
    assert pow_wad(WAD - 1, 2**70) == 0
    assert pow_wad(WAD // 2, 60) == WAD // 2**60  # halving, exactly representable


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: pow_wad(WAD + 1, 2), "base above 1"),
        (lambda: pow_wad(-1, 2), "base must be a uint256"),
        (lambda: pow_wad(WAD, -1), "exponent must be a uint256"),
        (lambda: pow_wad(WAD, 2**256), "exponent must be a uint256"),
        (lambda: mul_wad(2**200, 2**60), "overflows uint256"),
        (lambda: mul_wad(-1, 1), "x must be a uint256"),
        (lambda: mul_wad(1, 0.5), "y must be a uint256"),
    ],
)
def test_bad_inputs_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()
