"""TrainingRounds against its Python reference, workers.protocol.rounds, through real rounds on a chain: the cross-
implementation test of the judging rules and TrainingRounds' property test. Hypothesis draws the round's parameters,
2..16 trainers (some silent: committed, never revealed; some outliers; each locking its own bond, from the round's
minimum up to its whole stake), an evaluator pool with random bonds (1 wei upward), and per evaluator a behaviour
(reveal, commit only, no commit) and a kind (honest: the delta's fingerprint within a few units; liar: anywhere in
int32, the extremes included; lazy: one constant fingerprint). Fingerprints come from a seeded generator (thousands
of int32 per round would overflow hypothesis's buffer): clusters around a centre that can sit at either int32
extreme, outliers far away or at the extremes. Each round runs through the contract (open, commit and reveal deltas,
draw the panel, commit and reveal fingerprints, finalize, settle every trainer and evaluator seat) and every result
must equal the reference's: what the draw does (`draw_outcome`: some rounds are drawn only in the last block that
reads the seed block's hash, or one block later, when the round expires undrawn), the panel
(workers.protocol.sortition), the status, each delta's distance and verdict (`DeltaJudged`), the accepted mask, the
best delta (the CID of the registered version), the coherent evaluators and their weight, the payouts, each
trainer's payout or slash and each seat's reward or penalty, and where every token went. Results are read from
views, balances and the events that keep their names (`RoundFinalized`, `DeltaJudged`).

The tolerances are sometimes set, just before `finalize` (they apply to it), to a distance the reference
computed, plus -1, 0 or +1: a random tolerance would rarely land on the boundary. In the same governance call
the trainer bond, the outlier slash and the evaluators' penalty rates often change too; the round must settle
on the ones it opened with.

Brownie's hypothesis integration is broken in this build: hypothesis runs inside the test and every example
starts from the same chain snapshot. Everything an example does is drawn before it runs, so that what the
chain decides (the panel) never steers the drawing.
"""

import os
import random

import brownie
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contracts.conftest import DSH, EVALUATOR, ROLES, TRAINER, use_unique_gas_price
from tests.contracts.training.conftest import (
    ROLE_MNEMONIC,
    ROUND_PARAMS,
    SPEC_HASH,
    TRAINER_BOND,
    delta_cid,
    mine_past,
    round_params,
)
from workers.protocol import constants
from workers.protocol.constants import INT32_MAX, INT32_MIN, MAX_EVALUATORS, K
from workers.protocol.rounds import (
    aggregate,
    draw_outcome,
    evaluator_settlement,
    fingerprint_distance,
    judge,
    reference_of,
    round_payouts,
    trainer_reward,
    trainer_settlement,
)
from workers.protocol.sortition import draw_panel, panel_seed

#: Hypothesis examples (Ganache runs fewer through DEEPSHARD_STATEFUL_EXAMPLES).
EXAMPLES = int(os.environ.get("DEEPSHARD_STATEFUL_EXAMPLES", "30"))
STATUS = {name: index for index, name in enumerate(constants.ROUND_STATUSES)}
POOL = 12  # evaluators that may join: more than a panel holds
EVALUATOR_STAKE = 50_000 * DSH
UINT32_MAX = 2**32 - 1

bps = st.one_of(st.sampled_from([0, 1, 5_000, 10_000]), st.integers(0, 10_000))
# A tolerance: fixed, or (index, offset) of a distance the reference computes, resolved before finalize.
# Mostly resolved ones: they land on the boundary and split the deltas (or evaluators) in all proportions.
resolved = st.tuples(st.integers(0, 15), st.sampled_from([-1, 0, 1]))
tolerances = st.one_of(
    resolved, resolved, resolved, st.sampled_from([400, 2_000, UINT32_MAX]), st.integers(0, UINT32_MAX)
)


@st.composite
def rules(draw):
    return dict(
        minAccepted=draw(st.one_of(st.integers(1, 2), st.integers(1, 3), st.integers(1, constants.MAX_TRAINERS))),
        outlierSlashBps=draw(bps),
        evaluatorShareBps=draw(bps),
        incoherentPenaltyBps=draw(bps),
        noRevealPenaltyBps=draw(bps),
        trainerBond=draw(
            st.one_of(st.sampled_from([1, TRAINER_BOND, 2 * TRAINER_BOND]), st.integers(1, 2 * TRAINER_BOND))
        ),
        minPoolBond=1,
        # Up to beyond the epoch's budget, so that the emission is also capped by Emission.
        roundReward=draw(st.one_of(st.sampled_from([0, 5_000 * DSH, 2**96 - 1]), st.integers(0, 200_000 * DSH))),
    )


@st.composite
def later_terms(draw):
    """What governance changes while a round is under way: none, or new loss terms (which must not apply)."""
    if draw(st.booleans()):
        return {}
    return dict(
        trainerBond=draw(st.one_of(st.sampled_from([1, 2 * TRAINER_BOND]), st.integers(1, 2 * TRAINER_BOND))),
        outlierSlashBps=draw(bps),
        incoherentPenaltyBps=draw(bps),
        noRevealPenaltyBps=draw(bps),
    )


@st.composite
def rounds_drawn(draw):
    # Full rounds and full pools often: the largest panels and the longest loops are the interesting ones.
    trainer_count = draw(st.one_of(st.just(constants.MAX_TRAINERS), st.integers(2, constants.MAX_TRAINERS)))
    trainers = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["reveal", "reveal", "reveal", "silent"]),
                st.sampled_from(["honest", "honest", "outlier"]),
                # The bond: the minimum, the whole stake, or in between (per mille of the room above the minimum).
                st.one_of(st.sampled_from([0, 0, 1_000]), st.integers(0, 1_000)),
            ),
            min_size=trainer_count,
            max_size=trainer_count,
        )
    )
    bond = st.one_of(st.sampled_from([1, EVALUATOR_STAKE]), st.integers(1, EVALUATOR_STAKE), st.integers(1, 10**6))
    pool_size = draw(st.one_of(st.just(POOL), st.integers(1, POOL)))
    evaluators = draw(
        st.lists(
            st.tuples(
                bond,
                st.sampled_from(["reveal", "reveal", "reveal", "commit only", "no commit"]),
                st.sampled_from(["honest", "honest", "honest", "liar", "lazy"]),
            ),
            min_size=pool_size,
            max_size=pool_size,
        )
    )
    return dict(
        trainers=trainers,
        evaluators=evaluators,
        centre=draw(st.sampled_from(["middle", "top", "bottom"])),
        seed=draw(st.integers(0, 2**32)),
        tolerance=draw(tolerances),
        evaluator_tolerance=draw(tolerances),
        later=draw(later_terms()),
        # Blocks after the seed block at which the panel is drawn: at once, in the last block that can draw,
        # or one block too late (the round expires).
        draw_delay=draw(st.sampled_from([1, 1, 1, constants.BLOCKHASH_HORIZON, constants.BLOCKHASH_HORIZON + 1])),
    )


def clamp(value):
    return min(INT32_MAX, max(INT32_MIN, value))


def any_int32(rng):
    return rng.choice([INT32_MIN, INT32_MAX, 0, rng.randint(INT32_MIN, INT32_MAX)])


def fingerprints(rng, centre_kind, trainer_kinds, evaluator_kinds):
    """(true fingerprint per delta, report per evaluator): honest deltas cluster around a centre, outliers lie
    anywhere in int32 or far from the centre; evaluators report as their kind says."""
    centre = [
        {
            "middle": rng.randint(-(10**6), 10**6),
            "top": INT32_MAX - rng.randint(0, 4),
            "bottom": INT32_MIN + rng.randint(0, 4),
        }[centre_kind]
        for _ in range(K)
    ]
    truths = []
    for kind in trainer_kinds:
        if kind == "honest":
            truths.append([clamp(c + rng.randint(-5, 5)) for c in centre])
        elif rng.random() < 0.5:
            truths.append([any_int32(rng) for _ in range(K)])
        else:
            shift = rng.choice([-1, 1]) * rng.randint(10**3, 10**7)
            truths.append([clamp(c + shift + rng.randint(-5, 5)) for c in centre])
    reports = []
    for kind in evaluator_kinds:
        if kind == "honest":
            reports.append([[clamp(v + rng.randint(-3, 3)) for v in truth] for truth in truths])
        elif kind == "liar":
            reports.append([[any_int32(rng) for _ in range(K)] for _ in truths])
        else:
            constant = rng.choice([0, INT32_MIN, INT32_MAX])
            reports.append([[constant] * K for _ in truths])
    return truths, reports


def resolve(tolerance, distances):
    """A drawn tolerance: fixed, or a computed distance plus an offset (within uint32)."""
    if isinstance(tolerance, int):
        return tolerance
    index, offset = tolerance
    return min(UINT32_MAX, max(0, distances[index % len(distances)] + offset)) if distances else 0


def test_protocol_constants_match_the_contract(rounds):
    assert rounds.K() == K == constants.K
    assert rounds.MAX_TRAINERS() == constants.MAX_TRAINERS
    assert rounds.MAX_EVALUATORS() == MAX_EVALUATORS
    assert rounds.MAX_DRAWS() == constants.DRAWS_PER_SEAT * MAX_EVALUATORS
    assert rounds.MAX_BATCH() == constants.MAX_BATCH
    assert rounds.MAX_CID_LENGTH() == constants.MAX_CID_LENGTH


def test_training_rounds_match_the_reference(
    rounds,
    model_registry,
    accepted_datasets,
    trainers,
    informant,
    train,
    evaluate,
    staked,
    registry,
    token,
    emission,
    treasury,
    gov,
    accounts,
    chain,
    web3,
):
    pool = accounts.from_mnemonic(ROLE_MNEMONIC, count=POOL, offset=40)
    for evaluator in pool:
        accounts[0].transfer(evaluator, "1 ether")
        staked(evaluator, EVALUATOR, EVALUATOR_STAKE)
    keeper = accounts[8]  # settles seats for others: rewards still go to the seat's evaluator
    chain.snapshot()

    # No example database: block hashes follow the wall clock, so a stored example replays neither its panel
    # nor its failure, and stale ones from earlier strategies only cost time.
    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(rules(), rounds_drawn())
    def check(params, drawn):
        chain.revert()
        use_unique_gas_price()
        params = {**ROUND_PARAMS, **params}
        rounds.setParams(round_params(**params), {"from": gov})
        rng = random.Random(drawn["seed"])
        crew = trainers[: len(drawn["trainers"])]
        revealing = [t for t, (behaviour, _, _) in zip(crew, drawn["trainers"], strict=True) if behaviour == "reveal"]
        members = pool[: len(drawn["evaluators"])]
        _, reports = fingerprints(
            rng,
            drawn["centre"],
            [kind for (behaviour, kind, _) in drawn["trainers"] if behaviour == "reveal"],
            [kind for (_, _, kind) in drawn["evaluators"]],
        )
        bonds = {}
        for member, (bond, _, _) in zip(members, drawn["evaluators"], strict=True):
            rounds.joinPool(bond, {"from": member})
            bonds[member.address] = bond
        tree_order = [str(rounds.poolMemberAt(i)) for i in range(1, rounds.poolMemberCount() + 1)]

        round_id = rounds.openRound(accepted_datasets[:1], SPEC_HASH, {"from": informant}).return_value
        cids = {t: delta_cid(f"delta-{i}") for i, t in enumerate(crew)}
        stakes = {t: registry.stakeOf(t, TRAINER) for t in crew}
        minimum, slash_bps = params["trainerBond"], params["outlierSlashBps"]
        bonds_of = {
            t: minimum + (stakes[t] - minimum) * permille // 1_000
            for t, (_, _, permille) in zip(crew, drawn["trainers"], strict=True)
        }
        train(round_id, cids, silent=[t for t in crew if t not in revealing], bonds=bonds_of)
        delta_trainers, delta_cids, delta_bonds = rounds.deltasOf(round_id)
        assert list(delta_trainers) == [t.address for t in revealing]
        assert [bytes(c) for c in delta_cids] == [cids[t] for t in revealing]
        assert list(delta_bonds) == [bonds_of[t] for t in revealing]
        assert all(registry.lockedOf(t, TRAINER) == bonds_of[t] for t in crew)
        before = dict(treasury=token.balanceOf(treasury), supply=token.totalSupply())

        seated, revealed, expected = [], [], None
        seed_block = rounds.getRound(round_id)["panelSeedBlock"]
        if chain.height < seed_block + drawn["draw_delay"] - 1:  # the draw lands in block seed + draw_delay
            chain.mine(seed_block + drawn["draw_delay"] - 1 - chain.height)
        outcome = draw_outcome(
            delta_count=len(revealing),
            min_accepted=params["minAccepted"],
            seed_block=seed_block,
            block=chain.height + 1,
        )
        if outcome != "drawn":  # too few deltas to ever succeed, or the seed block's hash is out of reach
            rounds.setParams(round_params(**{**params, **drawn["later"]}), {"from": gov})
            tx = rounds.drawEvaluators(round_id, {"from": keeper})
            assert "PanelDrawn" not in tx.events and tx.events["RoundFinalized"]["status"] == STATUS["Failed"]
            status, paid = "Failed", None
        else:
            seed = panel_seed(web3.eth.get_block(seed_block)["hash"], round_id, rounds.address)
            expected_panel = draw_panel(
                seed, tree_order, bonds, None, MAX_EVALUATORS, constants.DRAWS_PER_SEAT * MAX_EVALUATORS
            )
            behaviour = {m.address: b for m, (_, b, _) in zip(members, drawn["evaluators"], strict=True)}
            report_of = {m.address: r for m, r in zip(members, reports, strict=True)}
            committing = {m: report_of[m.address] for m in members if behaviour[m.address] != "no commit"}
            evaluate(round_id, committing, silent=[m for m in members if behaviour[m.address] == "commit only"])
            panel, weights = rounds.panelOf(round_id)
            assert list(panel) == list(expected_panel) and list(weights) == list(expected_panel.values())
            seated = list(panel)
            revealed = [behaviour[m] == "reveal" for m in seated]
            if not all(revealed):
                mine_past(chain, rounds.getRound(round_id)["evalRevealDeadline"])
            given_reports = [report_of[m] for m, r in zip(seated, revealed, strict=True) if r]
            given_weights = [w for w, r in zip(weights, revealed, strict=True) if r]
            if given_reports:
                first = seated.index(next(m for m, r in zip(seated, revealed, strict=True) if r))
                assert [list(rounds.fingerprintOf(round_id, first, d)) for d in range(len(revealing))] == given_reports[
                    0
                ]  # what the contract stored reads back
                consensus = aggregate(given_reports, given_weights, 0)[0]
                spreads = [
                    max(fingerprint_distance(r[d], consensus[d]) for d in range(len(revealing))) for r in given_reports
                ]
                reference = reference_of(consensus, list(delta_bonds))
                distances = [fingerprint_distance(fp, reference) for fp in consensus]
                params["tolerance"] = resolve(drawn["tolerance"], distances)
                params["evaluatorTolerance"] = resolve(drawn["evaluator_tolerance"], spreads)
            # The tolerances apply to this finalize; the later terms must not (`params` keeps the round's).
            rounds.setParams(round_params(**{**params, **drawn["later"]}), {"from": gov})
            expected = judge(
                given_reports,
                given_weights,
                bonds=list(delta_bonds),
                tolerance=params["tolerance"],
                evaluator_tolerance=params["evaluatorTolerance"],
                min_accepted=params["minAccepted"],
            )
            status = expected.status
            paid = (
                round_payouts(
                    bonds=[bonds_of[t] for t in crew],
                    accepted=[t in revealing and bool(expected.accepted_mask >> revealing.index(t) & 1) for t in crew],
                    outlier_slash_bps=slash_bps,
                    round_reward=params["roundReward"],
                    available=emission.available(),
                    evaluator_share_bps=params["evaluatorShareBps"],
                    coherent_weight=expected.coherent_weight,
                )
                if status == "Finalized"
                else None
            )

            tx = rounds.finalize(round_id, {"from": keeper})
            judged = (
                [(e["delta"], e["distance"], e["accepted"]) for e in tx.events["DeltaJudged"]]
                if "DeltaJudged" in tx.events
                else []
            )
            assert judged == [
                (d, distance, distance <= params["tolerance"]) for d, distance in enumerate(expected.distances)
            ]
            event = tx.events["RoundFinalized"]
            assert event["status"] == STATUS[status]
            assert event["acceptedMask"] == (expected.accepted_mask if paid else 0)
            assert event["trainerRewardPool"] == (paid.trainer_reward_pool if paid else 0)

        stored = rounds.getRound(round_id)
        assert stored["status"] == STATUS[status]
        assert (stored["trainerBond"], stored["outlierSlashBps"]) == (minimum, slash_bps)
        revealed_seats = [seat for seat, r in enumerate(revealed) if r]
        coherent_mask = expected.coherent_mask if expected else 0  # (bit i: the i-th evaluator who revealed)
        coherent_seats = [seat for i, seat in enumerate(revealed_seats) if coherent_mask >> i & 1]
        assert stored["evalCoherentMask"] == sum(1 << seat for seat in coherent_seats)
        assert stored["coherentEvaluatorWeight"] == (expected.coherent_weight if expected else 0)
        assert stored["acceptedDeltaMask"] == (expected.accepted_mask if paid else 0)
        assert stored["trainerRewardPool"] == (paid.trainer_reward_pool if paid else 0)
        accepted_bond = expected.accepted_bond if paid else 0
        assert stored["acceptedBond"] == accepted_bond
        assert stored["evaluatorPayout"] == (paid.evaluator_payout if paid else 0)
        assert token.totalSupply() == before["supply"] + (paid.emitted if paid else 0)
        if paid:
            version = model_registry.getVersion(stored["newVersion"])
            assert bytes(version["deltaCid"]) == cids[revealing[expected.best]]
            assert (version["parent"], version["round"], version["valueCreated"]) == (1, round_id, paid.emitted)
            assert token.balanceOf(rounds) == paid.slashed + paid.emitted
        else:
            assert stored["newVersion"] == 0 and token.balanceOf(rounds) == 0

        # Trainers: accepted ones claim bond and reward; outliers and silent ones were slashed by finalize
        # (to the round's pot, or in a failed round to the treasury); in a failed round revealers claim the bond.
        # A round expired undrawn settled every trainer at the draw, as silent.
        failed_slashes, trainer_rewards = 0, 0
        for trainer in crew:
            delta = revealing.index(trainer) if trainer in revealing else None
            accepted = paid is not None and delta is not None and bool(expected.accepted_mask >> delta & 1)
            reward, slashed = trainer_settlement(
                revealed=delta is not None,
                finalized=paid is not None,
                accepted=accepted,
                bond=bonds_of[trainer],
                outlier_slash_bps=slash_bps,
                trainer_reward_pool=paid.trainer_reward_pool if paid else 0,
                accepted_bond=accepted_bond,
                expired=outcome == "expired",
            )
            if accepted:
                assert reward == trainer_reward(bonds_of[trainer], paid.trainer_reward_pool, accepted_bond)
            claims = outcome != "expired" and (accepted or (paid is None and delta is not None))
            if paid is None:
                failed_slashes += slashed
            assert registry.stakeOf(trainer, TRAINER) == stakes[trainer] - slashed
            assert registry.lockedOf(trainer, TRAINER) == (bonds_of[trainer] if claims else 0)
            if claims:
                balance = token.balanceOf(trainer)
                rounds.claimTrainer(round_id, {"from": trainer})
                assert token.balanceOf(trainer) == balance + reward
                assert registry.lockedOf(trainer, TRAINER) == 0
                trainer_rewards += reward
            else:
                with brownie.reverts():
                    rounds.claimTrainer(round_id, {"from": trainer})
        assert token.balanceOf(treasury) == before["treasury"] + failed_slashes

        # Evaluator seats, settled by a keeper.
        evaluator_rewards, penalties = 0, 0
        coherent = set(coherent_seats)
        for seat, member in enumerate(seated):
            reward, seat_penalty = evaluator_settlement(
                revealed=revealed[seat],
                finalized=paid is not None,
                coherent=seat in coherent,
                weight=weights[seat],
                bond=bonds[member],
                evaluator_payout=paid.evaluator_payout if paid else 0,
                coherent_weight=expected.coherent_weight,
                incoherent_penalty_bps=params["incoherentPenaltyBps"],
                no_reveal_penalty_bps=params["noRevealPenaltyBps"],
            )
            balance, stake = token.balanceOf(member), registry.stakeOf(member, EVALUATOR)
            rounds.claimEvaluator(round_id, seat, {"from": keeper})
            assert token.balanceOf(member) == balance + reward
            assert registry.stakeOf(member, EVALUATOR) == stake - seat_penalty
            bonds[member] -= seat_penalty
            assert rounds.poolMembers(member)["bond"] == bonds[member]
            evaluator_rewards += reward
            penalties += seat_penalty
        assert token.balanceOf(treasury) == before["treasury"] + failed_slashes + penalties

        # TrainingRounds keeps exactly what rounding left; the registry holds the stakes and pending withdrawals.
        pot = paid.slashed + paid.emitted if paid else 0
        assert token.balanceOf(rounds) == pot - trainer_rewards - evaluator_rewards
        assert 0 <= token.balanceOf(rounds) < len(crew) + len(seated)  # under one wei per claimant
        assert rounds.poolWeight() == sum(bonds.values())
        assert registry.totalStaked(TRAINER) == sum(registry.stakeOf(t, TRAINER) for t in trainers)
        assert registry.totalStaked(EVALUATOR) == sum(registry.stakeOf(e, EVALUATOR) for e in pool)
        pending = sum(
            registry.pendingWithdrawal(a, role)[0]
            for a, role in [*((t, TRAINER) for t in trainers), *((e, EVALUATOR) for e in pool)]
        )
        assert token.balanceOf(registry) == sum(registry.totalStaked(role) for role in ROLES) + pending

    check()
