"""The data consensus rules, as `DataConsensus.sol` decides them (integer arithmetic, Solidity rounding).

A panel of curators reveals five scores 0..100 each. With quorum, per criterion the lower stake-weighted
median of the revealed scores is the consensus; the value (0..10,000) is the criteria-weighted sum of the
medians divided by 100; the dataset is accepted iff value >= threshold. A curator is coherent iff the L1
distance of its scores to the consensus is within the tolerance. The threshold then follows an exponential
moving average of outcomes toward a target acceptance rate, clamped to [floor, ceiling].

What a committed bond can lose is fixed at `submit`: the informant's reject slash and expiry slash, and the
panel's penalty rates. A governance change applies to later submissions; quorum, tolerance, weights, threshold
rules and the reward terms are read at `finalize`.

A submission whose panel nobody draws while its seed block's hash is readable (`sortition.seed_expired`)
expires: the informant, who can compute its panel as soon as the seed block is mined, would otherwise skip the
panels it dislikes for a fresh seed. The expiry slashes `expiry_slash` of its bond, so that a new draw costs a new
submission and that slash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .constants import BPS, CRITERIA, MAX_SCORE
from .median import lower_weighted_median


def trunc_div(numerator: int, denominator: int) -> int:
    """Integer division rounding toward zero, as Solidity's signed `/` (Python's `//` floors)."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator > 0) else -quotient


def score_distance(scores: Sequence[int], consensus: Sequence[int]) -> int:
    """L1 distance between two score vectors."""
    return sum(abs(a - b) for a, b in zip(scores, consensus, strict=True))


@dataclass(frozen=True)
class Tally:
    """A finalized vote. `consensus` is None without quorum (then nothing else is decided)."""

    quorum: bool
    consensus: tuple[int, ...] | None
    value: int
    accepted: bool
    coherent: tuple[bool, ...]  # per revealed vote, in the order given
    coherent_weight: int


def has_quorum(revealed_weight: int, panel_weight: int, quorum_bps: int) -> bool:
    """Quorum: some weight revealed, and revealed * 10,000 >= quorum_bps * panel weight."""
    return revealed_weight != 0 and revealed_weight * BPS >= quorum_bps * panel_weight


def tally(
    votes: Sequence[Sequence[int]],
    weights: Sequence[int],
    panel_weight: int,
    *,
    quorum_bps: int,
    tolerance_l1: int,
    criteria_weights: Sequence[int],
    threshold: int,
) -> Tally:
    """Tallies the revealed `votes` (five scores 0..100 each, in seat order) of seats weighing `weights` (wei
    of pool bond at the draw) on a panel of total weight `panel_weight`; `criteria_weights` in bps summing to
    10,000; `threshold` in value points. ValueError for a malformed vote (`ScoreOutOfRange` at the reveal)."""
    if len(votes) != len(weights):
        raise ValueError(f"{len(votes)} votes but {len(weights)} weights")
    for vote in votes:
        if len(vote) != CRITERIA or not all(0 <= score <= MAX_SCORE for score in vote):
            raise ValueError(f"a vote is {CRITERIA} scores in 0..{MAX_SCORE}, got {list(vote)}")
    if len(criteria_weights) != CRITERIA:
        raise ValueError(f"{CRITERIA} criteria weights, got {len(criteria_weights)}")
    if not has_quorum(sum(weights), panel_weight, quorum_bps):
        return Tally(False, None, 0, False, tuple(False for _ in votes), 0)
    consensus = tuple(lower_weighted_median([vote[c] for vote in votes], weights) for c in range(CRITERIA))
    value = sum(median * weight for median, weight in zip(consensus, criteria_weights, strict=True)) // MAX_SCORE
    coherent = tuple(score_distance(vote, consensus) <= tolerance_l1 for vote in votes)
    coherent_weight = sum(weight for weight, ok in zip(weights, coherent, strict=True) if ok)
    return Tally(True, consensus, value, value >= threshold, coherent, coherent_weight)


def next_threshold(
    current: int,
    ema: int,
    accepted: bool,
    *,
    ema_alpha_bps: int,
    target_acceptance_bps: int,
    threshold_gain_bps: int,
    threshold_floor: int,
    threshold_ceiling: int,
) -> tuple[int, int]:
    """(next threshold, next EMA) after one outcome: the EMA of outcomes in bps, then the threshold moves by
    gain * (EMA - target) / 10,000 (rounded toward zero), clamped to [floor, ceiling]."""
    outcome = BPS if accepted else 0
    ema = (ema * (BPS - ema_alpha_bps) + outcome * ema_alpha_bps) // BPS
    moved = current + trunc_div((ema - target_acceptance_bps) * threshold_gain_bps, BPS)
    return min(max(moved, threshold_floor), threshold_ceiling), ema


def expiry_slash(bond: int, expiry_slash_bps: int) -> int:
    """Wei of INFORMANT stake an expired submission sends to the treasury: `bond * expiry_slash_bps / 10,000`
    (rounded down), at the rate in force at `submit`; the rest of the bond is unlocked."""
    return bond * expiry_slash_bps // BPS


@dataclass(frozen=True)
class Payouts:
    """Where an outcome's tokens go (wei)."""

    informant_reward: int  # claimable by an accepted informant
    curator_payout: int  # shared by the coherent curators in proportion to their weight
    emitted: int  # drawn from Emission
    informant_slashed: int  # taken from a rejected informant's bond


def payouts(
    tally_: Tally, bond: int, *, max_reward: int, available: int, curator_share_bps: int, reject_slash_bps: int
) -> Payouts:
    """The rewards of an accepted dataset (max_reward * value / 10,000, capped by Emission's `available`) or the
    slash of a rejected one (`reject_slash_bps`: the rate in force at `submit`). Without a coherent curator the
    curators' part goes nowhere (accepted: the informant keeps it; rejected: the slash goes to the treasury)."""
    if not tally_.quorum:
        return Payouts(0, 0, 0, 0)
    if tally_.accepted:
        reward = min(max_reward * tally_.value // BPS, available)
        curator_part = reward * curator_share_bps // BPS if tally_.coherent_weight else 0
        return Payouts(reward - curator_part, curator_part, reward, 0)
    slashed = bond * reject_slash_bps // BPS
    return Payouts(0, slashed if tally_.coherent_weight else 0, 0, slashed)


def seat_settlement(
    *,
    revealed: bool,
    quorum: bool,
    coherent: bool,
    weight: int,
    bond: int,
    curator_payout: int,
    coherent_weight: int,
    incoherent_penalty_bps: int,
    no_reveal_penalty_bps: int,
) -> tuple[int, int]:
    """(reward, penalty) in wei when one seat is settled. `weight` is the seat's weight at the draw; `bond`
    the curator's pool bond now (penalties are a share of it, at the panel's rates: those in force at `submit`)."""
    if not revealed:
        return 0, bond * no_reveal_penalty_bps // BPS
    if not quorum:
        return 0, 0
    if coherent:
        return curator_payout * weight // coherent_weight, 0
    return 0, bond * incoherent_penalty_bps // BPS
