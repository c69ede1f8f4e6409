"""The access price and fee split references (workers.protocol.access) and exp_wad: exact values at known
points, the clamp, the split adding up to the amount, and bad input refused."""

import math

import pytest

from workers.protocol.access import MAX_PRICE_EXPONENT, fee_split, price
from workers.protocol.constants import WAD
from workers.protocol.fixedpoint import MAX_EXP_INPUT, exp_wad


def test_exp_wad_is_close_to_exp_and_monotonic():
    for x in (0, WAD // 3, WAD, 10 * WAD, 50 * WAD, 100 * WAD):
        assert math.isclose(exp_wad(x) / WAD, math.exp(x / WAD), rel_tol=1e-12)
    values = [exp_wad(x) for x in range(0, MAX_EXP_INPUT, MAX_EXP_INPUT // 97)]
    assert values == sorted(values)
    assert exp_wad(MAX_EXP_INPUT) < 2**256
    with pytest.raises(ValueError, match="above MAX_EXP_INPUT"):
        exp_wad(MAX_EXP_INPUT + 1)


def test_price_grows_by_e_per_value_scale_and_is_flat_past_the_clamp():
    assert price(10**18, 0, 10**21) == 10**18
    assert price(10**18, 10**21, 10**21) == exp_wad(WAD)
    clamp = MAX_PRICE_EXPONENT // WAD * 10**21
    assert price(10**18, clamp, 10**21) == price(10**18, 10 * clamp, 10**21) == 10**18 * exp_wad(100 * WAD) // WAD
    with pytest.raises(ValueError):
        price(1, 1, 0)


def test_fee_split_adds_up_to_the_amount():
    split = fee_split(10**18 + 7, 1_000, 3_000, 2_000, 3)
    assert split.burned == 10**17 and split.storage == 3 * 10**17 + 2
    assert split.burned + split.storage + 3 * split.per_custodian + split.treasury == 10**18 + 7
    with pytest.raises(ValueError, match="more than"):
        fee_split(1, 5_000, 5_000, 1, 1)
    with pytest.raises(ValueError):
        fee_split(1, 0, 0, 0, 0)
