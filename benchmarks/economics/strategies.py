"""Strategies: who plays, and what each participant sends in an epoch (one data submission, then one training
round on it). The base class is honest play for everyone; a strategy overrides the moves of its party, the
addresses whose profit it is judged by, when `deviating`. The same objects drive the fast model (`model.py`)
and the on-chain runner (`onchain.py`): both call these hooks in the same order, so both layers see the same
moves and off-chain costs.

Names are participant labels ("cur0", "eva3", "tr1", "inf"); the on-chain runner maps each to an account.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.protocol.constants import CRITERIA

from .world import (
    DSH,
    Economy,
    curator_scores,
    measured_fingerprint,
    true_fingerprint,
)

Fingerprint = tuple[int, ...]


@dataclass(frozen=True)
class Roster:
    """Participants: pool members in join order with their pool bonds (wei), trainers in commit order with the
    bond each commits every round (wei, at least the round's minimum `trainerBond`), and the informant (each
    staked in its role before the first epoch)."""

    curators: tuple[tuple[str, int], ...]
    evaluators: tuple[tuple[str, int], ...]
    trainers: tuple[tuple[str, int], ...]
    informant: str = "inf"

    def trainer_bond(self, name: str) -> int:
        """The bond (wei) trainer `name` commits; KeyError for a name that is not a trainer."""
        return dict(self.trainers)[name]


@dataclass
class Context:
    """What the hooks may read in one world: the run seed, the epoch, the economy, the consensus of past
    submissions (public on-chain), and the off-chain costs paid so far (wei per name)."""

    seed: int
    economy: Economy
    epoch: int = 0
    history: list[tuple[int, ...]] = field(default_factory=list)
    costs: dict[str, int] = field(default_factory=dict)
    #: (epoch, operator) pairs whose deltas are fingerprinted already (an operator measures once per round)
    measured: set[tuple[int, str]] = field(default_factory=set)

    def pay(self, name: str, amount: int) -> None:
        self.costs[name] = self.costs.get(name, 0) + amount


class Strategy:
    """Everyone honest. Subclasses set `name` and `party` and override the hooks for their party."""

    name = "honest"
    #: What the strategy does, for the README's table.
    summary = "one trainer trains and commits its delta like everyone else (the reference of every comparison)"
    party: tuple[str, ...] = ("tr0",)
    #: Report profit per training run as well as per stake (trainers that share one run).
    per_run = False
    #: Addresses one operator runs (one machine, one measurement per round): a split party's.
    one_operator: tuple[str, ...] = ()
    #: A cartel's share of the stake that decides what it attacks (of the round's committed trainer bond, of the
    #: evaluator pool), or None for a lone participant. Above `run.MAX_CARTEL_SHARE` the strategy is measured but
    #: left out of the `every_deviation_below_honest` target, which the issue states for cartels up to 45%.
    stake_share: float | None = None

    def __init__(self, deviating: bool):
        self.deviating = deviating

    # ------------------------------------------------------------------ who plays

    def roster(self, economy: Economy) -> Roster:
        """Who plays in this world; every trainer listed commits each round (the base ones bond the round's
        minimum, the economy's `trainer_bond`)."""
        bond = economy.rounds.trainer_bond
        return Roster(
            curators=tuple((f"cur{i}", economy.curator_bond(i)) for i in range(economy.curators)),
            evaluators=tuple((f"eva{i}", economy.evaluator_bond(i)) for i in range(economy.evaluators)),
            trainers=tuple((f"tr{i}", bond) for i in range(economy.trainers)),
        )

    def party_stake(self, roster: Roster, economy: Economy) -> int:
        """Wei the party puts at risk in this world (its per-stake denominator): its pool bonds, the bond of each
        trainer slot it commits, the informant's bond."""
        bonds = dict(roster.curators) | dict(roster.evaluators) | dict(roster.trainers)
        stake = sum(bonds.get(name, 0) for name in self.party)
        if roster.informant in self.party:
            stake += economy.informant_bond
        return stake

    # ------------------------------------------------------------------ data consensus

    def submission(self, ctx: Context, roster: Roster) -> tuple[int, str]:
        """(informant bond in wei, dataset kind "good" or "junk") of this epoch's submission."""
        ctx.pay(roster.informant, ctx.economy.data_cost)
        return ctx.economy.informant_bond, "good"

    def keep_panel(self, ctx: Context, members: list[str], weights: list[int], rerolls: int) -> bool:
        """Whether the informant lets the panel it can already compute (members in seat order, their draws) be
        drawn (False: it lets the submission expire undrawn, losing the expiry slash, and submits again)."""
        return True

    def curator_vote(self, ctx: Context, curator: str, truth: tuple[int, ...]) -> tuple[int, ...] | None:
        """The five scores a seated curator reveals (None: it stays silent)."""
        ctx.pay(curator, ctx.economy.curation_cost)
        return curator_scores(ctx.seed, ctx.epoch, curator, truth)

    def after_submission(self, ctx: Context, accepted: bool) -> None:
        """Side payments once the submission is decided (a bribe)."""

    # ------------------------------------------------------------------ training round

    def trainer_moves(self, ctx: Context, roster: Roster) -> list[tuple[str, str | None]]:
        """(trainer, delta kind or None for commit-and-stay-silent), in commit order; the training costs."""
        moves = []
        for name, _ in roster.trainers:
            ctx.pay(name, ctx.economy.training_cost)
            moves.append((name, "honest"))
        return moves

    def operator(self, evaluator: str) -> str:
        """Who runs `evaluator`'s machine: itself, or the first address of a party that splits one evaluator's
        stake (`one_operator`). Fingerprinting is a deterministic measurement, so an operator seated on several
        addresses of one panel measures each delta once and reveals that measurement from every seat."""
        return self.one_operator[0] if evaluator in self.one_operator else evaluator

    def evaluator_report(self, ctx: Context, evaluator: str, kinds: list[str]) -> list[Fingerprint] | None:
        """The fingerprints a seated evaluator reveals, one per revealed delta (None: it stays silent): its
        operator's measurement of each delta it fingerprints (paid once per round by the operator, whichever of
        its seats asks first), `UNUSABLE_FINGERPRINT` for one it cannot fetch."""
        operator = self.operator(evaluator)
        if (ctx.epoch, operator) not in ctx.measured:
            ctx.measured.add((ctx.epoch, operator))
            fetched = [k for k in kinds if k != "unfetchable"]
            ctx.pay(evaluator, ctx.economy.fingerprint_cost * len(fetched))
        return [
            true_fingerprint(ctx.seed, ctx.epoch, k)
            if k == "unfetchable"
            else measured_fingerprint(ctx.seed, ctx.epoch, operator, true_fingerprint(ctx.seed, ctx.epoch, k))
            for k in kinds
        ]


# ---------------------------------------------------------------------- trainers


class DeviantTrainer(Strategy):
    """tr0 commits a delta of `kind` when deviating, and pays for a training run unless `saves_run`."""

    kind, saves_run = "honest", False

    def trainer_moves(self, ctx, roster):
        moves = super().trainer_moves(ctx, roster)
        if not self.deviating:
            return moves
        if self.saves_run:
            ctx.pay("tr0", -ctx.economy.training_cost)
        return [(name, self.kind if name == "tr0" else kind) for name, kind in moves]


class LazyTrainer(DeviantTrainer):
    name = "lazy_trainer"
    summary = "commits an untrained delta and saves the training run"
    kind, saves_run = "lazy", True


class PoisoningTrainer(DeviantTrainer):
    name = "poisoning_trainer"
    summary = "trains on poisoned data (5% triggers) alone among honest trainers"
    kind, saves_run = "poison_below", False


class CidCopier(DeviantTrainer):
    """A copier without a CID to copy: honest deltas stay sealed until the commit deadline
    (`workers.storage.sealed`), so before it commits it knows only what is public (the round's inputs and
    earlier versions). Without training it can commit an untrained delta (`lazy_trainer`), stay silent, or guess
    a CID it cannot publish; each loses the bond. It plays the guess (before sealing it committed the honest
    CID it read in the store, byte-identical to the honest delta: 1.11x honest profit per stake)."""

    name = "cid_copier"
    summary = "commits a guessed CID without training (the honest CID stays sealed until the commit deadline)"
    kind, saves_run = "unfetchable", True


class SybilTrainer(Strategy):
    """One training run and 3 base bonds of capital: committed as one slot bonding 3 x the base bond (honest
    world) or as 3 slots of the base bond from 3 addresses (deviating), beside the other base trainers. The same
    capital and the same run in both worlds, so per stake and per run the comparison is of addresses alone:
    a slot weighs and earns its bond, and the extra addresses are worth nothing."""

    name = "sybil_trainer"
    summary = "one training run committed from 3 addresses of the base bond (honest world: 1 address, 3x the bond)"
    party = ("tr0", "syb1", "syb2")
    per_run = True

    def roster(self, economy):
        base = super().roster(economy)
        bond = economy.rounds.trainer_bond
        others = base.trainers[1:]
        if self.deviating:
            trainers = (("tr0", bond), ("syb1", bond), ("syb2", bond), *others)
        else:
            trainers = (("tr0", 3 * bond), *others)
        return Roster(base.curators, base.evaluators, trainers)

    def trainer_moves(self, ctx, roster):
        moves = super().trainer_moves(ctx, roster)
        if self.deviating:
            ctx.pay("syb1", -ctx.economy.training_cost)
            ctx.pay("syb2", -ctx.economy.training_cost)
        return moves


class PoisonCartel(Strategy):
    """`size` cartel addresses bonding the base bond each commit one poisoned run among `honest` honest trainers
    bonding `honest_bonds` base bonds each (honest world: each cartel address trains honestly). `stake_share` is
    the cartel's share of the round's committed trainer bond (tests/workers/protocol/test_economics.py checks it
    against the roster)."""

    name = "slot_majority_cartel"
    summary = (
        "3 of 5 slots, equal bonds (60% of the round's trainer bond), commit one poisoned run (below the honest "
        "fingerprint)"
    )
    size, honest, kind = 3, 2, "poison_below"
    honest_bonds = 1
    stake_share = 0.6
    per_run = True

    @property
    def party(self):  # type: ignore[override]
        return ("tr0",) + tuple(f"syb{i}" for i in range(1, self.size))

    def roster(self, economy):
        base = super().roster(economy)
        bond = economy.rounds.trainer_bond
        cartel = tuple((name, bond) for name in self.party)
        honest = tuple((f"tr{i}", self.honest_bonds * bond) for i in range(1, self.honest + 1))
        return Roster(base.curators, base.evaluators, cartel + honest)

    def trainer_moves(self, ctx, roster):
        moves = super().trainer_moves(ctx, roster)
        if not self.deviating:
            return moves
        for name in self.party[1:]:
            ctx.pay(name, -ctx.economy.training_cost)
        return [(name, self.kind if name in self.party else kind) for name, kind in moves]


class CapitalMinorityCartel(PoisonCartel):
    """The slot majority without the capital: 5 addresses of the minimum bond (5 of 7 slots) against 2 honest
    trainers bonding 4x it each, 5/13 (38%) of the round's trainer bond. Counting slots, its poisoned run set the
    reference and was accepted; weighing bonds, the honest pair holds the majority and the cartel's slots are
    outliers."""

    name = "capital_minority_cartel"
    summary = (
        "5 of 7 slots at the minimum bond (38% of the round's trainer bond) commit one poisoned run against 2 "
        "honest trainers bonding 4x the minimum"
    )
    size, honest, kind = 5, 2, "poison_below"
    honest_bonds = 4
    stake_share = 5 / 13


class HalfCartelBelow(PoisonCartel):
    name = "half_cartel_below"
    summary = "2 of 4 slots, equal bonds (50% of the round's trainer bond), commit one poisoned run lying below"
    size, honest, kind = 2, 2, "poison_below"
    stake_share = 0.5


class HalfCartelMixed(PoisonCartel):
    name = "half_cartel_mixed"
    summary = (
        "2 of 4 slots, equal bonds (50% of the round's trainer bond), commit a poisoned run below on some "
        "coordinates, above on others (sabotage)"
    )
    size, honest, kind = 2, 2, "poison_mixed"
    stake_share = 0.5


# ---------------------------------------------------------------------- informants and curators


class JunkInformant(Strategy):
    name = "junk_informant"
    summary = "submits junk data it did not pay to collect"
    party = ("inf",)

    def submission(self, ctx, roster):
        if not self.deviating:
            return super().submission(ctx, roster)
        return ctx.economy.informant_bond, "junk"


class HerdingCurator(Strategy):
    name = "herding_curator"
    summary = "votes the mean of past consensus without reading the data"
    party = ("cur0",)

    def curator_vote(self, ctx, curator, truth):
        if not (self.deviating and curator == "cur0"):
            return super().curator_vote(ctx, curator, truth)
        if not ctx.history:
            return (70,) * CRITERIA
        return tuple(sum(v[c] for v in ctx.history) // len(ctx.history) for c in range(CRITERIA))


class RejectBiasedCurator(Strategy):
    name = "reject_biased_curator"
    summary = "always scores 10 without reading (a rejection vote)"
    party = ("cur0",)

    def curator_vote(self, ctx, curator, truth):
        if not (self.deviating and curator == "cur0"):
            return super().curator_vote(ctx, curator, truth)
        return (10,) * CRITERIA


class BribedCurators(Strategy):
    """The informant submits junk in both worlds and promises `bribe` per bribed curator if it is accepted; the
    party (3 of 7 curators) takes the bribe and scores the junk 90 (honest world: reads and votes honestly)."""

    name = "bribe"
    summary = "3 of 7 curators take 50 DSH each, paid only if the junk they score 90 is accepted"
    party = ("cur0", "cur1", "cur2")
    stake_share = 3_750 / 12_250  # of the curator pool: 1,000 + 1,250 + 1,500 of 7 bonds from 1,000 by 250
    bribe = 50 * DSH

    def submission(self, ctx, roster):
        return ctx.economy.informant_bond, "junk"

    def curator_vote(self, ctx, curator, truth):
        if not (self.deviating and curator in self.party):
            return super().curator_vote(ctx, curator, truth)
        return (90,) * CRITERIA

    def after_submission(self, ctx, accepted):
        if self.deviating and accepted:
            for curator in self.party:
                ctx.pay(curator, -self.bribe)


# ---------------------------------------------------------------------- evaluators


class SilentGriefer(Strategy):
    name = "silent_griefer"
    summary = "an evaluator that never reveals (and saves the fingerprinting)"
    party = ("eva0",)

    def evaluator_report(self, ctx, evaluator, kinds):
        if self.deviating and evaluator == "eva0":
            return None
        return super().evaluator_report(ctx, evaluator, kinds)


class EvaluatorCartel(Strategy):
    """A cartel holding `share` of the evaluator pool, as one address (`split` False) or as addresses of the
    base evaluators' mean bond, reports every fingerprint shifted by 3,000 on each coordinate (beyond the
    evaluator tolerance): where it holds half the panel's weight it sets the consensus and the honest seats are
    incoherent; elsewhere it is."""

    share, split = 0.30, False
    shift = 3_000

    @property
    def name(self):  # type: ignore[override]
        return f"evaluator_cartel_{'split' if self.split else 'one'}_{round(self.share * 100)}"

    @property
    def summary(self):  # type: ignore[override]
        how = "split into honest-sized addresses" if self.split else "as one address"
        return f"{round(self.share * 100)}% of the evaluator pool {how} reports shifted fingerprints"

    def __init__(self, deviating: bool, share: float = 0.30, split: bool = False):
        super().__init__(deviating)
        self.share, self.split = share, split
        self.stake_share = share  # of the evaluator pool (its bonds are rounded down to whole DSH)
        self.party = ()

    def roster(self, economy):
        base = super().roster(economy)
        pool = sum(bond for _, bond in base.evaluators)
        total = int(pool * self.share / (1 - self.share)) // DSH * DSH
        if self.split:
            unit = pool // len(base.evaluators)
            count = max(1, round(total / unit))
            cartel = tuple((f"cart{i}", total // count // DSH * DSH) for i in range(count))
        else:
            cartel = (("cart0", total),)
        self.party = self.one_operator = tuple(name for name, _ in cartel)
        return Roster(base.curators, base.evaluators + cartel, base.trainers)

    def evaluator_report(self, ctx, evaluator, kinds):
        report = super().evaluator_report(ctx, evaluator, kinds)
        if not (self.deviating and evaluator in self.party) or report is None:
            return report
        return [tuple(v - self.shift for v in fp) for fp in report]


class StakeSplitter(Strategy):
    """6,000 DSH of evaluator bond, honest play: as one address (honest world) or three of 2,000 (deviating);
    `merge` swaps the two worlds."""

    merge = False

    @property
    def name(self):  # type: ignore[override]
        return "stake_merger" if self.merge else "stake_splitter"

    @property
    def summary(self):  # type: ignore[override]
        return "3 x 2,000 DSH evaluator bonds merged into one" if self.merge else "6,000 DSH evaluator bond split in 3"

    def __init__(self, deviating: bool, merge: bool = False):
        super().__init__(deviating)
        self.merge = merge
        self.party = ()

    def roster(self, economy):
        base = super().roster(economy)
        split = self.deviating != self.merge
        mine = tuple((f"spl{i}", 2_000 * DSH) for i in range(3)) if split else (("spl0", 6_000 * DSH),)
        self.party = self.one_operator = tuple(name for name, _ in mine)
        return Roster(base.curators, base.evaluators + mine, base.trainers)


def all_strategies() -> list[tuple[str, type[Strategy], dict]]:
    """(name, class, keyword arguments) of every strategy the benchmark measures."""
    entries: list[tuple[str, type[Strategy], dict]] = [
        ("honest", Strategy, {}),
        ("lazy_trainer", LazyTrainer, {}),
        ("poisoning_trainer", PoisoningTrainer, {}),
        ("sybil_trainer", SybilTrainer, {}),
        ("slot_majority_cartel", PoisonCartel, {}),
        ("capital_minority_cartel", CapitalMinorityCartel, {}),
        ("half_cartel_below", HalfCartelBelow, {}),
        ("half_cartel_mixed", HalfCartelMixed, {}),
        ("cid_copier", CidCopier, {}),
        ("junk_informant", JunkInformant, {}),
        ("herding_curator", HerdingCurator, {}),
        ("reject_biased_curator", RejectBiasedCurator, {}),
        ("bribe", BribedCurators, {}),
        ("silent_griefer", SilentGriefer, {}),
        ("stake_splitter", StakeSplitter, {}),
        ("stake_merger", StakeSplitter, {"merge": True}),
    ]
    for share in (0.10, 0.30, 0.45):
        for split in (False, True):
            name = f"evaluator_cartel_{'split' if split else 'one'}_{round(share * 100)}"
            entries.append((name, EvaluatorCartel, {"share": share, "split": split}))
    return entries
