"""The data consensus rules of workers.protocol.consensus: tally, threshold, payouts, seat settlement and expiry
(the contract's outcome on random votes is compared in tests/contracts/data/test_data_reference.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.protocol.consensus import (
    Payouts,
    expiry_slash,
    has_quorum,
    next_threshold,
    payouts,
    score_distance,
    seat_settlement,
    tally,
    trunc_div,
)
from workers.protocol.constants import BLOCKHASH_HORIZON, BPS, CRITERIA, MAX_SCORE
from workers.protocol.sortition import seed_expired

WEIGHTS = (3_000, 2_000, 2_000, 2_000, 1_000)
RULES = dict(quorum_bps=5_000, tolerance_l1=50, criteria_weights=WEIGHTS, threshold=5_000)
THRESHOLD = dict(
    ema_alpha_bps=2_000,
    target_acceptance_bps=5_000,
    threshold_gain_bps=2_000,
    threshold_floor=3_000,
    threshold_ceiling=8_000,
)
GOOD = (80, 75, 70, 85, 70)
JUNK = (5, 10, 20, 10, 15)
scores = st.lists(st.integers(0, MAX_SCORE), min_size=CRITERIA, max_size=CRITERIA)


def test_trunc_div_rounds_toward_zero_like_solidity():
    assert [trunc_div(n, d) for n, d in [(7, 2), (-7, 2), (7, -2), (-7, -2), (0, 5), (-1, 10_000)]] == [
        3,
        -3,
        -3,
        3,
        0,
        0,
    ]


def test_accepted_tally():
    result = tally([GOOD, GOOD, JUNK], [10, 10, 10], 30, **RULES)
    assert result.quorum and result.consensus == GOOD and result.accepted
    assert result.value == (80 * 3_000 + 75 * 2_000 + 70 * 2_000 + 85 * 2_000 + 70 * 1_000) // 100 == 7_700
    assert result.coherent == (True, True, False) and result.coherent_weight == 20


def test_value_rounds_down_and_the_threshold_is_inclusive():
    # 1 * 3,000 / 100 = 30 exactly; 1 * 1,000 / 100 = 10; a value equal to the threshold is accepted.
    assert tally([(1, 0, 0, 0, 0)], [1], 1, **{**RULES, "threshold": 30}).accepted
    assert not tally([(1, 0, 0, 0, 0)], [1], 1, **{**RULES, "threshold": 31}).accepted
    assert tally([(0, 0, 0, 0, 1)], [1], 1, **RULES).value == 10
    weights = (3_333, 3_333, 3_334, 0, 0)
    assert tally([(1, 1, 1, 0, 0)], [1], 1, **{**RULES, "criteria_weights": weights}).value == 100


def test_quorum_is_exact():
    assert has_quorum(5, 10, 5_000) and not has_quorum(4, 10, 5_000)
    assert not has_quorum(0, 0, 0)  # some weight must be revealed
    assert has_quorum(1, 10**30, 0)
    no_quorum = tally([GOOD], [4], 10, **RULES)
    assert not no_quorum.quorum and no_quorum.consensus is None and not no_quorum.accepted
    assert no_quorum.coherent == (False,) and no_quorum.coherent_weight == 0
    assert not tally([], [], 10, **RULES).quorum


def test_tolerance_is_inclusive():
    off_by_fifty = (30, 75, 70, 85, 70)
    result = tally([GOOD, GOOD, off_by_fifty, (29, 75, 70, 85, 70)], [5, 5, 1, 1], 12, **RULES)
    assert result.coherent == (True, True, True, False) and result.coherent_weight == 11
    assert score_distance(off_by_fifty, GOOD) == 50


@given(st.lists(scores, min_size=1, max_size=15), st.data())
def test_consensus_and_value_stay_in_range(votes, data):
    weights = data.draw(st.lists(st.integers(1, 10**24), min_size=len(votes), max_size=len(votes)))
    result = tally(votes, weights, sum(weights), **RULES)
    for c in range(CRITERIA):
        assert min(v[c] for v in votes) <= result.consensus[c] <= max(v[c] for v in votes)
    assert 0 <= result.value <= BPS
    assert result.coherent_weight == sum(w for w, ok in zip(weights, result.coherent, strict=True) if ok)


@pytest.mark.parametrize(
    "votes, weights, message",
    [
        ([(101, 0, 0, 0, 0)], [1], "0..100"),
        ([(1, 2, 3, 4)], [1], "5 scores"),
        ([GOOD], [1, 2], "1 votes but 2 weights"),
    ],
)
def test_malformed_votes_raise(votes, weights, message):
    with pytest.raises(ValueError, match=message):
        tally(votes, weights, 3, **RULES)


def test_threshold_follows_the_ema():
    # Accepted: EMA 5,000 -> (5,000 * 8,000 + 10,000 * 2,000) / 10,000 = 6,000; move 1,000 * 0.2 = +200.
    assert next_threshold(5_000, 5_000, True, **THRESHOLD) == (5_200, 6_000)
    assert next_threshold(5_000, 5_000, False, **THRESHOLD) == (4_800, 4_000)
    # A negative move rounds toward zero, as Solidity's signed division: (4,999 - 5,000) * 1 / 10,000 = 0.
    assert next_threshold(5_000, 5_000, False, **{**THRESHOLD, "ema_alpha_bps": 2, "threshold_gain_bps": 1}) == (
        5_000,
        4_999,
    )
    assert next_threshold(7_999, 10_000, True, **THRESHOLD) == (8_000, 10_000)  # clamped to the ceiling
    assert next_threshold(3_000, 0, False, **THRESHOLD) == (3_000, 0)  # and to the floor
    assert next_threshold(4_000, 3_000, True, **{**THRESHOLD, "ema_alpha_bps": 0}) == (3_600, 3_000)


@given(
    st.integers(0, BPS),
    st.integers(0, BPS),
    st.booleans(),
    st.integers(0, BPS),
    st.integers(0, BPS),
    st.integers(0, 65_535),
    st.integers(0, BPS),
    st.integers(0, BPS),
)
def test_threshold_stays_within_its_bounds(current, ema, accepted, alpha, target, gain, floor, ceiling):
    floor, ceiling = min(floor, ceiling), max(floor, ceiling)
    threshold, new_ema = next_threshold(
        current,
        ema,
        accepted,
        ema_alpha_bps=alpha,
        target_acceptance_bps=target,
        threshold_gain_bps=gain,
        threshold_floor=floor,
        threshold_ceiling=ceiling,
    )
    assert floor <= threshold <= ceiling
    assert min(ema, BPS if accepted else 0) <= new_ema <= max(ema, BPS if accepted else 0)


def test_payouts():
    accepted = tally([GOOD, GOOD], [10, 10], 20, **RULES)
    rules = dict(max_reward=1_000, available=10**9, curator_share_bps=1_000, reject_slash_bps=5_000)
    assert payouts(accepted, 500, **rules) == Payouts(693, 77, 770, 0)  # reward 1,000 * 7,700 / 10,000 = 770
    assert payouts(accepted, 500, **{**rules, "available": 100}) == Payouts(90, 10, 100, 0)  # capped by Emission
    rejected = tally([JUNK, JUNK], [10, 10], 20, **RULES)
    assert payouts(rejected, 501, **rules) == Payouts(0, 250, 0, 250)
    # Every voter far from the consensus (50, 50, 50, 50, 100) of value 5,500: no coherent curator.
    scattered = [(0, 0, 100, 100, 100), (100, 100, 0, 0, 100), (50, 50, 50, 50, 0)]
    all_incoherent = tally(scattered, [10, 10, 10], 30, **{**RULES, "threshold": 5_500})
    assert all_incoherent.accepted and all_incoherent.value == 5_500 and all_incoherent.coherent_weight == 0
    assert payouts(all_incoherent, 500, **rules) == Payouts(550, 0, 550, 0)  # the informant keeps it all
    rejected_incoherent = tally(scattered, [10, 10, 10], 30, **{**RULES, "threshold": 5_501})
    assert payouts(rejected_incoherent, 500, **rules) == Payouts(0, 0, 0, 250)  # the slash goes to the treasury
    assert payouts(tally([GOOD], [1], 20, **RULES), 500, **rules) == Payouts(0, 0, 0, 0)  # no quorum


def test_seat_settlement():
    rules = dict(curator_payout=1_000, coherent_weight=30, incoherent_penalty_bps=100, no_reveal_penalty_bps=500)
    assert seat_settlement(revealed=True, quorum=True, coherent=True, weight=10, bond=99, **rules) == (333, 0)
    assert seat_settlement(revealed=True, quorum=True, coherent=False, weight=10, bond=2_000, **rules) == (0, 20)
    assert seat_settlement(revealed=False, quorum=True, coherent=False, weight=10, bond=2_000, **rules) == (0, 100)
    assert seat_settlement(revealed=False, quorum=False, coherent=False, weight=10, bond=2_000, **rules) == (0, 100)
    assert seat_settlement(revealed=True, quorum=False, coherent=False, weight=10, bond=2_000, **rules) == (0, 0)


def test_expiry():
    """The last block that can draw from seed block 100 is 356 (blockhash reads the 256 blocks before the current
    one); from 357 on, the submission expires and its informant loses the expiry slash (rounded down)."""
    assert BLOCKHASH_HORIZON == 256
    assert not seed_expired(100, 101) and not seed_expired(100, 356) and seed_expired(100, 357)
    assert expiry_slash(200 * 10**18, 5_000) == 100 * 10**18
    assert expiry_slash(999, 3_333) == 332 and expiry_slash(999, 0) == 0 and expiry_slash(999, BPS) == 999
