"""The training-round rules, as `TrainingRounds.sol` and its fingerprint library decide them.

Each revealed evaluator reports one fingerprint of K int32 per revealed delta. Per delta and coordinate the
lower stake-weighted median over the evaluators is the delta's consensus fingerprint; an evaluator is coherent
iff, for every delta, the L1 distance of its fingerprint to the consensus is within `evaluator_tolerance`.
The reference is the coordinate-wise lower median (equal weights) over the deltas' consensus fingerprints; a
delta is accepted iff its L1 distance to the reference is within `tolerance`; the best is the accepted delta
closest to it (the earliest revealed on a tie). Accepted deltas need a strict majority: when at most half of
the revealed deltas are within tolerance, none is accepted. Fewer than `min_accepted` accepted: the round fails.

The evaluator panel is drawn (`draw_outcome`) from the hash of a seed block after the trainers' reveal deadline,
while that hash is readable (`sortition.seed_expired`). A round with fewer revealed deltas than `min_accepted`
fails at the draw, its revealers keeping their bonds. Past the horizon the round expires: it fails settling every
trainer as silent (`trainer_settlement(expired=True)`), since anyone who knows the deltas could otherwise skip a
panel it computed and disliked, and a poisoning cartel keep the bonds an honest panel would take.

What a committed participant risks is fixed when the round opens: the trainer bond and its outlier slash
(`getRound`'s `trainerBond` and `trainerPenalty`) and the evaluator panel's penalty rates. A governance change
applies to rounds opened after it; the tolerances, `min_accepted` and the reward terms are read at `finalize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .constants import BPS, INT32_MAX, INT32_MIN, K
from .median import lower_median, lower_weighted_median
from .sortition import seed_expired

Fingerprint = tuple[int, ...]


def check_fingerprint(fingerprint: Sequence[int]) -> Fingerprint:
    """The fingerprint as a tuple of K ints in the int32 range; ValueError naming the fault otherwise."""
    if len(fingerprint) != K:
        raise ValueError(f"a fingerprint has {K} entries, got {len(fingerprint)}")
    for index, value in enumerate(fingerprint):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"fingerprint entry {index} is not an int: {value!r}")
        if not INT32_MIN <= value <= INT32_MAX:
            raise ValueError(f"fingerprint entry {index} = {value} is outside the int32 range")
    return tuple(fingerprint)


def fingerprint_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """L1 distance of two fingerprints (K int32 each), in exact integer arithmetic."""
    return sum(abs(x - y) for x, y in zip(check_fingerprint(a), check_fingerprint(b), strict=True))


@dataclass(frozen=True)
class Judgement:
    """A finalized round. `status` is "Finalized" or "Failed"; masks are bit i for delta i or seat i."""

    status: str
    consensus: tuple[Fingerprint, ...]  # per delta (empty when no evaluator revealed)
    reference: Fingerprint | None
    distances: tuple[int, ...]  # per delta, to the reference
    accepted_mask: int
    best: int | None
    coherent_mask: int  # over the seats given
    coherent_weight: int


def aggregate(
    reports: Sequence[Sequence[Sequence[int]]], weights: Sequence[int], evaluator_tolerance: int
) -> tuple[tuple[Fingerprint, ...], tuple[bool, ...], int]:
    """(consensus per delta, coherent per evaluator, coherent weight) from the revealed evaluators' `reports`
    (per evaluator, one fingerprint per delta) and their seat weights (wei)."""
    if len(reports) != len(weights) or not reports:
        raise ValueError("one report per weight, at least one")
    deltas = len(reports[0])
    if any(len(report) != deltas for report in reports):
        raise ValueError("every evaluator reports one fingerprint per delta")
    checked = [[check_fingerprint(fp) for fp in report] for report in reports]
    consensus = tuple(
        tuple(lower_weighted_median([report[d][k] for report in checked], weights) for k in range(K))
        for d in range(deltas)
    )
    coherent = tuple(
        max((fingerprint_distance(report[d], consensus[d]) for d in range(deltas)), default=0) <= evaluator_tolerance
        for report in checked
    )
    return consensus, coherent, sum(w for w, ok in zip(weights, coherent, strict=True) if ok)


def reference_of(consensus: Sequence[Sequence[int]]) -> Fingerprint:
    """Coordinate-wise lower median (equal weights) over the deltas' consensus fingerprints; ValueError for
    none or a malformed one."""
    checked = [check_fingerprint(fp) for fp in consensus]
    return tuple(lower_median([fp[k] for fp in checked]) for k in range(K))


def judge(
    reports: Sequence[Sequence[Sequence[int]]],
    weights: Sequence[int],
    *,
    tolerance: int,
    evaluator_tolerance: int,
    min_accepted: int,
) -> Judgement:
    """The outcome of `finalize` once the reveal window closed: `reports`/`weights` of the evaluators who
    revealed (seat order; per evaluator one fingerprint per revealed delta, in delta order). No report at
    all: the round fails. (With fewer revealed deltas than `min_accepted` no panel is drawn: the round
    fails at `drawEvaluators`, which is what this returns for any reports.)"""
    if not reports:
        return Judgement("Failed", (), None, (), 0, None, 0, 0)
    consensus, coherent, coherent_weight = aggregate(reports, weights, evaluator_tolerance)
    reference = reference_of(consensus)
    distances = tuple(fingerprint_distance(fp, reference) for fp in consensus)
    accepted = [d for d, distance in enumerate(distances) if distance <= tolerance]
    coherent_mask = sum(1 << i for i, ok in enumerate(coherent) if ok)
    # A lower median lets exactly half of the deltas, lying below the others, set the reference alone.
    if len(accepted) < min_accepted or 2 * len(accepted) <= len(distances):
        return Judgement("Failed", consensus, reference, distances, 0, None, coherent_mask, coherent_weight)
    best = min(accepted, key=lambda d: (distances[d], d))
    return Judgement(
        "Finalized",
        consensus,
        reference,
        distances,
        sum(1 << d for d in accepted),
        best,
        coherent_mask,
        coherent_weight,
    )


@dataclass(frozen=True)
class RoundPayouts:
    """Wei paid when a round is finalized."""

    emitted: int  # drawn from Emission
    evaluator_payout: int  # shared by coherent evaluators in proportion to their weight
    reward_per_trainer: int  # to each accepted trainer, on top of its bond
    slashed: int  # taken from outliers and silent trainers


def trainer_penalty(trainer_bond: int, outlier_slash_bps: int) -> int:
    """What an outlier or silent trainer loses of its bond (wei), from the bond and the slash rate in force when
    the round opened (`openRound` stores it as the round's `trainerPenalty`)."""
    return trainer_bond * outlier_slash_bps // BPS


def round_payouts(
    *,
    trainers: int,
    accepted: int,
    trainer_bond: int,
    outlier_slash_bps: int,
    round_reward: int,
    available: int,
    evaluator_share_bps: int,
    coherent_weight: int,
) -> RoundPayouts:
    """Payouts of a finalized round with `trainers` committed and `accepted` accepted deltas (accepted >= 1):
    the emission (capped by Emission's `available`), the coherent evaluators' share of it, and each accepted
    trainer's equal share of the rest plus the slashed bonds (rounded down). `trainer_bond` and
    `outlier_slash_bps` are the round's (in force when it opened); the rest is read at `finalize`."""
    if not 1 <= accepted <= trainers:
        raise ValueError(f"a finalized round has 1..{trainers} accepted deltas, got {accepted}")
    slashed = (trainers - accepted) * trainer_penalty(trainer_bond, outlier_slash_bps)
    emitted = min(round_reward, available)
    evaluator_payout = emitted * evaluator_share_bps // BPS if coherent_weight else 0
    return RoundPayouts(emitted, evaluator_payout, (slashed + emitted - evaluator_payout) // accepted, slashed)


def evaluator_settlement(
    *,
    revealed: bool,
    finalized: bool,
    coherent: bool,
    weight: int,
    bond: int,
    evaluator_payout: int,
    coherent_weight: int,
    incoherent_penalty_bps: int,
    no_reveal_penalty_bps: int,
) -> tuple[int, int]:
    """(reward, penalty) in wei when one evaluator seat is settled; `bond` is the evaluator's pool bond now, the
    penalty rates the panel's (in force when its round opened)."""
    if not revealed:
        return 0, bond * no_reveal_penalty_bps // BPS
    if not finalized:
        return 0, 0
    if coherent:
        return evaluator_payout * weight // coherent_weight, 0
    return 0, bond * incoherent_penalty_bps // BPS


def draw_outcome(*, delta_count: int, min_accepted: int, seed_block: int, block: int) -> str:
    """What `drawEvaluators` in block `block` (after `seed_block` is mined) does to a round with `delta_count`
    revealed deltas: "failed" with fewer than `min_accepted` (no panel could ever accept enough), else "expired"
    once the seed block's hash is out of reach (the round fails, every trainer settled as silent), else "drawn"."""
    if block <= seed_block:
        raise ValueError(f"the seed block {seed_block} is not mined before block {block}")
    if delta_count < min_accepted:
        return "failed"
    return "expired" if seed_expired(seed_block, block) else "drawn"


def trainer_settlement(
    *,
    revealed: bool,
    finalized: bool,
    accepted: bool,
    trainer_penalty_: int,
    reward_per_trainer: int,
    expired: bool = False,
) -> tuple[int, int]:
    """(reward, penalty) in wei when one trainer slot is settled (`finalize` for outliers and silent trainers,
    `drawEvaluators` for every trainer of an `expired` round, `claimTrainer` for the rest): an accepted delta of a
    finalized round gets `reward_per_trainer` and its bond back; an outlier, a silent trainer in any ended round,
    or any trainer of a round whose panel expired undrawn loses `trainer_penalty_` (the round's
    `trainerPenalty`); a trainer who revealed in a round that failed otherwise gets its bond back."""
    if finalized and accepted:
        return reward_per_trainer, 0
    if finalized or expired or not revealed:
        return 0, trainer_penalty_
    return 0, 0
