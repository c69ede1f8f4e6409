"""The training-round rules, as `TrainingRounds.sol` and its fingerprint library decide them.

Each revealed evaluator reports one fingerprint of K int32 per revealed delta. Per delta and coordinate the
lower stake-weighted median over the evaluators is the delta's consensus fingerprint; an evaluator is coherent
iff, for every delta, the L1 distance of its fingerprint to the consensus is within `evaluator_tolerance`.

A trainer slot weighs the bond it locked (wei, at least the round's minimum `trainerBond`), so that extra
addresses are worth nothing: 3 addresses bonding B each earn and weigh exactly what 1 address bonding 3B does,
and a party counts for its capital. The reference is the coordinate-wise lower median, weighted by the deltas'
bonds, over the deltas' consensus fingerprints; a delta is within tolerance iff its L1 distance to the reference
is within `tolerance`; the best is the accepted delta closest to it (the earliest revealed on a tie). Accepted
deltas need a strict majority of the revealed bond: when the deltas within tolerance hold at most half of it,
none is accepted. Fewer than `min_accepted` accepted deltas (a count): the round fails. Outliers and silent
trainers lose `outlier_slash_bps` of their own bond; accepted trainers split the slashes plus the round's
emission (less the evaluators' share) in proportion to their bonds.

The evaluator panel is drawn (`draw_outcome`) from the hash of a seed block after the trainers' reveal deadline,
while that hash is readable (`sortition.seed_expired`). A round with fewer revealed deltas than `min_accepted`
fails at the draw, its revealers keeping their bonds. Past the horizon the round expires: it fails settling every
trainer as silent (`trainer_settlement(expired=True)`), since anyone who knows the deltas could otherwise skip a
panel it computed and disliked, and a poisoning cartel keep the bonds an honest panel would take.

A round has `MAX_TRAINERS` slots. While one is free a commit takes the next; once all are taken, a commit whose
bond is strictly above the smallest committed bond displaces that slot (the lowest index among equal bonds) during
the commit window (`displaced_slot`): the displaced trainer's bond is unlocked in full and it may commit again with
a larger bond. First come first served would let a cartel's minimum bonds from `MAX_TRAINERS` addresses fill a
round the moment it opens, before honest trainers (who train first) can commit; with displacement, keeping them out
takes more bonded capital than theirs.

What a committed participant risks is fixed when the round opens: the minimum trainer bond and the outlier slash
rate (`getRound`'s `trainerBond` and `outlierSlashBps`) and the evaluator panel's penalty rates. A governance
change applies to rounds opened after it; the tolerances, `min_accepted` and the reward terms are read at
`finalize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .constants import BPS, INT32_MAX, INT32_MIN, MAX_TRAINERS, K
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
    accepted_bond: int  # wei: the accepted deltas' summed bond (0 unless finalized)


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


def reference_of(consensus: Sequence[Sequence[int]], bonds: Sequence[int] | None = None) -> Fingerprint:
    """Coordinate-wise lower weighted median over the deltas' consensus fingerprints, each weighing its trainer's
    bond (`bonds`, wei, delta order; equal weights when None); ValueError for none, a malformed one, a bond count
    that differs from the deltas' or a zero total bond."""
    checked = [check_fingerprint(fp) for fp in consensus]
    if bonds is None:
        return tuple(lower_median([fp[k] for fp in checked]) for k in range(K))
    if len(bonds) != len(checked):
        raise ValueError(f"{len(checked)} deltas but {len(bonds)} bonds")
    return tuple(lower_weighted_median([fp[k] for fp in checked], bonds) for k in range(K))


def judge(
    reports: Sequence[Sequence[Sequence[int]]],
    weights: Sequence[int],
    *,
    bonds: Sequence[int],
    tolerance: int,
    evaluator_tolerance: int,
    min_accepted: int,
) -> Judgement:
    """The outcome of `finalize` once the reveal window closed: `reports`/`weights` of the evaluators who
    revealed (seat order; per evaluator one fingerprint per revealed delta, in delta order) and `bonds`, each
    revealed delta's trainer bond (wei, delta order). No report at all: the round fails. ValueError for
    malformed reports, a bond count that differs from the deltas' or a zero total bond (the contract keeps
    every bond >= 1). (With fewer revealed deltas than `min_accepted` no panel is drawn: the round fails at
    `drawEvaluators`, which is what this returns for any reports.)"""
    if not reports:
        return Judgement("Failed", (), None, (), 0, None, 0, 0, 0)
    consensus, coherent, coherent_weight = aggregate(reports, weights, evaluator_tolerance)
    reference = reference_of(consensus, bonds)
    distances = tuple(fingerprint_distance(fp, reference) for fp in consensus)
    accepted = [d for d, distance in enumerate(distances) if distance <= tolerance]
    accepted_bond = sum(bonds[d] for d in accepted)
    coherent_mask = sum(1 << i for i, ok in enumerate(coherent) if ok)
    # A lower weighted median lets deltas holding exactly half of the bond, lying below the others, set the
    # reference alone: acceptance needs more than half of the revealed bond, whatever the slot count.
    if len(accepted) < min_accepted or 2 * accepted_bond <= sum(bonds):
        return Judgement("Failed", consensus, reference, distances, 0, None, coherent_mask, coherent_weight, 0)
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
        accepted_bond,
    )


@dataclass(frozen=True)
class RoundPayouts:
    """Wei paid when a round is finalized."""

    emitted: int  # drawn from Emission
    evaluator_payout: int  # shared by coherent evaluators in proportion to their weight
    trainer_reward_pool: int  # shared by accepted trainers in proportion to their bonds, on top of the bonds
    slashed: int  # taken from outliers and silent trainers


class RoundFullError(ValueError):
    """A commit to a round whose slots are all taken, with a bond (wei) not above the smallest committed one: the
    contract's `RoundFull`. `smallest` is that bond (wei): a bond above it would take its slot."""

    def __init__(self, smallest: int) -> None:
        super().__init__(f"the round is full and its smallest bond is {smallest} wei; a larger bond takes that slot")
        self.smallest = smallest


def displaced_slot(bonds: Sequence[int], bond: int, max_trainers: int = MAX_TRAINERS) -> int | None:
    """Which slot a commit of `bond` (wei) takes, given the committed slots' `bonds` (wei, slot order):
    None while fewer than `max_trainers` are taken (the commit appends slot `len(bonds)`); else the index of the
    smallest bond (the lowest index among equal ones), which the commit displaces, when `bond` is strictly above
    it. RoundFullError (carrying that smallest bond) when the round is full and `bond` is not above it; ValueError
    for more bonds than slots. The commit window only: nothing revealed is ever displaced."""
    if len(bonds) > max_trainers:
        raise ValueError(f"{len(bonds)} bonds but {max_trainers} slots")
    if len(bonds) < max_trainers:
        return None
    smallest = min(bonds)
    if bond <= smallest:
        raise RoundFullError(smallest)
    return list(bonds).index(smallest)


def trainer_penalty(bond: int, outlier_slash_bps: int) -> int:
    """What an outlier or silent trainer loses of its own `bond` (wei), at the slash rate in force when the
    round opened (`getRound`'s `outlierSlashBps`)."""
    return bond * outlier_slash_bps // BPS


def round_payouts(
    *,
    bonds: Sequence[int],
    accepted: Sequence[bool],
    outlier_slash_bps: int,
    round_reward: int,
    available: int,
    evaluator_share_bps: int,
    coherent_weight: int,
) -> RoundPayouts:
    """Payouts of a finalized round: `bonds` and `accepted` per committed trainer slot (wei; silent trainers are
    not accepted; at least one is). The emission (capped by Emission's `available`), the coherent evaluators'
    share of it, the rejected slots' penalties, and the accepted trainers' pool: the slashes plus the emission
    less the evaluators' share. `outlier_slash_bps` is the round's (in force when it opened); the rest is read
    at `finalize`. ValueError for mismatched lengths or no accepted slot."""
    if len(bonds) != len(accepted):
        raise ValueError(f"{len(bonds)} bonds but {len(accepted)} accepted flags")
    if not any(accepted):
        raise ValueError("a finalized round has an accepted trainer")
    slashed = sum(trainer_penalty(bond, outlier_slash_bps) for bond, ok in zip(bonds, accepted, strict=True) if not ok)
    emitted = min(round_reward, available)
    evaluator_payout = emitted * evaluator_share_bps // BPS if coherent_weight else 0
    return RoundPayouts(emitted, evaluator_payout, slashed + emitted - evaluator_payout, slashed)


def trainer_reward(bond: int, trainer_reward_pool: int, accepted_bond: int) -> int:
    """An accepted trainer's reward (wei): its bond's share of the round's pool, rounded down (the dust stays in
    the contract). Pro rata to the bond, so splitting a bond over addresses changes nothing but the dust."""
    return trainer_reward_pool * bond // accepted_bond


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
    bond: int,
    outlier_slash_bps: int,
    trainer_reward_pool: int,
    accepted_bond: int,
    expired: bool = False,
) -> tuple[int, int]:
    """(reward, penalty) in wei when one trainer slot, holding `bond`, is settled (`finalize` for outliers and
    silent trainers, `drawEvaluators` for every trainer of an `expired` round, `claimTrainer` for the rest): an
    accepted delta of a finalized round gets `trainer_reward(bond, trainer_reward_pool, accepted_bond)` and its
    bond back; an outlier, a silent trainer in any ended round, or any trainer of a round whose panel expired
    undrawn loses `trainer_penalty(bond, outlier_slash_bps)`; a trainer who revealed in a round that failed
    otherwise gets its bond back."""
    if finalized and accepted:
        return trainer_reward(bond, trainer_reward_pool, accepted_bond), 0
    if finalized or expired or not revealed:
        return 0, trainer_penalty(bond, outlier_slash_bps)
    return 0, 0
