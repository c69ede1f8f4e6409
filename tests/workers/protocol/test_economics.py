"""The economics benchmark's two layers agree to the wei: a few epochs of a world played on the real contracts
(anvil) and replayed by the fast model on the chain's panel seeds give every participant the same on-chain
wealth change. The smoke version of `make bench-economics` (no targets): one epoch of three worlds from one
snapshot (a half-slot poisoning cartel; a silent evaluator with an informant that re-rolls its panel once, paying
the expiry slash; a CID copier that, the honest CID being sealed until the commit deadline, commits a guess nobody
can fetch)."""

from __future__ import annotations

import pytest

from benchmarks.economics.model import run_world
from benchmarks.economics.onchain import Chain, replay
from benchmarks.economics.run import MAX_CARTEL_SHARE
from benchmarks.economics.strategies import (
    CapitalMinorityCartel,
    CidCopier,
    HalfCartelBelow,
    PoisonCartel,
    SilentGriefer,
    StakeSplitter,
    SybilTrainer,
    all_strategies,
)
from benchmarks.economics.world import Economy
from workers.protocol.constants import DATA_STATUSES

SEED = 11


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    chain = Chain.start(Economy(), tmp_path_factory.mktemp("deployments"), spare=1)
    yield chain
    chain.stop()


class _Griefer(SilentGriefer):
    """A silent evaluator, and an informant that skips its first panel: nobody draws it within blockhash's horizon,
    the submission expires (the informant pays its expiry slash) and it submits again."""

    def keep_panel(self, ctx, members, weights, rerolls):
        return not self.deviating or rerolls >= 1


@pytest.mark.parametrize(
    "strategy",
    [HalfCartelBelow(True), _Griefer(True), CidCopier(True), CapitalMinorityCartel(True), SybilTrainer(False)],
    ids=[
        "half_cartel_below",
        "silent_griefer_rerolling",
        "cid_copier_guessing",
        "capital_minority_cartel_unequal_bonds",
        "one_trainer_bonding_3x",
    ],
)
def test_model_and_chain_agree_to_the_wei(chain, strategy):
    run = chain.run(strategy, SEED, 1)
    model = replay(chain, type(strategy)(strategy.deviating), run, SEED)
    for epoch, (onchain, modelled) in enumerate(zip(run.epochs, model.epochs, strict=True)):
        assert (onchain.data_status, onchain.round_status) == (modelled.data_status, modelled.round_status), epoch
        assert onchain.wealth == modelled.wealth, epoch
        assert onchain.costs == modelled.costs, epoch
    assert any(run.epochs[-1].wealth.values())  # something was paid: the comparison is not vacuous
    if isinstance(strategy, _Griefer):  # the skipped panel's submission expired, the next one was judged
        data = chain.data.functions
        last = data.submissionCount().call()
        statuses = [DATA_STATUSES[data.getSubmission(sid).call()[8]] for sid in (last - 1, last)]
        assert statuses[0] == "Expired" and statuses[1] != "Expired"


def test_exactly_half_of_the_slots_no_longer_captures_the_round():
    """2 of 4 slots with one poisoned delta below the honest one: the reference is theirs, but without a strict
    majority nothing is accepted; the round fails and every bond comes back (before the rule, the poisoned
    deltas were accepted and the honest trainers slashed 1,000 DSH each)."""
    world = run_world(HalfCartelBelow(True), Economy(), SEED, 1)
    assert world.epochs[0].round_status == "Failed" and world.epochs[0].accepted_kinds == []
    assert [world.wealth.get(name, 0) for name in ("tr0", "syb1", "tr1", "tr2")] == [0, 0, 0, 0]


def test_one_operator_measures_once_per_round_however_its_stake_is_split():
    """6,000 DSH of evaluator bond as one address or three run by one operator: the operator fingerprints each
    round's deltas once whichever of its addresses are seated, and reveals that one measurement from every seat,
    so its costs and its profit (on-chain wealth less fingerprinting) are the same either way, epoch by epoch."""
    merged, split = StakeSplitter(False), StakeSplitter(True)
    worlds = [run_world(s, Economy(), SEED, 12) for s in (merged, split)]

    def per_epoch(strategy, world, of):
        return [sum(of(r, n) for n in strategy.party) for r in world.epochs]

    costs = [per_epoch(s, w, lambda r, n: r.costs.get(n, 0)) for s, w in zip((merged, split), worlds, strict=True)]
    wealth = [per_epoch(s, w, lambda r, n: r.wealth.get(n, 0)) for s, w in zip((merged, split), worlds, strict=True)]
    seats = [sum(n in split.party for n in r.evaluator_panel) for r in worlds[1].epochs]
    assert costs[0] == costs[1]
    # Each seat's share of a payout is rounded down: three seats may lose a wei or two that one seat keeps.
    for epoch, (one, three) in enumerate(zip(*wealth, strict=True)):
        assert 0 <= one - three <= sum(seats[: epoch + 1]), epoch
    assert max(seats) >= 2  # the split party held several seats of one round: the case the rule is about
    assert costs[1][-1] > 0  # it did fingerprint: the comparison is not vacuous


def test_a_slot_majority_without_the_bond_majority_loses():
    """5 of 7 slots at the minimum bond (5/13 of the round's trainer bond) commit one poisoned run: weighing
    bonds, the honest pair sets the reference; the cartel's 5 slots are outliers, each slashed its own bond's
    share, and the honest pair splits the slashes and the reward (before, counting slots, the poisoned run was
    the next version and the honest pair was slashed)."""
    economy = Economy()
    world = run_world(CapitalMinorityCartel(True), economy, SEED, 1)
    assert world.epochs[0].round_status == "Finalized" and world.epochs[0].accepted_kinds == ["honest", "honest"]
    bond, slash = economy.rounds.trainer_bond, economy.rounds.outlier_slash_bps
    for name in CapitalMinorityCartel(True).party:
        assert world.wealth[name] == -bond * slash // 10_000
    assert world.wealth["tr1"] == world.wealth["tr2"] > 0


def test_sybil_addresses_earn_what_one_address_with_the_same_bond_earns():
    """One run, 3 base bonds of capital: from 3 addresses the party earns what 1 address bonding 3x earns (to
    the rounding of the pro-rata shares, a few wei)."""
    economy, epochs = Economy(), 3
    profits = []
    for deviating in (False, True):
        strategy = SybilTrainer(deviating)
        world = run_world(strategy, economy, SEED, epochs)
        assert strategy.party_stake(world.roster, economy) == 3 * economy.rounds.trainer_bond
        costs = world.epochs[-1].costs
        profits.append(sum(world.wealth.get(n, 0) - costs.get(n, 0) for n in strategy.party))
    assert 0 <= profits[0] - profits[1] <= 3 * epochs and profits[0] > 0


def _share(strategy, economy: Economy) -> float:
    """The party's share of the bonds of the role it holds bonds in (trainers: the round's committed bond)."""
    roster = strategy.roster(economy)
    for members in (roster.trainers, roster.evaluators, roster.curators):
        bonds = dict(members)
        if any(name in bonds for name in strategy.party):
            return sum(bonds.get(name, 0) for name in strategy.party) / sum(bonds.values())
    raise AssertionError(f"{strategy.name} holds no bond")


@pytest.mark.parametrize("name", [n for n, cls, _ in all_strategies() if cls(True).stake_share is not None])
def test_stake_shares_are_what_the_rosters_hold(name):
    """The `stake_share` that decides whether a strategy counts for `every_deviation_below_honest` is the share
    its roster gives it (evaluator bonds are rounded down to whole DSH: within a point)."""
    _, cls, kwargs = next(entry for entry in all_strategies() if entry[0] == name)
    strategy = cls(True, **kwargs)
    assert strategy.stake_share == pytest.approx(_share(strategy, Economy()), abs=0.01)


def test_the_slot_majority_holds_the_bond_majority_and_is_excluded():
    assert PoisonCartel.stake_share == 0.6 > MAX_CARTEL_SHARE >= CapitalMinorityCartel.stake_share
