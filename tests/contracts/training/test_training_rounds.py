import pytest
from eth_utils import keccak

from tests.contracts.conftest import DSH, EVALUATOR, ROLE_MNEMONIC, TRAINER, reverts
from tests.contracts.training.conftest import (
    EVALUATOR_BOND,
    HONEST,
    POISONED,
    ROUND_PARAMS,
    SPEC_HASH,
    TRAINER_BOND,
    delta_cid,
    mine_past,
    noisy,
    round_params,
    salt,
    seated_evaluators,
)
from workers.protocol.constants import BLOCKHASH_HORIZON, MAX_EVALUATORS
from workers.protocol.rounds import (
    draw_outcome,
    judge,
    round_payouts,
    trainer_penalty,
    trainer_reward,
    trainer_settlement,
)

FINALIZED, FAILED = 4, 5


def reports_for(evaluators, fingerprints_per_delta):
    """Every evaluator reports the same (slightly noisy) fingerprints of the deltas."""
    return {
        evaluator: [noisy(fp, seed=i * 31 + d) for d, fp in enumerate(fingerprints_per_delta)]
        for i, evaluator in enumerate(evaluators)
    }


def test_all_honest_round_registers_a_version_and_pays_everyone(
    rounds, model_registry, registry, token, trainers, evaluators, open_round, train, evaluate
):
    round_id = open_round()
    crew = trainers[:4]
    train(round_id, {t: delta_cid(f"honest-{i}") for i, t in enumerate(crew)})
    evaluate(round_id, reports_for(evaluators, [HONEST] * 4))
    tx = rounds.finalize(round_id)
    event = tx.events["RoundFinalized"]
    assert event["status"] == FINALIZED and event["acceptedMask"] == 0b1111
    version = model_registry.getVersion(event["newVersion"])
    assert version["parent"] == 1 and version["round"] == round_id
    assert str(version["deltaCid"]) in ["0x" + delta_cid(f"honest-{i}").hex() for i in range(4)]
    reward = ROUND_PARAMS["roundReward"]
    per_trainer = (reward - reward * ROUND_PARAMS["evaluatorShareBps"] // 10_000) // 4
    for trainer in crew:
        assert registry.lockedOf(trainer, TRAINER) == TRAINER_BOND  # until the trainer claims
        rounds.claimTrainer(round_id, {"from": trainer})
        assert registry.lockedOf(trainer, TRAINER) == 0 and registry.stakeOf(trainer, TRAINER) == 2 * TRAINER_BOND
        assert token.balanceOf(trainer) == per_trainer
    panel = seated_evaluators(rounds, round_id, evaluators)
    draws = rounds.panelOf(round_id)[1]
    assert sum(draws) == MAX_EVALUATORS  # one draw = one vote: 15 votes, a seat per distinct evaluator
    evaluator_payout = reward * ROUND_PARAMS["evaluatorShareBps"] // 10_000
    for seat in range(len(panel)):
        rounds.claimEvaluator(round_id, seat)
    assert [token.balanceOf(e) for e in panel] == [evaluator_payout * d // MAX_EVALUATORS for d in draws]
    assert [int(v) for v in model_registry.lineage(event["newVersion"], 10)] == [event["newVersion"], 1]


def test_one_poisoned_trainer_of_four_is_slashed(
    rounds, registry, token, trainers, evaluators, open_round, train, evaluate, model_registry
):
    round_id = open_round()
    crew = trainers[:4]
    cids = {t: delta_cid(f"d{i}") for i, t in enumerate(crew)}
    train(round_id, cids)
    poisoned_delta = 2
    fingerprints = [POISONED if d == poisoned_delta else HONEST for d in range(4)]
    evaluate(round_id, reports_for(evaluators, fingerprints))
    tx = rounds.finalize(round_id)
    judged = {e["delta"]: e for e in tx.events["DeltaJudged"]}
    assert not judged[poisoned_delta]["accepted"]
    assert all(judged[d]["accepted"] for d in (0, 1, 3))
    cheater = crew[poisoned_delta]
    assert registry.stakeOf(cheater, TRAINER) == 2 * TRAINER_BOND - TRAINER_BOND  # slashed its whole bond
    with reverts("NothingToClaim"):
        rounds.claimTrainer(round_id, {"from": cheater})
    reward = ROUND_PARAMS["roundReward"]
    per_trainer = (TRAINER_BOND + reward - reward * ROUND_PARAMS["evaluatorShareBps"] // 10_000) // 3
    for trainer in (crew[0], crew[1], crew[3]):
        rounds.claimTrainer(round_id, {"from": trainer})
        assert token.balanceOf(trainer) == per_trainer
    new_version = model_registry.getVersion(tx.events["RoundFinalized"]["newVersion"])
    assert new_version["deltaCid"] != "0x" + cids[cheater].hex()


def test_poisoned_majority_wins_the_median(rounds, registry, trainers, evaluators, open_round, train, evaluate):
    """Documented limit: the reference is the bond-weighted median over deltas, so trainers colluding on one
    poisoned delta with most of the round's bond define it, and the honest one is the outlier. The defence is
    economic: a majority of the bond costs that much capital at risk, whatever the number of addresses."""
    round_id = open_round()
    crew = trainers[:4]
    train(round_id, {t: delta_cid(f"m{i}") for i, t in enumerate(crew)})
    evaluate(round_id, reports_for(evaluators, [HONEST, POISONED, POISONED, POISONED]))
    tx = rounds.finalize(round_id)
    assert tx.events["RoundFinalized"]["acceptedMask"] == 0b1110
    assert registry.stakeOf(crew[0], TRAINER) == TRAINER_BOND


def test_evaluator_coalition_under_half_cannot_flip_the_outcome(
    rounds, registry, trainers, evaluators, open_round, train, evaluate, token
):
    round_id = open_round()
    crew = trainers[:4]
    train(round_id, {t: delta_cid(f"c{i}") for i, t in enumerate(crew)})
    truth = [HONEST, HONEST, POISONED, HONEST]
    rounds.drawEvaluators(round_id)
    panel_members = seated_evaluators(rounds, round_id, evaluators)
    coalition, votes = [], 0
    for member, draws in zip(panel_members, rounds.panelOf(round_id)[1], strict=True):
        if 2 * (votes + draws) < MAX_EVALUATORS:  # under half of the panel's votes
            coalition.append(member)
            votes += draws
    reports = reports_for(evaluators, truth)
    for evaluator in coalition:
        reports[evaluator] = [HONEST] * 4  # cover for the poisoned delta
    evaluate(round_id, reports)
    tx = rounds.finalize(round_id)
    assert tx.events["RoundFinalized"]["acceptedMask"] == 0b1011
    panel, _ = rounds.panelOf(round_id)
    for seat, member in enumerate(panel):
        settled = rounds.claimEvaluator(round_id, seat).events["Settled"]
        if member in [e.address for e in coalition]:
            assert settled["reward"] == 0 and settled["penalty"] == EVALUATOR_BOND * 200 // 10_000
        else:
            assert settled["reward"] > 0 and settled["penalty"] == 0


def test_reveal_must_match_the_commitment(rounds, trainers, open_round, chain):
    round_id = open_round()
    trainer = trainers[0]
    rounds.commitDelta(
        round_id,
        rounds.deltaCommitmentFor(delta_cid("a"), salt(trainer, round_id), trainer),
        TRAINER_BOND,
        {"from": trainer},
    )
    with reverts("WindowNotOpen"):
        rounds.revealDelta(round_id, delta_cid("a"), salt(trainer, round_id), {"from": trainer})
    mine_past(chain, rounds.getRound(round_id)["trainCommitDeadline"])
    with reverts("CommitmentMismatch"):
        rounds.revealDelta(round_id, delta_cid("b"), salt(trainer, round_id), {"from": trainer})
    with reverts("CommitmentMismatch"):
        rounds.revealDelta(round_id, delta_cid("a"), b"\x00" * 32, {"from": trainer})
    rounds.revealDelta(round_id, delta_cid("a"), salt(trainer, round_id), {"from": trainer})
    with reverts("AlreadyRevealed"):
        rounds.revealDelta(round_id, delta_cid("a"), salt(trainer, round_id), {"from": trainer})


def test_copied_commitment_binds_the_original_trainer(rounds, trainers, open_round, chain):
    round_id = open_round()
    honest, copier = trainers[0], trainers[1]
    commitment = rounds.deltaCommitmentFor(delta_cid("work"), salt(honest, round_id), honest)
    rounds.commitDelta(round_id, commitment, TRAINER_BOND, {"from": honest})
    rounds.commitDelta(round_id, commitment, TRAINER_BOND, {"from": copier})
    mine_past(chain, rounds.getRound(round_id)["trainCommitDeadline"])
    rounds.revealDelta(round_id, delta_cid("work"), salt(honest, round_id), {"from": honest})
    with reverts("CommitmentMismatch"):
        rounds.revealDelta(round_id, delta_cid("work"), salt(honest, round_id), {"from": copier})


def test_missed_windows(rounds, registry, trainers, evaluators, open_round, train, evaluate, chain, token):
    round_id = open_round()
    crew = trainers[:4]
    train(round_id, {t: delta_cid(f"w{i}") for i, t in enumerate(crew)}, silent=(crew[3],))
    with reverts("WindowClosed"):
        rounds.commitDelta(round_id, b"\x01" * 32, TRAINER_BOND, {"from": trainers[5]})
    rounds.drawEvaluators(round_id)
    late = seated_evaluators(rounds, round_id, evaluators)[0]
    panel = evaluate(round_id, reports_for(evaluators, [HONEST] * 3), silent=(late,))
    mine_past(chain, rounds.getRound(round_id)["evalRevealDeadline"])
    rounds.finalize(round_id)
    assert registry.stakeOf(crew[3], TRAINER) == TRAINER_BOND  # silent trainer lost its bond
    seat = list(panel).index(late.address)
    settled = rounds.claimEvaluator(round_id, seat).events["Settled"]
    assert settled["penalty"] == EVALUATOR_BOND * ROUND_PARAMS["noRevealPenaltyBps"] // 10_000


def test_finalize_twice_and_too_early_revert(rounds, trainers, evaluators, open_round, train, evaluate):
    round_id = open_round()
    train(round_id, {t: delta_cid(f"f{i}") for i, t in enumerate(trainers[:3])})
    with reverts("WrongStatus", 1):
        rounds.finalize(round_id)
    evaluate(round_id, reports_for(evaluators, [HONEST] * 3))
    rounds.finalize(round_id)
    with reverts("WrongStatus", FINALIZED):
        rounds.finalize(round_id)
    rounds.claimTrainer(round_id, {"from": trainers[0]})
    with reverts("AlreadySettled"):
        rounds.claimTrainer(round_id, {"from": trainers[0]})


def test_too_few_deltas_fail_the_round_and_release_bonds(rounds, registry, trainers, open_round, train, informant):
    round_id = open_round()
    train(round_id, {trainers[0]: delta_cid("alone")})
    tx = rounds.drawEvaluators(round_id)
    assert tx.events["RoundFinalized"]["status"] == FAILED
    rounds.claimTrainer(round_id, {"from": trainers[0]})
    assert registry.lockedOf(trainers[0], TRAINER) == 0
    assert registry.stakeOf(trainers[0], TRAINER) == 2 * TRAINER_BOND
    # The next round can open.
    open_round()


@pytest.mark.parametrize("late", [BLOCKHASH_HORIZON, BLOCKHASH_HORIZON + 1])
def test_an_undrawn_panel_expires_the_round_settling_every_trainer_as_silent(
    late, rounds, registry, token, treasury, trainers, open_round, train, chain, gov
):
    """The draw `late` blocks after the seed block: the last block whose hash `blockhash` reads is seed + 256,
    which still draws; one block later there is no fresh seed (a trainer who computed the panel could skip it by
    waiting): the round fails and every trainer, revealed or silent, loses the round's `outlierSlashBps` of its own
    bond to the treasury, what a silent trainer loses, the rest of its bond unlocked at once, nothing to claim."""
    rounds.setParams(round_params(outlierSlashBps=2_500), {"from": gov})
    round_id = open_round()
    crew = trainers[:4]
    bonds = {t: TRAINER_BOND + i * 7 for i, t in enumerate(crew)}  # a bond each: each loses its own share
    train(round_id, {t: delta_cid(f"late{i}") for i, t in enumerate(crew)}, silent=crew[3:], bonds=bonds)
    stored = rounds.getRound(round_id)
    seed_block, slash_bps = stored["panelSeedBlock"], stored["outlierSlashBps"]
    assert slash_bps == 2_500
    chain.mine(seed_block + late - 1 - chain.height)  # the draw lands in block seed + late
    treasury_before = token.balanceOf(treasury)
    stakes = {t: registry.stakeOf(t, TRAINER) for t in crew}
    tx = rounds.drawEvaluators(round_id)
    assert tx.block_number == seed_block + late
    outcome = draw_outcome(
        delta_count=3, min_accepted=ROUND_PARAMS["minAccepted"], seed_block=seed_block, block=tx.block_number
    )
    if outcome == "drawn":
        assert late == BLOCKHASH_HORIZON and "PanelDrawn" in tx.events and "RoundFinalized" not in tx.events
        assert rounds.getRound(round_id)["status"] == 3
        return
    assert outcome == "expired" and late == BLOCKHASH_HORIZON + 1
    assert "PanelDrawn" not in tx.events
    event = tx.events["RoundFinalized"]
    assert (event["round"], event["status"], event["acceptedMask"], event["newVersion"]) == (round_id, FAILED, 0, 0)
    stored = rounds.getRound(round_id)
    assert stored["status"] == FAILED and stored["panelSize"] == 0
    for slot, trainer in enumerate(crew):
        _, lost = trainer_settlement(
            revealed=slot < 3,
            finalized=False,
            accepted=False,
            bond=bonds[trainer],
            outlier_slash_bps=slash_bps,
            trainer_reward_pool=0,
            accepted_bond=0,
            expired=True,
        )
        assert lost == trainer_penalty(bonds[trainer], slash_bps) == bonds[trainer] // 4
        assert registry.stakeOf(trainer, TRAINER) == stakes[trainer] - lost
        assert registry.lockedOf(trainer, TRAINER) == 0
        assert stored["paidTrainerMask"] >> slot & 1
        with reverts("AlreadySettled"):  # expiry released the bond: a claim must not unlock it again
            rounds.claimTrainer(round_id, {"from": trainer})
    assert token.balanceOf(treasury) == treasury_before + sum(b // 4 for b in bonds.values())
    open_round()  # the next round can open


def test_too_few_accepted_fail_the_round(rounds, registry, trainers, evaluators, open_round, train, evaluate):
    round_id = open_round()
    crew = trainers[:3]
    train(round_id, {t: delta_cid(f"x{i}") for i, t in enumerate(crew)})
    spread = [[1_000 * (d + 1)] * 16 for d in range(3)]  # three deltas, all far apart
    evaluate(round_id, reports_for(evaluators, spread))
    tx = rounds.finalize(round_id)
    assert tx.events["RoundFinalized"]["status"] == FAILED
    for trainer in crew:
        rounds.claimTrainer(round_id, {"from": trainer})
    assert all(registry.lockedOf(t, TRAINER) == 0 and registry.stakeOf(t, TRAINER) == 2 * TRAINER_BOND for t in crew)


def test_exactly_half_of_the_deltas_cannot_set_the_reference(
    rounds, registry, trainers, evaluators, open_round, train, evaluate
):
    """Two of four deltas lie below the honest two on every coordinate: they are the lower-median reference and
    within tolerance of it, but not a strict majority, so nothing is accepted, the round fails and every
    trainer who revealed gets its bond back (no poisoned version, no honest trainer slashed)."""
    round_id = open_round()
    crew = trainers[:4]
    train(round_id, {t: delta_cid(f"half-{i}") for i, t in enumerate(crew)})
    below = [v - 50_000 for v in HONEST]
    tx_reports = reports_for(evaluators, [below, HONEST, below, HONEST])
    evaluate(round_id, tx_reports)
    tx = rounds.finalize(round_id)
    judged = {e["delta"]: e["accepted"] for e in tx.events["DeltaJudged"]}
    assert judged == {0: True, 1: False, 2: True, 3: False}  # the verdicts against the reference
    assert tx.events["RoundFinalized"]["status"] == FAILED and tx.events["RoundFinalized"]["acceptedMask"] == 0
    for trainer in crew:
        rounds.claimTrainer(round_id, {"from": trainer})
    assert all(registry.lockedOf(t, TRAINER) == 0 and registry.stakeOf(t, TRAINER) == 2 * TRAINER_BOND for t in crew)


def test_open_round_rules(rounds, accepted_datasets, informant, open_round):
    with reverts("BatchSize", 0):
        rounds.openRound([], SPEC_HASH, {"from": informant})
    with reverts("BatchSize", 5):
        rounds.openRound(accepted_datasets + [accepted_datasets[0]], SPEC_HASH, {"from": informant})
    round_id = open_round()
    with reverts("RoundActive", round_id):
        rounds.openRound(accepted_datasets[1:2], SPEC_HASH, {"from": informant})
    assert list(rounds.datasetsOf(round_id)) == accepted_datasets[:1]


def test_datasets_are_trained_on_once(deploy_rounds, accepted_datasets, informant, consensus):
    rounds = deploy_rounds()
    rounds.openRound(accepted_datasets[:1], SPEC_HASH, {"from": informant})
    assert consensus.getSubmission(accepted_datasets[0])["consumed"]
    other = deploy_rounds()
    with reverts("NotPending", accepted_datasets[0]):
        other.openRound(accepted_datasets[:1], SPEC_HASH, {"from": informant})


def test_panel_and_fingerprint_rules(rounds, trainers, evaluators, open_round, train, accounts, chain):
    round_id = open_round()
    train(round_id, {t: delta_cid(f"p{i}") for i, t in enumerate(trainers[:2])})
    rounds.drawEvaluators(round_id)
    with reverts("NotOnPanel"):
        rounds.commitFingerprints(round_id, b"\x01" * 32, {"from": accounts[7]})
    evaluator, other = seated_evaluators(rounds, round_id, evaluators)[:2]
    wrong_count = [HONEST]
    commitment = rounds.fingerprintCommitmentFor(wrong_count, salt(evaluator, round_id), evaluator)
    rounds.commitFingerprints(round_id, commitment, {"from": evaluator})
    with reverts("AlreadyCommitted"):
        rounds.commitFingerprints(round_id, commitment, {"from": evaluator})
    mine_past(chain, rounds.getRound(round_id)["evalCommitDeadline"])
    with reverts("WrongFingerprintCount", 1, 2):
        rounds.revealFingerprints(round_id, wrong_count, salt(evaluator, round_id), {"from": evaluator})
    with reverts("NotCommitted"):
        rounds.revealFingerprints(round_id, [HONEST, HONEST], salt(other, round_id), {"from": other})


def test_fingerprints_round_trip_negative_values(rounds, trainers, evaluators, open_round, train, chain):
    round_id = open_round()
    train(round_id, {t: delta_cid(f"n{i}") for i, t in enumerate(trainers[:2])})
    rounds.drawEvaluators(round_id)
    evaluator = seated_evaluators(rounds, round_id, evaluators)[0]
    fingerprint = [-(2**31), 2**31 - 1] + [-5 + k for k in range(14)]
    reports = [fingerprint, HONEST]
    rounds.commitFingerprints(
        round_id, rounds.fingerprintCommitmentFor(reports, salt(evaluator, round_id), evaluator), {"from": evaluator}
    )
    mine_past(chain, rounds.getRound(round_id)["evalCommitDeadline"])
    rounds.revealFingerprints(round_id, reports, salt(evaluator, round_id), {"from": evaluator})
    seat, _ = rounds.seatOf(round_id, evaluator)
    assert list(rounds.fingerprintOf(round_id, seat, 0)) == fingerprint


def test_params_are_validated(deploy_rounds, rounds, gov, outsider):
    with reverts("InvalidParams"):
        deploy_rounds(round_params(minAccepted=0))
    with reverts("InvalidParams"):
        deploy_rounds(round_params(maxBatch=33))
    with reverts("InvalidParams"):  # the seed block would hold the trainers' last reveals: its proposer picks it
        rounds.setParams(round_params(seedDelay=0), {"from": gov})
    # A zero minimum would let all-zero bonds weigh nothing in the reference; a slot stores its bond in 88 bits.
    for bond in (0, 2**88):
        with reverts("InvalidParams"):
            rounds.setParams(round_params(trainerBond=bond), {"from": gov})
    rounds.setParams(round_params(trainerBond=2**88 - 1), {"from": gov})
    with reverts("AccessControlUnauthorizedAccount"):
        rounds.setParams(round_params(), {"from": outsider})
    rounds.setParams(round_params(tolerance=1), {"from": gov})
    assert rounds.getParams()["tolerance"] == 1


def test_evaluators_pool_uses_evaluator_stake(rounds, registry, evaluators):
    assert rounds.poolRole() == EVALUATOR
    assert registry.lockedBy(rounds, evaluators[0], EVALUATOR) == EVALUATOR_BOND
    assert rounds.poolWeight() == EVALUATOR_BOND * len(evaluators) and DSH


# ------------------------------------------------------------------ terms fixed when the round opens


def commit_deltas(rounds, round_id, deltas):
    """Each trainer commits its delta with the round's minimum bond."""
    bond = rounds.getRound(round_id)["trainerBond"]
    for trainer, cid in deltas.items():
        commitment = rounds.deltaCommitmentFor(cid, salt(trainer, round_id), trainer)
        rounds.commitDelta(round_id, commitment, bond, {"from": trainer})


def reveal_deltas(rounds, round_id, deltas, chain):
    mine_past(chain, rounds.getRound(round_id)["trainCommitDeadline"])
    for trainer, cid in deltas.items():
        rounds.revealDelta(round_id, cid, salt(trainer, round_id), {"from": trainer})
    mine_past(chain, rounds.getRound(round_id)["panelSeedBlock"])


# Governance's new trainer terms mid-round: the bond doubled or cut to a quarter, the slash rate halved.
NEW_TRAINER_TERMS = {
    "raised": dict(trainerBond=2 * TRAINER_BOND, outlierSlashBps=5_000),
    "lowered": dict(trainerBond=TRAINER_BOND // 4, outlierSlashBps=5_000),
}


@pytest.mark.parametrize("change", NEW_TRAINER_TERMS)
def test_trainers_settle_on_the_terms_their_round_opened_with(
    change, rounds, registry, token, emission, trainers, evaluators, open_round, evaluate, chain, gov
):
    """Governance changes the minimum trainer bond and the slash rate while a round is open. Every trainer of the
    round, one committing after the change included, may lock the round's minimum; an outlier and a silent trainer
    lose the round's share of it, the accepted ones get it back whole, and no bond stays locked."""
    round_id = open_round()
    honest, late, silent, cheat = trainers[:4]
    cids = {t: delta_cid(f"terms-{i}") for i, t in enumerate(trainers[:4])}
    commit_deltas(rounds, round_id, {t: cids[t] for t in (honest, silent, cheat)})
    rounds.setParams(round_params(**NEW_TRAINER_TERMS[change]), {"from": gov})
    commit_deltas(rounds, round_id, {late: cids[late]})
    assert all(registry.lockedOf(t, TRAINER) == TRAINER_BOND for t in (honest, late, silent, cheat))
    reveal_deltas(rounds, round_id, {t: cids[t] for t in (honest, cheat, late)}, chain)
    evaluate(round_id, reports_for(evaluators, [HONEST, POISONED, HONEST]))  # deltas in reveal order
    expected = round_payouts(
        bonds=[TRAINER_BOND] * 4,
        accepted=[True, False, False, True],  # slots: honest, silent, cheat, late
        outlier_slash_bps=ROUND_PARAMS["outlierSlashBps"],
        round_reward=ROUND_PARAMS["roundReward"],
        available=emission.available(),
        evaluator_share_bps=ROUND_PARAMS["evaluatorShareBps"],
        coherent_weight=1,  # every evaluator is honest: some weight is coherent
    )
    tx = rounds.finalize(round_id)
    assert tx.events["RoundFinalized"]["acceptedMask"] == 0b101
    assert tx.events["RoundFinalized"]["trainerRewardPool"] == expected.trainer_reward_pool
    assert expected.slashed == 2 * TRAINER_BOND  # the round's rate: the whole bond, twice
    for loser in (silent, cheat):
        assert registry.stakeOf(loser, TRAINER) == 2 * TRAINER_BOND - TRAINER_BOND
        assert registry.lockedOf(loser, TRAINER) == 0
    for winner in (honest, late):
        rounds.claimTrainer(round_id, {"from": winner})
        assert registry.lockedOf(winner, TRAINER) == 0
        assert registry.stakeOf(winner, TRAINER) == 2 * TRAINER_BOND
        assert token.balanceOf(winner) == trainer_reward(TRAINER_BOND, expected.trainer_reward_pool, 2 * TRAINER_BOND)
    terms = rounds.getRound(round_id)
    assert (terms["trainerBond"], terms["outlierSlashBps"]) == (TRAINER_BOND, ROUND_PARAMS["outlierSlashBps"])
    assert terms["acceptedBond"] == 2 * TRAINER_BOND


@pytest.mark.parametrize("change", NEW_TRAINER_TERMS)
def test_a_failed_round_settles_on_the_terms_it_opened_with(
    change, rounds, registry, token, treasury, trainers, open_round, chain, gov
):
    """The same for a round that fails (too few deltas): the silent trainer loses the round's share of the
    round's bond to the treasury, the one who revealed reclaims exactly what it locked."""
    round_id = open_round()
    revealer, silent = trainers[:2]
    cids = {revealer: delta_cid("alone"), silent: delta_cid("silent")}
    commit_deltas(rounds, round_id, cids)
    rounds.setParams(round_params(**NEW_TRAINER_TERMS[change]), {"from": gov})
    reveal_deltas(rounds, round_id, {revealer: cids[revealer]}, chain)
    treasury_before = token.balanceOf(treasury)
    assert rounds.drawEvaluators(round_id).events["RoundFinalized"]["status"] == FAILED
    assert token.balanceOf(treasury) == treasury_before + TRAINER_BOND
    assert registry.stakeOf(silent, TRAINER) == TRAINER_BOND and registry.lockedOf(silent, TRAINER) == 0
    rounds.claimTrainer(round_id, {"from": revealer})
    assert registry.lockedOf(revealer, TRAINER) == 0 and registry.stakeOf(revealer, TRAINER) == 2 * TRAINER_BOND


def test_a_round_opened_after_a_change_uses_the_new_terms(rounds, registry, trainers, open_round, gov):
    rounds.setParams(round_params(trainerBond=TRAINER_BOND // 4, outlierSlashBps=5_000), {"from": gov})
    round_id = open_round()
    commit_deltas(rounds, round_id, {trainers[0]: delta_cid("new terms")})
    assert registry.lockedOf(trainers[0], TRAINER) == TRAINER_BOND // 4
    terms = rounds.getRound(round_id)
    assert (terms["trainerBond"], terms["outlierSlashBps"]) == (TRAINER_BOND // 4, 5_000)


# ------------------------------------------------------------------ bond-weighted trainer slots


def test_commit_bond_rules(rounds, registry, trainers, open_round, chain):
    """A commit locks the bond it names: at least the round's minimum (`BondTooSmall` below it), within the
    slot's 88 bits; `DeltaCommitted` and `deltasOf` carry it."""
    round_id = open_round()
    low, exact, high = trainers[:3]

    def commit(trainer, bond):
        commitment = rounds.deltaCommitmentFor(delta_cid(f"b-{trainer}"), salt(trainer, round_id), trainer)
        return rounds.commitDelta(round_id, commitment, bond, {"from": trainer})

    with reverts("BondTooSmall", TRAINER_BOND - 1, TRAINER_BOND):
        commit(low, TRAINER_BOND - 1)
    with reverts("SafeCastOverflowedUintDowncast", 88, 2**88):
        commit(low, 2**88)
    with reverts("ExceedsUnlocked"):  # more than its stake
        commit(low, 2 * TRAINER_BOND + 1)
    assert registry.lockedOf(low, TRAINER) == 0 and rounds.getRound(round_id)["trainerCount"] == 0
    event = commit(exact, TRAINER_BOND).events["DeltaCommitted"]
    assert (event["trainer"], event["slot"], event["bond"]) == (exact, 0, TRAINER_BOND)
    assert commit(high, 2 * TRAINER_BOND).events["DeltaCommitted"]["bond"] == 2 * TRAINER_BOND
    assert registry.lockedOf(exact, TRAINER) == TRAINER_BOND and registry.lockedOf(high, TRAINER) == 2 * TRAINER_BOND
    mine_past(chain, rounds.getRound(round_id)["trainCommitDeadline"])
    for trainer in (high, exact):  # delta order is reveal order
        rounds.revealDelta(round_id, delta_cid(f"b-{trainer}"), salt(trainer, round_id), {"from": trainer})
    addresses, _, bonds = rounds.deltasOf(round_id)
    assert list(addresses) == [high, exact] and list(bonds) == [2 * TRAINER_BOND, TRAINER_BOND]


def bonded_round(rounds, open_round, train, evaluate, evaluators, deltas, min_accepted=ROUND_PARAMS["minAccepted"]):
    """Runs a round to `finalize` on `deltas` ([(trainer, bond, true fingerprint)], in commit and reveal order),
    every evaluator reporting noisy truths; returns (the round, finalize's transaction, the Python reference's
    judgement), checked against each other."""
    round_id = open_round()
    cids = {trainer: delta_cid(f"bonded-{round_id}-{i}") for i, (trainer, _, _) in enumerate(deltas)}
    train(round_id, cids, bonds={trainer: bond for trainer, bond, _ in deltas})
    reports = reports_for(evaluators, [truth for _, _, truth in deltas])
    panel = evaluate(round_id, reports)
    by_address = {e.address: e for e in evaluators}
    expected = judge(
        [reports[by_address[member]] for member in panel],
        list(rounds.panelOf(round_id)[1]),
        bonds=[bond for _, bond, _ in deltas],
        tolerance=ROUND_PARAMS["tolerance"],
        evaluator_tolerance=ROUND_PARAMS["evaluatorTolerance"],
        min_accepted=min_accepted,
    )
    tx = rounds.finalize(round_id)
    assert [e["distance"] for e in tx.events["DeltaJudged"]] == list(expected.distances)
    event = tx.events["RoundFinalized"]
    assert (event["status"], event["acceptedMask"]) == (
        {"Finalized": FINALIZED, "Failed": FAILED}[expected.status],
        expected.accepted_mask,
    )
    assert rounds.getRound(round_id)["acceptedBond"] == expected.accepted_bond
    return round_id, tx, expected


BELOW = [v - 50_000 for v in HONEST]  # a poisoned delta lying below the honest ones: the lower median's side


def test_three_addresses_earn_and_weigh_what_one_address_with_their_bond_does(
    rounds, registry, token, trainers, evaluators, open_round, train, evaluate, staked, gov
):
    """A party bonding B from each of 3 addresses, then 3B from 1 address, against 2 addresses bonding 1.25B each
    on a poisoned delta below its own: both times the party's 3B of 5.5B sets the reference (by slot count the
    single address would lose 2 to 1), the poisoned pair is slashed, and the party earns the same pool, to the
    rounding dust (under one wei per address). (`minAccepted` counts deltas: 1 here, for the single address.)"""
    rounds.setParams(round_params(minAccepted=1), {"from": gov})
    quarter = TRAINER_BOND // 4
    split, single = trainers[:3], trainers[5]
    staked(single, TRAINER, TRAINER_BOND)  # 3B of stake
    earned, pools = [], []
    for party, opponents in ((split, trainers[3:5]), ([single], trainers[6:8])):
        bond = 3 * TRAINER_BOND // len(party)
        deltas = [(t, bond, HONEST) for t in party] + [(t, TRAINER_BOND + quarter, BELOW) for t in opponents]
        stakes = {t: registry.stakeOf(t, TRAINER) for t, _, _ in deltas}
        round_id, tx, expected = bonded_round(rounds, open_round, train, evaluate, evaluators, deltas, min_accepted=1)
        assert expected.status == "Finalized" and expected.accepted_mask == (1 << len(party)) - 1
        assert expected.accepted_bond == 3 * TRAINER_BOND
        for opponent in opponents:  # slashed whole (outlierSlashBps = 100%) into the pool
            assert registry.stakeOf(opponent, TRAINER) == stakes[opponent] - TRAINER_BOND - quarter
        pool = tx.events["RoundFinalized"]["trainerRewardPool"]
        reward = 0
        for member in party:
            balance = token.balanceOf(member)
            rounds.claimTrainer(round_id, {"from": member})
            assert token.balanceOf(member) - balance == trainer_reward(bond, pool, 3 * TRAINER_BOND)
            assert registry.stakeOf(member, TRAINER) == stakes[member] and registry.lockedOf(member, TRAINER) == 0
            reward += token.balanceOf(member) - balance
        earned.append(reward)
        pools.append(pool)
    assert pools[0] == pools[1]
    assert earned[1] == pools[1] and 0 <= earned[1] - earned[0] < 3


def test_a_bond_minority_on_a_slot_majority_cannot_set_the_reference(
    rounds, registry, token, trainers, evaluators, open_round, train, evaluate, staked
):
    """Five minimum-bond slots on a poisoned delta below the honest ones (5 of 7 slots, 5B) against two honest
    slots bonding 2.6B each (5.2B): the honest deltas make the reference and are accepted, the poisoned ones are
    slashed, and the two honest trainers share the pool half and half."""
    honest, poisoned = trainers[:2], trainers[2:7]
    big = TRAINER_BOND * 26 // 10
    for trainer in honest:
        staked(trainer, TRAINER, TRAINER_BOND)
    deltas = [(t, TRAINER_BOND, BELOW) for t in poisoned] + [(t, big, HONEST) for t in honest]
    round_id, tx, expected = bonded_round(rounds, open_round, train, evaluate, evaluators, deltas)
    assert expected.status == "Finalized" and expected.accepted_mask == 0b1100000
    for trainer in poisoned:
        assert registry.stakeOf(trainer, TRAINER) == TRAINER_BOND and registry.lockedOf(trainer, TRAINER) == 0
        with reverts("NothingToClaim"):
            rounds.claimTrainer(round_id, {"from": trainer})
    pool = tx.events["RoundFinalized"]["trainerRewardPool"]
    for trainer in honest:
        rounds.claimTrainer(round_id, {"from": trainer})
        assert token.balanceOf(trainer) == pool // 2 and registry.stakeOf(trainer, TRAINER) == 3 * TRAINER_BOND


def test_exactly_half_of_the_bond_cannot_set_the_reference(
    rounds, registry, trainers, evaluators, open_round, train, evaluate, staked
):
    """The same with the honest slots bonding 2.5B each: the poisoned slots hold exactly half of the bond and make
    the lower median, but are no majority: nothing is accepted, the round fails, nobody is slashed."""
    honest, poisoned = trainers[:2], trainers[2:7]
    for trainer in honest:
        staked(trainer, TRAINER, TRAINER_BOND)
    deltas = [(t, TRAINER_BOND, BELOW) for t in poisoned] + [(t, TRAINER_BOND * 5 // 2, HONEST) for t in honest]
    round_id, tx, expected = bonded_round(rounds, open_round, train, evaluate, evaluators, deltas)
    assert expected.status == "Failed" and expected.accepted_mask == 0
    assert [e["accepted"] for e in tx.events["DeltaJudged"]] == [True] * 5 + [False] * 2  # the poisoned reference
    for trainer in (*poisoned, *honest):
        rounds.claimTrainer(round_id, {"from": trainer})
        assert registry.lockedOf(trainer, TRAINER) == 0
    assert all(registry.stakeOf(t, TRAINER) == 2 * TRAINER_BOND for t in poisoned)
    assert all(registry.stakeOf(t, TRAINER) == 3 * TRAINER_BOND for t in honest)


# ------------------------------------------------------------------ displacement from a full round


def test_a_larger_bond_displaces_the_smallest_slot_of_a_full_round(
    rounds, registry, trainers, open_round, chain, accounts, deployer, staked
):
    """All 16 slots taken: a bond strictly above the smallest committed one takes that slot (the lowest index
    among equal bonds), unlocking the displaced bond in full; an equal bond reverts `RoundFull`; the displaced
    trainer may commit again with a larger bond, and its old commitment no longer reveals (`NotTrainer`). After
    the commit window nothing displaces (`WindowClosed`)."""
    round_id = open_round()
    newcomer, late = accounts.from_mnemonic(ROLE_MNEMONIC, count=2, offset=90)
    for account in (newcomer, late):
        deployer.transfer(account, "1 ether")
        staked(account, TRAINER, 3 * TRAINER_BOND)
    bonds = [TRAINER_BOND if slot in (5, 9) else TRAINER_BOND + (1 + slot % 4) * DSH for slot in range(16)]

    def commit(trainer, bond, tag):
        cid = delta_cid(f"displace-{tag}-{trainer}")
        commitment = rounds.deltaCommitmentFor(cid, keccak(f"{tag}/{trainer}".encode()), trainer)
        return rounds.commitDelta(round_id, commitment, bond, {"from": trainer})

    for trainer, bond in zip(trainers, bonds, strict=True):
        commit(trainer, bond, "first")
    with reverts("RoundFull"):  # equal to the smallest is not above it
        commit(newcomer, TRAINER_BOND, "first")
    tx = commit(newcomer, TRAINER_BOND + 1, "first")
    displaced = tx.events["DeltaDisplaced"]
    assert (displaced["round"], displaced["trainer"], displaced["slot"], displaced["bond"]) == (
        round_id,
        trainers[5],
        5,
        TRAINER_BOND,
    )
    assert tx.events["DeltaCommitted"]["slot"] == 5 and tx.events["DeltaCommitted"]["trainer"] == newcomer
    assert registry.lockedOf(trainers[5], TRAINER) == 0  # unlocked in full: it did nothing wrong
    assert registry.stakeOf(trainers[5], TRAINER) == 2 * TRAINER_BOND
    assert registry.lockedOf(newcomer, TRAINER) == TRAINER_BOND + 1
    assert rounds.getRound(round_id)["trainerCount"] == 16
    with reverts("AlreadyCommitted"):
        commit(newcomer, 3 * TRAINER_BOND, "again")

    # The displaced trainer commits again, with a bond above the smallest (slot 9's) and a fresh salt.
    with reverts("RoundFull"):
        commit(trainers[5], TRAINER_BOND, "second")
    tx = commit(trainers[5], 2 * TRAINER_BOND, "second")
    assert tx.events["DeltaDisplaced"]["trainer"] == trainers[9] and tx.events["DeltaCommitted"]["slot"] == 9
    assert registry.lockedOf(trainers[5], TRAINER) == 2 * TRAINER_BOND and registry.lockedOf(trainers[9], TRAINER) == 0

    mine_past(chain, rounds.getRound(round_id)["trainCommitDeadline"])
    with reverts("WindowClosed"):  # the reveal window: nothing revealed is ever displaced
        commit(late, 3 * TRAINER_BOND, "first")
    old = delta_cid(f"displace-first-{trainers[9]}")
    with reverts("NotTrainer"):
        rounds.revealDelta(round_id, old, keccak(f"first/{trainers[9]}".encode()), {"from": trainers[9]})
    with reverts("CommitmentMismatch"):  # its first commitment was overwritten by its second
        rounds.revealDelta(
            round_id,
            delta_cid(f"displace-first-{trainers[5]}"),
            keccak(f"first/{trainers[5]}".encode()),
            {"from": trainers[5]},
        )
    for trainer, tag in ((trainers[5], "second"), (newcomer, "first")):
        cid = delta_cid(f"displace-{tag}-{trainer}")
        rounds.revealDelta(round_id, cid, keccak(f"{tag}/{trainer}".encode()), {"from": trainer})
    addresses, _, revealed_bonds = rounds.deltasOf(round_id)
    assert list(addresses) == [trainers[5], newcomer]
    assert list(revealed_bonds) == [2 * TRAINER_BOND, TRAINER_BOND + 1]
