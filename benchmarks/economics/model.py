"""The fast model: one world's epochs decided by the contracts' rules as workers.protocol states them (the
panel draw, the data tally and threshold, the seat settlements, the round's judgement and payouts), with no
chain. It tracks what the chain would: pool bonds (penalties shrink them, which changes later draws and
penalties), the data threshold and its EMA, and each participant's on-chain wealth (DSH balance plus stake,
wei). `tests/workers/protocol/test_economics.py` checks it against the on-chain runner to the wei.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from eth_utils import keccak

from workers.protocol import consensus, rounds
from workers.protocol.constants import DRAWS_PER_SEAT, MAX_CURATORS, MAX_EVALUATORS
from workers.protocol.sortition import draw_panel, panel_seed

from .strategies import Context, Roster, Strategy
from .world import Economy, dataset_scores, true_fingerprint

#: The modules' addresses as the model's seeds use them (the on-chain runner passes the real ones).
MODEL_MODULES = {"data": "0x" + "da" * 20, "rounds": "0x" + "7a" * 20}
#: Emission's budget never binds in these runs (10,000 DSH a round against 1,000,000 a week).
AVAILABLE = 2**255

#: The block hash seeding a panel: (kind "data" or "rounds", epoch, panels the informant skipped so far) -> 32 bytes.
SeedHashes = Callable[[str, int, int], bytes]


def model_seed_hashes(seed: int) -> SeedHashes:
    """Seed block hashes the model makes up for a run: the same in both worlds of a pair."""
    return lambda kind, epoch, rerolls: keccak(repr((seed, kind, epoch, rerolls)).encode())


@dataclass
class EpochRecord:
    """What one epoch decided (for the reports and the cross-layer test)."""

    data_status: str
    data_panel: list[str]
    rerolls: int
    round_status: str
    evaluator_panel: list[str]
    accepted_kinds: list[str]
    wealth: dict[str, int] = field(default_factory=dict)  # non-zero on-chain wealth changes since the start, wei
    costs: dict[str, int] = field(default_factory=dict)  # off-chain costs paid since the start, wei


@dataclass
class World:
    """One world's state across epochs."""

    strategy: Strategy
    economy: Economy
    roster: Roster
    ctx: Context
    curator_bonds: dict[str, int]
    evaluator_bonds: dict[str, int]
    threshold: int
    ema: int
    submissions: int = 0  # made so far (an informant that skips a panel submits again)
    wealth: dict[str, int] = field(default_factory=dict)  # on-chain wealth change so far, wei
    epochs: list[EpochRecord] = field(default_factory=list)
    #: submissions and rounds before the first epoch (the on-chain runner's spare datasets): the ids seed panels
    ids_before: tuple[int, int] = (0, 0)

    @classmethod
    def start(
        cls,
        strategy: Strategy,
        economy: Economy,
        seed: int,
        threshold: int | None = None,
        ema: int | None = None,
        ids_before: tuple[int, int] = (0, 0),
    ) -> World:
        """A world before its first epoch; `threshold` and `ema`: the data threshold state (default: a fresh
        deployment's); `ids_before`: (submissions, rounds) the chain held before it."""
        roster = strategy.roster(economy)
        return cls(
            strategy,
            economy,
            roster,
            Context(seed, economy),
            dict(roster.curators),
            dict(roster.evaluators),
            economy.data.initial_threshold if threshold is None else threshold,
            economy.data.target_acceptance_bps if ema is None else ema,
            submissions=ids_before[0],
            ids_before=ids_before,
        )

    def credit(self, name: str, amount: int) -> None:
        self.wealth[name] = self.wealth.get(name, 0) + amount


def run_epoch(
    world: World, seed_hashes: SeedHashes, modules: dict[str, str] = MODEL_MODULES, *, max_rerolls: int = 3
) -> EpochRecord:
    """Decides epoch `len(world.epochs)` (round id epoch + 1 after `world.ids_before`) and records it. The
    informant may skip up to `max_rerolls` panels it computed: each skipped submission expires (its expiry slash
    paid) and it submits again (submission ids count on from `world.submissions`)."""
    epoch = len(world.epochs)
    world.ctx.epoch = epoch
    data_status, data_panel, rerolls = _data_phase(world, seed_hashes, modules, epoch, max_rerolls)
    round_status, evaluator_panel, accepted = _round_phase(world, seed_hashes, modules, epoch)
    record = EpochRecord(
        data_status,
        data_panel,
        rerolls,
        round_status,
        evaluator_panel,
        accepted,
        {name: value for name, value in world.wealth.items() if value},
        dict(world.ctx.costs),
    )
    world.epochs.append(record)
    return record


def _data_phase(world: World, seed_hashes: SeedHashes, modules: dict[str, str], epoch: int, max_rerolls: int):
    economy, ctx, roster, strategy = world.economy, world.ctx, world.roster, world.strategy
    p = economy.data
    bond, kind = strategy.submission(ctx, roster)
    truth = dataset_scores(ctx.seed, epoch, kind)
    members = [name for name, _ in roster.curators]
    rerolls = 0
    while True:
        world.submissions += 1
        seed = panel_seed(seed_hashes("data", epoch, rerolls), world.submissions, modules["data"])
        draws = draw_panel(
            seed, members, world.curator_bonds, roster.informant, MAX_CURATORS, DRAWS_PER_SEAT * MAX_CURATORS
        )
        panel, weights = list(draws), list(draws.values())
        if rerolls >= max_rerolls or strategy.keep_panel(ctx, panel, weights, rerolls):
            break
        # Nobody draws within blockhash's horizon: the submission expires, and the informant submits again.
        world.credit(roster.informant, -consensus.expiry_slash(bond, p.expiry_slash_bps))
        rerolls += 1
    votes = [strategy.curator_vote(ctx, curator, truth) for curator in panel]
    revealed = [i for i, vote in enumerate(votes) if vote is not None]
    tally = consensus.tally(
        [votes[i] for i in revealed],  # type: ignore[misc]
        [weights[i] for i in revealed],
        sum(weights),
        quorum_bps=p.quorum_bps,
        tolerance_l1=p.tolerance_l1,
        criteria_weights=p.criteria_weights,
        threshold=world.threshold,
    )
    if tally.quorum:
        world.threshold, world.ema = consensus.next_threshold(
            world.threshold,
            world.ema,
            tally.accepted,
            ema_alpha_bps=p.ema_alpha_bps,
            target_acceptance_bps=p.target_acceptance_bps,
            threshold_gain_bps=p.threshold_gain_bps,
            threshold_floor=p.threshold_floor,
            threshold_ceiling=p.threshold_ceiling,
        )
        assert tally.consensus is not None
        ctx.history.append(tally.consensus)
    paid = consensus.payouts(
        tally,
        bond,
        max_reward=p.max_reward,
        available=AVAILABLE,
        curator_share_bps=p.curator_share_bps,
        reject_slash_bps=p.reject_slash_bps,
    )
    world.credit(roster.informant, paid.informant_reward - paid.informant_slashed)
    coherent = dict(zip(revealed, tally.coherent, strict=True))
    for seat, curator in enumerate(panel):
        reward, penalty = consensus.seat_settlement(
            revealed=seat in coherent,
            quorum=tally.quorum,
            coherent=coherent.get(seat, False),
            weight=weights[seat],
            bond=world.curator_bonds[curator],
            curator_payout=paid.curator_payout,
            coherent_weight=tally.coherent_weight,
            incoherent_penalty_bps=p.incoherent_penalty_bps,
            no_reveal_penalty_bps=p.no_reveal_penalty_bps,
        )
        world.curator_bonds[curator] -= penalty
        world.credit(curator, reward - penalty)
    status = "NoQuorum" if not tally.quorum else "Accepted" if tally.accepted else "Rejected"
    strategy.after_submission(ctx, tally.accepted)
    return status, panel, rerolls


def _round_phase(world: World, seed_hashes: SeedHashes, modules: dict[str, str], epoch: int):
    """A round opens on every epoch (over the epoch's dataset if accepted; the runner keeps one accepted dataset
    in reserve so that a round can always open, which changes no payout)."""
    economy, ctx, roster, strategy = world.economy, world.ctx, world.roster, world.strategy
    p = economy.rounds
    round_id = world.ids_before[1] + epoch + 1
    moves = strategy.trainer_moves(ctx, roster)
    bonds = [roster.trainer_bond(name) for name, _ in moves]  # per committed slot, commit order
    revealed_bonds = [bond for bond, (_, kind) in zip(bonds, moves, strict=True) if kind is not None]
    kinds = [kind for _, kind in moves if kind is not None]
    panel: list[str] = []
    if len(kinds) < p.min_accepted:
        for bond, (name, kind) in zip(bonds, moves, strict=True):
            world.credit(
                name,
                -rounds.trainer_settlement(
                    revealed=kind is not None,
                    finalized=False,
                    accepted=False,
                    bond=bond,
                    outlier_slash_bps=p.outlier_slash_bps,
                    trainer_reward_pool=0,
                    accepted_bond=0,
                )[1],
            )
        return "Failed", panel, []
    seed = panel_seed(seed_hashes("rounds", epoch, 0), round_id, modules["rounds"])
    members = [name for name, _ in roster.evaluators]
    draws = draw_panel(seed, members, world.evaluator_bonds, None, MAX_EVALUATORS, DRAWS_PER_SEAT * MAX_EVALUATORS)
    panel, weights = list(draws), list(draws.values())
    reports = [strategy.evaluator_report(ctx, evaluator, kinds) for evaluator in panel]
    revealed = [i for i, report in enumerate(reports) if report is not None]
    judgement = rounds.judge(
        [reports[i] for i in revealed],  # type: ignore[misc]
        [weights[i] for i in revealed],
        bonds=revealed_bonds,
        tolerance=p.tolerance,
        evaluator_tolerance=p.evaluator_tolerance,
        min_accepted=p.min_accepted,
    )
    finalized = judgement.status == "Finalized"
    accepted_deltas = [d for d in range(len(kinds)) if judgement.accepted_mask >> d & 1]
    # Per committed slot: accepted when it revealed a delta the judgement accepted (silent slots never are).
    accepted_slots, delta = [], 0
    for _, kind in moves:
        accepted_slots.append(kind is not None and delta in accepted_deltas)
        delta += kind is not None
    pool = evaluator_payout = 0
    if finalized:
        paid = rounds.round_payouts(
            bonds=bonds,
            accepted=accepted_slots,
            outlier_slash_bps=p.outlier_slash_bps,
            round_reward=p.round_reward,
            available=AVAILABLE,
            evaluator_share_bps=p.evaluator_share_bps,
            coherent_weight=judgement.coherent_weight,
        )
        pool, evaluator_payout = paid.trainer_reward_pool, paid.evaluator_payout
    for bond, accepted, (name, kind) in zip(bonds, accepted_slots, moves, strict=True):
        reward, lost = rounds.trainer_settlement(
            revealed=kind is not None,
            finalized=finalized,
            accepted=accepted,
            bond=bond,
            outlier_slash_bps=p.outlier_slash_bps,
            trainer_reward_pool=pool,
            accepted_bond=judgement.accepted_bond,
        )
        world.credit(name, reward - lost)
    # coherent_mask is over the revealed seats, in the order given to judge
    coherent = {seat: bool(judgement.coherent_mask >> i & 1) for i, seat in enumerate(revealed)}
    for seat, evaluator in enumerate(panel):
        reward, lost = rounds.evaluator_settlement(
            revealed=seat in coherent,
            finalized=finalized,
            coherent=coherent.get(seat, False),
            weight=weights[seat],
            bond=world.evaluator_bonds[evaluator],
            evaluator_payout=evaluator_payout,
            coherent_weight=judgement.coherent_weight,
            incoherent_penalty_bps=p.incoherent_penalty_bps,
            no_reveal_penalty_bps=p.no_reveal_penalty_bps,
        )
        world.evaluator_bonds[evaluator] -= lost
        world.credit(evaluator, reward - lost)
    return judgement.status, panel, [kinds[d] for d in accepted_deltas]


def run_world(strategy: Strategy, economy: Economy, seed: int, epochs: int) -> World:
    """`epochs` epochs of one world under the model's seeds."""
    world = World.start(strategy, economy, seed)
    hashes = model_seed_hashes(seed)
    for _ in range(epochs):
        run_epoch(world, hashes)
    return world


def true_fingerprints(seed: int, epoch: int, kinds: list[str]) -> list[tuple[int, ...]]:
    """The true fingerprints of an epoch's deltas (for reports)."""
    return [true_fingerprint(seed, epoch, kind) for kind in kinds]
