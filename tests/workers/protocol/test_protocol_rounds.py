"""The training-round rules of workers.protocol.rounds: fingerprints, aggregation, judgement, payouts and
settlement (the contract's outcome on random rounds is compared in
tests/contracts/training/test_training_reference.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.protocol.constants import INT32_MAX, INT32_MIN, MAX_TRAINERS, K
from workers.protocol.rounds import (
    RoundFullError,
    aggregate,
    check_fingerprint,
    displaced_slot,
    draw_outcome,
    evaluator_settlement,
    fingerprint_distance,
    judge,
    reference_of,
    round_payouts,
    trainer_penalty,
    trainer_reward,
    trainer_settlement,
)

HONEST = tuple(1_000 + 10 * k for k in range(K))
POISONED = tuple(5_000 - 10 * k for k in range(K))
RULES = dict(tolerance=400, evaluator_tolerance=400, min_accepted=2)
PAY_RULES = dict(round_reward=1_000, available=10**6, evaluator_share_bps=2_000, coherent_weight=1)
int32 = st.integers(INT32_MIN, INT32_MAX)
fingerprints = st.lists(st.one_of(int32, st.sampled_from([INT32_MIN, INT32_MAX, 0])), min_size=K, max_size=K)


def shifted(fingerprint, by):
    return tuple(value + by for value in fingerprint)


def equal_bonds(reports):
    """One equal bond per delta: the slot-count rule, which bond weighting reduces to when bonds are equal."""
    return [7] * len(reports[0]) if reports else []


def judged(reports, weights, bonds=None, **rules):
    return judge(reports, weights, bonds=equal_bonds(reports) if bonds is None else bonds, **rules)


def test_check_fingerprint():
    assert check_fingerprint(list(HONEST)) == HONEST
    for bad, message in [
        (HONEST[:15], "16 entries, got 15"),
        ((0.5,) * K, "entry 0 is not an int"),
        ((True,) + HONEST[1:], "not an int"),
        ((INT32_MAX + 1,) + HONEST[1:], "outside the int32"),
        (HONEST[:15] + (INT32_MIN - 1,), "entry 15"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_fingerprint(bad)


@given(fingerprints, fingerprints)
def test_distance_is_an_exact_l1_metric(a, b):
    expected = sum(abs(x - y) for x, y in zip(a, b, strict=True))
    assert fingerprint_distance(a, b) == fingerprint_distance(b, a) == expected
    assert fingerprint_distance(a, a) == 0
    assert fingerprint_distance(a, b) <= K * (2**32 - 1)


def test_extreme_distance_fits_the_contract():
    assert fingerprint_distance((INT32_MAX,) * K, (INT32_MIN,) * K) == K * (2**32 - 1)


def test_honest_round_accepts_the_honest_and_slashes_the_poisoned():
    deltas = [HONEST, shifted(HONEST, 1), POISONED, shifted(HONEST, -2)]
    reports = [deltas, deltas, [shifted(fp, 3) for fp in deltas]]
    outcome = judged(reports, [1, 1, 1], **RULES)
    assert outcome.status == "Finalized"
    assert outcome.consensus == tuple(deltas)  # the lower median of (x, x, x + 3) is x
    assert outcome.reference == HONEST  # per coordinate: the 2nd smallest of (x - 2, x, x + 1, poisoned)
    assert outcome.distances == (0, K, fingerprint_distance(POISONED, HONEST), 2 * K)
    assert outcome.accepted_mask == 0b1011 and outcome.best == 0
    assert outcome.coherent_mask == 0b111 and outcome.coherent_weight == 3  # 3 * 16 = 48 <= 400


def test_best_is_the_earliest_on_a_tie_and_ties_at_the_tolerance_are_accepted():
    deltas = [shifted(HONEST, 1), shifted(HONEST, -1), HONEST]
    outcome = judged([deltas], [5], tolerance=K, evaluator_tolerance=0, min_accepted=1)
    assert outcome.reference == HONEST and outcome.distances == (K, K, 0) and outcome.best == 2
    tie = judged([[*deltas, HONEST]], [5], tolerance=K, evaluator_tolerance=0, min_accepted=1)
    assert tie.reference == HONEST and tie.distances == (K, K, 0, 0) and tie.best == 2
    assert tie.accepted_mask == 0b1111  # at the tolerance is within it
    # Two deltas 2K apart: the lower one is the reference, but one of two is no strict majority.
    split = judged([deltas[:2]], [5], tolerance=K, evaluator_tolerance=0, min_accepted=1)
    assert split.reference == shifted(HONEST, -1) and split.distances == (2 * K, 0) and split.status == "Failed"
    closer = judged([[*deltas, HONEST, HONEST]], [5], tolerance=K - 1, evaluator_tolerance=0, min_accepted=1)
    assert closer.accepted_mask == 0b11100  # just past the tolerance is outside it


def test_weighted_evaluators_and_incoherence():
    deltas = [HONEST, shifted(HONEST, 2)]
    liar = [POISONED, POISONED]
    outcome = judged([deltas, liar, deltas], [10, 19, 10], **RULES)  # the liar holds under half the weight
    assert outcome.consensus == tuple(deltas) and outcome.coherent_mask == 0b101 and outcome.coherent_weight == 20
    # With exactly half of the weight, a coalition below the honest values decides the lower median.
    low = [shifted(HONEST, -1_000), shifted(HONEST, -1_000)]
    assert judged([deltas, low, deltas], [10, 19, 10], **RULES).consensus == tuple(deltas)
    flipped = judged([deltas, low, deltas], [10, 20, 10], **RULES)
    assert flipped.consensus == tuple(low) and flipped.coherent_mask == 0b010
    # An evaluator is incoherent when any single delta is off, even if the others match.
    one_off = [HONEST, POISONED]
    assert judged([deltas, deltas, one_off], [1, 1, 1], **RULES).coherent_mask == 0b011


def test_failures():
    assert judged([], [], **RULES).status == "Failed"  # nobody revealed
    lonely = judged([[HONEST, POISONED]], [1], **RULES)  # two deltas, far apart: only one can be accepted
    assert lonely.status == "Failed" and lonely.accepted_mask == 0 and lonely.best is None
    assert lonely.reference == HONEST and lonely.distances == (0, fingerprint_distance(HONEST, POISONED))
    assert lonely.coherent_mask == 1  # coherence is still decided, for the seat settlement
    one_delta = judged([[HONEST]], [1], **RULES)  # fewer revealed deltas than min_accepted
    assert one_delta.status == "Failed"


def test_trainer_settlement():
    rule = dict(bond=1_000, outlier_slash_bps=7_000, trainer_reward_pool=6_001, accepted_bond=3_000)
    assert trainer_settlement(revealed=True, finalized=True, accepted=True, **rule) == (2_000, 0)  # 6001 / 3 floor
    assert trainer_settlement(revealed=True, finalized=True, accepted=False, **rule) == (0, 700)  # an outlier
    assert trainer_settlement(revealed=False, finalized=True, accepted=False, **rule) == (0, 700)  # silent
    assert trainer_settlement(revealed=True, finalized=False, accepted=False, **rule) == (0, 0)  # failed round
    assert trainer_settlement(revealed=False, finalized=False, accepted=False, **rule) == (0, 700)
    # A round whose panel expired undrawn settles every trainer as silent, revealed or not.
    assert trainer_settlement(revealed=True, finalized=False, accepted=False, expired=True, **rule) == (0, 700)
    assert trainer_settlement(revealed=False, finalized=False, accepted=False, expired=True, **rule) == (0, 700)
    # Reward and penalty scale with the slot's own bond.
    double = dict(rule, bond=2_000)
    assert trainer_settlement(revealed=True, finalized=True, accepted=True, **double) == (4_000, 0)
    assert trainer_settlement(revealed=True, finalized=True, accepted=False, **double) == (0, 1_400)


def test_rewards_are_pro_rata_to_the_bond():
    assert trainer_reward(1, 10, 3) == 3 and trainer_reward(2, 10, 3) == 6  # floor; a unit of dust stays
    assert trainer_reward(3, 10, 3) == 10
    assert trainer_penalty(999, 10_000) == 999 and trainer_penalty(999, 5_000) == 499


def test_draw_outcome():
    """Seed block 100: blocks 101..356 can draw from its hash, 357 on cannot; too few deltas fail first."""
    rule = dict(min_accepted=2, seed_block=100)
    assert draw_outcome(delta_count=2, block=101, **rule) == "drawn"
    assert draw_outcome(delta_count=2, block=356, **rule) == "drawn"
    assert draw_outcome(delta_count=2, block=357, **rule) == "expired"
    assert draw_outcome(delta_count=16, block=10_000, **rule) == "expired"
    assert draw_outcome(delta_count=1, block=101, **rule) == "failed"
    assert draw_outcome(delta_count=1, block=357, **rule) == "failed"  # bonds back: no panel could judge it
    with pytest.raises(ValueError, match="not mined"):
        draw_outcome(delta_count=2, block=100, **rule)


def test_exactly_half_of_the_deltas_cannot_set_the_reference():
    """Two of four equally bonded deltas lying below the other two make the lower-median reference: with a strict
    majority rule none is accepted and the round fails; three of five still decide."""
    below = tuple(v - 50_000 for v in HONEST)
    half = judged([[below, below, HONEST, HONEST]], [1], **RULES)
    assert half.reference == below and half.distances[:2] == (0, 0)
    assert half.status == "Failed" and half.accepted_mask == 0 and half.best is None and half.accepted_bond == 0
    majority = judged([[below, below, below, HONEST, HONEST]], [1], **RULES)
    assert majority.status == "Finalized" and majority.accepted_mask == 0b00111 and majority.accepted_bond == 21


def test_bond_not_slot_count_sets_the_reference():
    """Five minimum-bond poisoned slots below the honest values hold a slot majority but less bond than two honest
    slots: the honest deltas make the reference and are accepted, the poisoned ones are outliers. With exactly half
    of the bond the poisoned slots set the lower median but cannot be accepted: the round fails."""
    low = shifted(HONEST, -50_000)
    deltas = [low] * 5 + [HONEST, shifted(HONEST, 1)]
    minority = judged([deltas], [1], bonds=[10] * 5 + [26, 25], **RULES)
    assert minority.reference == HONEST and minority.status == "Finalized"
    assert minority.accepted_mask == 0b1100000 and minority.accepted_bond == 51 and minority.best == 5
    half = judged([deltas], [1], bonds=[10] * 5 + [25, 25], **RULES)
    assert half.reference == low and half.status == "Failed" and half.accepted_mask == 0
    assert half.distances[:5] == (0,) * 5 and half.accepted_bond == 0
    # Honest slots holding exactly half, above which the others lie, set the reference but are no majority either.
    above = [POISONED] * 5 + [HONEST, HONEST]
    honest_half = judged([above], [1], bonds=[10] * 5 + [25, 25], **RULES)
    assert honest_half.reference == HONEST and honest_half.status == "Failed"


def test_three_addresses_weigh_what_one_address_with_their_bond_weighs():
    """Splitting a bond over addresses (the same delta from each) changes neither the judgement nor the pay, but
    for the rounding dust."""
    far = shifted(HONEST, 10_000)
    split = judged([[HONEST, HONEST, HONEST, far, far]], [1], bonds=[5, 5, 5, 7, 7], **RULES)
    whole = judged([[HONEST, far, far]], [1], bonds=[15, 7, 7], **dict(RULES, min_accepted=1))
    assert split.reference == whole.reference == HONEST
    assert split.accepted_bond == whole.accepted_bond == 15
    paid = round_payouts(bonds=[5, 5, 5, 7, 7], accepted=[True] * 3 + [False] * 2, outlier_slash_bps=5_000, **PAY_RULES)
    assert paid == round_payouts(bonds=[15, 7, 7], accepted=[True, False, False], outlier_slash_bps=5_000, **PAY_RULES)
    part, whole_reward = (
        trainer_reward(5, paid.trainer_reward_pool, 15),
        trainer_reward(15, paid.trainer_reward_pool, 15),
    )
    assert (part, whole_reward) == (268, 806) and 0 <= whole_reward - 3 * part < 3  # only the floor's dust differs


def test_judge_rejects_mismatched_bonds():
    with pytest.raises(ValueError, match="2 deltas but 1 bonds"):
        judge([[HONEST, HONEST]], [1], bonds=[1], **RULES)
    with pytest.raises(ValueError, match="no weight"):
        judge([[HONEST, HONEST]], [1], bonds=[0, 0], **RULES)


@pytest.mark.parametrize(
    "reports, weights, message",
    [
        ([], [], "at least one"),
        ([[HONEST]], [1, 2], "one report per weight"),
        ([[HONEST], [HONEST, HONEST]], [1, 1], "one fingerprint per delta"),
        ([[HONEST[:3]]], [1], "16 entries"),
    ],
)
def test_aggregate_rejects_malformed_reports(reports, weights, message):
    with pytest.raises(ValueError, match=message):
        aggregate(reports, weights, 0)


@given(st.lists(fingerprints, min_size=1, max_size=16))
def test_reference_is_the_coordinatewise_lower_median(prints):
    reference = reference_of(prints)
    for k in range(K):
        assert reference[k] == sorted(fp[k] for fp in prints)[(len(prints) - 1) // 2]


@given(st.integers(1, 16), st.data())
def test_payouts_split_everything_but_rounding_dust(trainers, data):
    bonds = data.draw(st.lists(st.integers(1, 2**88 - 1), min_size=trainers, max_size=trainers))
    accepted = data.draw(st.lists(st.booleans(), min_size=trainers, max_size=trainers).filter(any))
    slash_bps = data.draw(st.integers(0, 10_000))
    reward, available = data.draw(st.integers(0, 2**96 - 1)), data.draw(st.integers(0, 2**100))
    share = data.draw(st.integers(0, 10_000))
    coherent_weight = data.draw(st.sampled_from([0, 1, 10**21]))
    paid = round_payouts(
        bonds=bonds,
        accepted=accepted,
        outlier_slash_bps=slash_bps,
        round_reward=reward,
        available=available,
        evaluator_share_bps=share,
        coherent_weight=coherent_weight,
    )
    assert paid.emitted == min(reward, available)
    slots = list(zip(bonds, accepted, strict=True))
    assert paid.slashed == sum(trainer_penalty(b, slash_bps) for b, ok in slots if not ok)
    assert paid.evaluator_payout == (paid.emitted * share // 10_000 if coherent_weight else 0)
    assert paid.trainer_reward_pool == paid.slashed + paid.emitted - paid.evaluator_payout
    accepted_bond = sum(b for b, ok in slots if ok)
    rewards = [trainer_reward(b, paid.trainer_reward_pool, accepted_bond) for b, ok in slots if ok]
    assert 0 <= paid.trainer_reward_pool - sum(rewards) < len(rewards)


def test_payouts_need_an_accepted_delta_and_matching_lengths():
    with pytest.raises(ValueError, match="an accepted trainer"):
        round_payouts(bonds=[1, 1], accepted=[False, False], outlier_slash_bps=1, **PAY_RULES)
    with pytest.raises(ValueError, match="2 bonds but 1 accepted"):
        round_payouts(bonds=[1, 1], accepted=[True], outlier_slash_bps=1, **PAY_RULES)


def test_evaluator_settlement():
    rules = dict(evaluator_payout=1_000, coherent_weight=3, incoherent_penalty_bps=200, no_reveal_penalty_bps=500)

    def settle(revealed, finalized, coherent, bond):
        return evaluator_settlement(
            revealed=revealed, finalized=finalized, coherent=coherent, weight=1, bond=bond, **rules
        )

    assert settle(True, True, True, 10) == (333, 0)
    assert settle(True, True, False, 10**4) == (0, 200)
    assert settle(False, True, False, 10**4) == (0, 500)
    assert settle(False, False, False, 10**4) == (0, 500)
    assert settle(True, False, True, 10**4) == (0, 0)


def test_a_free_slot_is_appended_and_a_full_round_displaces_its_smallest_bond():
    assert displaced_slot([], 1) is None
    assert displaced_slot([5] * (MAX_TRAINERS - 1), 1) is None  # below the smallest, but a slot is free
    full = [9, 4, 7, 4, *[8] * (MAX_TRAINERS - 4)]
    assert displaced_slot(full, 5) == 1  # the smallest bond, the lowest index among equal ones
    assert displaced_slot(full, 10**30) == 1
    for bond in (4, 3):  # equal or below: RoundFull
        with pytest.raises(RoundFullError) as full_error:
            displaced_slot(full, bond)
        assert full_error.value.smallest == 4
    assert displaced_slot([3, 2], 3, max_trainers=2) == 1
    with pytest.raises(ValueError, match="3 bonds but 2 slots"):
        displaced_slot([1, 2, 3], 9, max_trainers=2)


@given(st.lists(st.integers(1, 50), min_size=MAX_TRAINERS, max_size=MAX_TRAINERS), st.integers(1, 60))
def test_displacement_takes_the_smallest_bond_only_for_a_larger_one(bonds, bond):
    if bond <= min(bonds):
        with pytest.raises(RoundFullError):
            displaced_slot(bonds, bond)
        return
    slot = displaced_slot(bonds, bond)
    assert slot is not None
    assert bonds[slot] == min(bonds) and min(bonds) not in bonds[:slot]
