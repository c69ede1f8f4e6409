import pytest

from tests.contracts.conftest import CURATOR, DSH, INFORMANT, reverts
from tests.contracts.data.conftest import (
    BOND,
    CID,
    GOOD,
    INFORMANT_STAKE,
    INITIAL_THRESHOLD,
    JUNK,
    PARAMS,
    POOL_BOND,
    WEIGHTS,
    params_tuple,
    salt_for,
)
from workers.protocol.consensus import expiry_slash
from workers.protocol.constants import BLOCKHASH_HORIZON, MAX_CURATORS
from workers.protocol.sortition import seed_expired

ACCEPTED, REJECTED, NO_QUORUM, EXPIRED = 3, 4, 5, 6


def value_of(scores):
    return sum(s * w for s, w in zip(scores, WEIGHTS, strict=True)) // 100


# ------------------------------------------------------------------ pool


def test_join_and_leave_pool(deploy_consensus, registry, staked, accounts):
    consensus = deploy_consensus()  # fresh: module fixtures such as `pool` may already fill the shared one
    curator = accounts[4]
    staked(curator, CURATOR, 3_000 * DSH)
    tx = consensus.joinPool(1_500 * DSH, {"from": curator})
    assert tx.events["PoolJoined"]["bond"] == 1_500 * DSH
    assert registry.lockedBy(consensus, curator, CURATOR) == 1_500 * DSH
    assert consensus.poolWeight() == 1_500 * DSH
    consensus.joinPool(500 * DSH, {"from": curator})
    assert consensus.poolMembers(curator)["bond"] == 2_000 * DSH
    consensus.leavePool({"from": curator})
    assert registry.lockedOf(curator, CURATOR) == 0
    assert consensus.poolWeight() == 0
    with reverts("NotInPool"):
        consensus.leavePool({"from": curator})


def test_pool_bond_below_minimum_or_unstaked_reverts(consensus, staked, accounts):
    curator = accounts[4]
    with reverts("PoolBondTooSmall", 999 * DSH, 1_000 * DSH):
        consensus.joinPool(999 * DSH, {"from": curator})
    with reverts("ExceedsUnlocked"):
        consensus.joinPool(1_000 * DSH, {"from": curator})


def test_cannot_leave_with_open_panels(consensus, pool, informant, submit, panel):
    submission_id = submit(informant)
    seated = panel(submission_id, pool)[0]
    with reverts("OpenPanels", 1):
        consensus.leavePool({"from": seated})


# ------------------------------------------------------------------ submission and panel


def test_submit_locks_bond_and_records_cid(consensus, registry, pool, informant):
    tx = consensus.submit(CID, BOND, {"from": informant})
    submission_id = tx.return_value
    assert tx.events["Submitted"]["manifestCid"] == "0x" + CID.hex()
    assert consensus.manifestCid(submission_id) == "0x" + CID.hex()
    assert registry.lockedBy(consensus, informant, INFORMANT) == BOND
    assert consensus.getSubmission(submission_id)["status"] == 1


def test_submit_rejects_bad_input(consensus, informant):
    with reverts("InvalidCid"):
        consensus.submit(b"", BOND, {"from": informant})
    with reverts("InvalidCid"):
        consensus.submit(b"\x01" * 65, BOND, {"from": informant})
    with reverts("BondTooSmall", 99 * DSH, 100 * DSH):
        consensus.submit(CID, 99 * DSH, {"from": informant})
    with reverts("ExceedsUnlocked"):
        consensus.submit(CID, 1_001 * DSH, {"from": informant})


def test_panel_is_drawn_from_the_pool_without_the_informant(consensus, pool, staked, informant, submit):
    # The informant is also the heaviest curator, yet never sits on its own panel.
    staked(informant, CURATOR, 50_000 * DSH)
    consensus.joinPool(50_000 * DSH, {"from": informant})
    submission_id = submit(informant)
    members, weights = consensus.panelOf(submission_id)
    assert 0 < len(members) <= MAX_CURATORS
    assert informant.address not in members
    assert len(set(members)) == len(members)
    # A seat weighs its draws; the informant's tickets are redrawn, at most MAX_DRAWS in all, so with 50,000 of
    # 80,000 DSH some votes may go undrawn.
    assert all(weight >= 1 for weight in weights) and sum(weights) <= MAX_CURATORS
    submission = consensus.getSubmission(submission_id)
    assert submission["status"] == 2 and submission["panelWeight"] == sum(weights)


def test_full_pool_gives_every_vote(consensus, pool, informant, submit):
    """One draw = one vote: 31 draws with replacement over 15 equal curators. Seats are the distinct curators
    drawn, each weighing its draws; all 31 votes are drawn (the informant is not in the pool)."""
    members, weights = consensus.panelOf(submit(informant))
    assert sum(weights) == MAX_CURATORS and all(weight >= 1 for weight in weights)
    assert len(set(members)) == len(members) <= len(pool)


def test_draw_waits_for_the_seed_block(consensus, pool, informant, chain):
    submission_id = consensus.submit(CID, BOND, {"from": informant}).return_value
    with reverts("TooEarly"):
        consensus.drawPanel(submission_id, {"from": informant})
    chain.mine(PARAMS["seedDelay"])
    consensus.drawPanel(submission_id, {"from": informant})
    with reverts("WrongStatus", 2):
        consensus.drawPanel(submission_id, {"from": informant})


def test_draw_at_the_last_readable_block_draws_and_one_later_expires(consensus, pool, informant, chain):
    """`seed_expired` (the reference) names the first block whose draw expires the submission: seed block + 257."""
    first = consensus.submit(CID, BOND, {"from": informant}).return_value
    second = consensus.submit(CID, BOND, {"from": informant}).return_value
    last = consensus.getSubmission(first)["seedBlock"] + BLOCKHASH_HORIZON
    chain.mine(last - 1 - chain.height)  # the next transaction lands in block `last`
    tx = consensus.drawPanel(first, {"from": informant})
    assert tx.block_number == last and not seed_expired(last - BLOCKHASH_HORIZON, tx.block_number)
    assert "PanelDrawn" in tx.events and "SubmissionExpired" not in tx.events
    second_seed = consensus.getSubmission(second)["seedBlock"]  # one block later: `last` + 1 can still draw it
    chain.mine(second_seed + BLOCKHASH_HORIZON - chain.height)  # the next transaction lands one block too late
    tx = consensus.drawPanel(second, {"from": informant})
    assert tx.block_number == second_seed + BLOCKHASH_HORIZON + 1 and seed_expired(second_seed, tx.block_number)
    assert "PanelDrawn" not in tx.events and tx.events["SubmissionExpired"]["id"] == second


def test_undrawn_panel_expires_the_submission_at_the_informants_expense(
    consensus, registry, token, pool, informant, treasury, outsider, chain
):
    submission_id = consensus.submit(CID, BOND, {"from": informant}).return_value
    chain.mine(300)
    treasury_before, caller_before = token.balanceOf(treasury), token.balanceOf(outsider)
    tx = consensus.drawPanel(submission_id, {"from": outsider})  # anyone may; the caller earns nothing
    slashed = expiry_slash(BOND, PARAMS["expirySlashBps"])
    assert slashed == BOND // 2
    expired = tx.events["SubmissionExpired"]
    assert (expired["id"], expired["informant"], expired["slashed"]) == (submission_id, informant, slashed)
    assert "PanelDrawn" not in tx.events and "PanelReseeded" not in tx.events
    assert tx.events["Slashed"]["beneficiary"] == treasury and tx.events["Unlocked"]["amount"] == BOND - slashed
    assert token.balanceOf(treasury) == treasury_before + slashed and token.balanceOf(outsider) == caller_before
    assert registry.lockedOf(informant, INFORMANT) == 0
    assert registry.stakeOf(informant, INFORMANT) == INFORMANT_STAKE - slashed
    assert consensus.getSubmission(submission_id)["status"] == EXPIRED
    assert consensus.panelOf(submission_id) == ((), ())
    # Final: no second draw, no vote, no seat; a new draw takes a new submission (and a new bond).
    with reverts("WrongStatus", EXPIRED):
        consensus.drawPanel(submission_id, {"from": outsider})
    with reverts("WrongStatus", EXPIRED):
        consensus.finalize(submission_id, {"from": outsider})
    with reverts("WrongStatus", EXPIRED):
        consensus.claim(submission_id, 0, {"from": outsider})


def test_expiry_slash_is_the_rate_at_submit(consensus, registry, pool, informant, gov, chain):
    bond = INFORMANT_STAKE // 3
    submission_id = consensus.submit(CID, bond, {"from": informant}).return_value
    consensus.setParams(params_tuple(expirySlashBps=10_000), WEIGHTS, {"from": gov})  # for later submissions
    assert consensus.getSubmission(submission_id)["expirySlashBps"] == PARAMS["expirySlashBps"]
    whole = consensus.submit(CID, bond, {"from": informant}).return_value
    consensus.setParams(params_tuple(expirySlashBps=0), WEIGHTS, {"from": gov})
    free = consensus.submit(CID, bond, {"from": informant}).return_value
    chain.mine(300)
    stake = registry.stakeOf(informant, INFORMANT)
    for sid, rate in ((submission_id, PARAMS["expirySlashBps"]), (whole, 10_000), (free, 0)):
        tx = consensus.drawPanel(sid, {"from": informant})
        assert tx.events["SubmissionExpired"]["slashed"] == expiry_slash(bond, rate)
        stake -= expiry_slash(bond, rate)
        assert registry.stakeOf(informant, INFORMANT) == stake
    assert registry.lockedOf(informant, INFORMANT) == 0


def test_draw_with_empty_pool_reverts(deploy_consensus, informant, chain):
    consensus = deploy_consensus()
    submission_id = consensus.submit(CID, BOND, {"from": informant}).return_value
    chain.mine(PARAMS["seedDelay"])
    with reverts("NoEligibleMembers"):
        consensus.drawPanel(submission_id, {"from": informant})


# ------------------------------------------------------------------ commit and reveal


@pytest.fixture
def voting(consensus, pool, informant, submit, panel):
    submission_id = submit(informant)
    return submission_id, panel(submission_id, pool)


def test_commit_and_reveal(consensus, voting, vote):
    submission_id, members = voting
    vote(submission_id, {members[0]: GOOD})
    submission = consensus.getSubmission(submission_id)
    assert submission["revealedMask"] == 1
    assert submission["revealedWeight"] == consensus.panelOf(submission_id)[1][0]  # the seat's draws


def test_reveal_without_commit_reverts(consensus, voting, vote):
    submission_id, members = voting
    vote(submission_id, {members[0]: GOOD})
    with reverts("NotCommitted"):
        consensus.reveal(submission_id, GOOD, salt_for(members[1], submission_id), {"from": members[1]})


def test_reveal_with_wrong_salt_or_scores_reverts(consensus, voting, vote):
    submission_id, members = voting
    vote(submission_id, {members[0]: GOOD}, reveal=False)
    with reverts("CommitmentMismatch"):
        consensus.reveal(submission_id, GOOD, b"\x01" * 32, {"from": members[0]})
    with reverts("CommitmentMismatch"):
        consensus.reveal(submission_id, JUNK, salt_for(members[0], submission_id), {"from": members[0]})


def test_double_reveal_and_double_commit_revert(consensus, voting, vote):
    submission_id, members = voting
    commitment = consensus.commitmentFor(GOOD, salt_for(members[0], submission_id), members[0])
    consensus.commit(submission_id, commitment, {"from": members[0]})
    with reverts("AlreadyCommitted"):
        consensus.commit(submission_id, commitment, {"from": members[0]})
    vote(submission_id, {}, reveal=False)
    consensus.reveal(submission_id, GOOD, salt_for(members[0], submission_id), {"from": members[0]})
    with reverts("AlreadyRevealed"):
        consensus.reveal(submission_id, GOOD, salt_for(members[0], submission_id), {"from": members[0]})


def test_reveal_outside_its_window_reverts(consensus, voting, chain, past_reveal):
    submission_id, members = voting
    salt = salt_for(members[0], submission_id)
    consensus.commit(submission_id, consensus.commitmentFor(GOOD, salt, members[0]), {"from": members[0]})
    with reverts("WindowNotOpen"):
        consensus.reveal(submission_id, GOOD, salt, {"from": members[0]})
    past_reveal(submission_id)
    with reverts("WindowClosed"):
        consensus.reveal(submission_id, GOOD, salt, {"from": members[0]})


def test_commit_after_window_reverts(consensus, voting, vote):
    submission_id, members = voting
    vote(submission_id, {}, reveal=False)
    with reverts("WindowClosed"):
        consensus.commit(submission_id, b"\x01" * 32, {"from": members[0]})


def test_non_panel_voter_and_informant_cannot_vote(consensus, voting, informant, accounts):
    submission_id, members = voting
    for outsider in (accounts[7], informant):
        with reverts("NotOnPanel"):
            consensus.commit(submission_id, b"\x01" * 32, {"from": outsider})


def test_copied_commitment_cannot_be_revealed(consensus, voting, vote):
    submission_id, members = voting
    honest, copier = members[0], members[1]
    commitment = consensus.commitmentFor(GOOD, salt_for(honest, submission_id), honest)
    consensus.commit(submission_id, commitment, {"from": honest})
    consensus.commit(submission_id, commitment, {"from": copier})
    vote(submission_id, {}, reveal=False)
    consensus.reveal(submission_id, GOOD, salt_for(honest, submission_id), {"from": honest})
    # The commitment binds the voter's address, so the copier cannot open it even after seeing the reveal.
    with reverts("CommitmentMismatch"):
        consensus.reveal(submission_id, GOOD, salt_for(honest, submission_id), {"from": copier})


def test_scores_above_100_revert(consensus, voting, vote):
    submission_id, members = voting
    vote(submission_id, {members[0]: [101, 0, 0, 0, 0]}, reveal=False)
    with reverts("ScoreOutOfRange", 101):
        consensus.reveal(submission_id, [101, 0, 0, 0, 0], salt_for(members[0], submission_id), {"from": members[0]})


# ------------------------------------------------------------------ finalize and claims


def test_accepted_dataset_returns_bond_and_pays_rewards(consensus, registry, token, voting, vote, informant):
    submission_id, members = voting
    vote(submission_id, {member: GOOD for member in members})
    tx = consensus.finalize(submission_id, {"from": informant})
    value = value_of(GOOD)
    event = tx.events["Finalized"]
    assert event["status"] == ACCEPTED and event["value"] == value and list(event["consensus"]) == GOOD
    assert registry.lockedOf(informant, INFORMANT) == 0
    assert registry.stakeOf(informant, INFORMANT) == 1_000 * DSH
    reward = PARAMS["maxReward"] * value // 10_000
    curator_part = reward * PARAMS["curatorShareBps"] // 10_000
    assert token.balanceOf(consensus) == reward
    consensus.claimInformantReward(submission_id, {"from": informant})
    assert token.balanceOf(informant) == reward - curator_part
    draws = consensus.panelOf(submission_id)[1]
    for seat, member in enumerate(members):
        consensus.claim(submission_id, seat, {"from": member})
        assert token.balanceOf(member) == curator_part * draws[seat] // MAX_CURATORS  # a share per vote
    assert token.balanceOf(consensus) == curator_part - sum(curator_part * d // MAX_CURATORS for d in draws)
    assert consensus.pendingDatasetCount() == 1


def test_rejected_dataset_slashes_bond_to_coherent_curators(consensus, registry, token, voting, vote, informant):
    submission_id, members = voting
    vote(submission_id, {member: JUNK for member in members})
    tx = consensus.finalize(submission_id, {"from": informant})
    assert tx.events["Finalized"]["status"] == REJECTED
    slashed = BOND * PARAMS["rejectSlashBps"] // 10_000
    assert registry.stakeOf(informant, INFORMANT) == 1_000 * DSH - slashed
    assert registry.lockedOf(informant, INFORMANT) == 0
    draws = consensus.panelOf(submission_id)[1]
    for seat, member in enumerate(members):
        consensus.claim(submission_id, seat, {"from": informant})  # anyone may settle; the curator is paid
        assert token.balanceOf(member) == slashed * draws[seat] // MAX_CURATORS
    with reverts("NothingToClaim"):
        consensus.claimInformantReward(submission_id, {"from": informant})
    assert consensus.pendingDatasetCount() == 0


def test_incoherent_and_silent_curators_lose_a_share(
    consensus, registry, token, voting, vote, past_reveal, informant, treasury
):
    submission_id, members = voting
    honest, contrarian, silent = members[:-2], members[-2], members[-1]
    ballots = {member: JUNK for member in honest}
    ballots[contrarian] = [100, 100, 100, 100, 100]
    ballots[silent] = JUNK
    vote(submission_id, ballots, skip_reveal=(silent,))
    past_reveal(submission_id)
    consensus.finalize(submission_id, {"from": informant})
    treasury_before = token.balanceOf(treasury)
    consensus.claim(submission_id, len(members) - 2, {"from": informant})
    consensus.claim(submission_id, len(members) - 1, {"from": informant})
    small = POOL_BOND * PARAMS["incoherentPenaltyBps"] // 10_000
    large = POOL_BOND * PARAMS["noRevealPenaltyBps"] // 10_000
    assert registry.stakeOf(contrarian, CURATOR) == 3_000 * DSH - small
    assert registry.stakeOf(silent, CURATOR) == 3_000 * DSH - large
    assert consensus.poolMembers(silent)["bond"] == POOL_BOND - large
    assert token.balanceOf(treasury) == treasury_before + small + large
    assert consensus.poolWeight() == POOL_BOND * 15 - small - large
    assert token.balanceOf(contrarian) == 0 and token.balanceOf(silent) == 0


def test_claim_twice_and_finalize_twice_revert(consensus, voting, vote, informant):
    submission_id, members = voting
    vote(submission_id, {member: GOOD for member in members})
    consensus.finalize(submission_id, {"from": informant})
    with reverts("WrongStatus", ACCEPTED):
        consensus.finalize(submission_id, {"from": informant})
    consensus.claim(submission_id, 0, {"from": members[0]})
    with reverts("AlreadySettled"):
        consensus.claim(submission_id, 0, {"from": members[0]})
    with reverts("InvalidSeat", len(members)):
        consensus.claim(submission_id, len(members), {"from": informant})
    consensus.claimInformantReward(submission_id, {"from": informant})
    with reverts("NothingToClaim"):
        consensus.claimInformantReward(submission_id, {"from": informant})
    with reverts("NotInformant"):
        consensus.claimInformantReward(submission_id, {"from": members[0]})


def test_finalize_and_claim_too_early_revert(consensus, voting, vote, informant):
    submission_id, members = voting
    with reverts("WrongStatus", 2):
        consensus.claim(submission_id, 0, {"from": members[0]})
    vote(submission_id, {members[0]: GOOD})
    with reverts("TooEarly"):
        consensus.finalize(submission_id, {"from": informant})


def test_without_quorum_the_bond_returns_and_silence_is_penalised(
    consensus, registry, voting, vote, informant, past_reveal
):
    submission_id, members = voting
    vote(submission_id, {members[0]: GOOD})
    past_reveal(submission_id)
    tx = consensus.finalize(submission_id, {"from": informant})
    assert tx.events["Finalized"]["status"] == NO_QUORUM
    assert registry.lockedOf(informant, INFORMANT) == 0 and registry.stakeOf(informant, INFORMANT) == 1_000 * DSH
    assert consensus.threshold() == INITIAL_THRESHOLD
    tx = consensus.claim(submission_id, 0, {"from": informant})
    assert tx.events["Settled"]["reward"] == 0 and tx.events["Settled"]["penalty"] == 0
    tx = consensus.claim(submission_id, 1, {"from": informant})
    assert tx.events["Settled"]["penalty"] == POOL_BOND * PARAMS["noRevealPenaltyBps"] // 10_000


def test_minority_coalition_cannot_move_the_consensus(consensus, voting, vote, informant):
    """Curators holding under half of the revealed votes (draws) vote 100 everywhere; each criterion's
    consensus stays within the honest votes and the junk dataset is still rejected."""
    submission_id, members = voting
    coalition, votes = [], 0
    for member, draws in zip(members, consensus.panelOf(submission_id)[1], strict=True):
        if 2 * (votes + draws) < 15:
            coalition.append(member)
            votes += draws
    honest = [member for member in members if member not in coalition]
    ballots = {member: [100] * 5 for member in coalition}
    for i, member in enumerate(honest):
        ballots[member] = [score + i % 3 for score in JUNK]  # honest votes spread a little
    vote(submission_id, ballots)
    tx = consensus.finalize(submission_id, {"from": informant})
    consensus_scores = list(tx.events["Finalized"]["consensus"])
    for criterion, score in enumerate(consensus_scores):
        honest_scores = [ballots[member][criterion] for member in honest]
        assert min(honest_scores) <= score <= max(honest_scores)
    assert tx.events["Finalized"]["status"] == REJECTED


def test_threshold_moves_toward_target_and_stays_bounded(consensus, pool, informant, submit, panel, vote):
    thresholds = []
    for _ in range(4):
        submission_id = submit(informant, bond=100 * DSH)
        members = panel(submission_id, pool)
        vote(submission_id, {member: [100] * 5 for member in members})
        consensus.finalize(submission_id, {"from": informant})
        thresholds.append(consensus.threshold())
    # Accepting everything pushes the acceptance EMA above the 50% target, so the bar rises each time.
    assert thresholds == sorted(thresholds) and thresholds[-1] > INITIAL_THRESHOLD
    assert thresholds[-1] <= PARAMS["thresholdCeiling"]


def test_consumer_takes_each_accepted_dataset_once(consensus, voting, vote, informant, gov, accounts):
    submission_id, members = voting
    vote(submission_id, {member: GOOD for member in members})
    consensus.finalize(submission_id, {"from": informant})
    rounds = accounts[8]
    with reverts("AccessControlUnauthorizedAccount"):
        consensus.consumeDatasets([submission_id], {"from": rounds})
    consensus.grantRole(consensus.CONSUMER_ROLE(), rounds, {"from": gov})
    assert consensus.pendingDatasetCount() == 1
    tx = consensus.consumeDatasets([submission_id], {"from": rounds})
    assert list(tx.events["DatasetsConsumed"]["ids"]) == [submission_id]
    assert consensus.pendingDatasetCount() == 0
    with reverts("NotPending", submission_id):
        consensus.consumeDatasets([submission_id], {"from": rounds})
    with reverts("NotPending", submission_id + 1):
        consensus.consumeDatasets([submission_id + 1], {"from": rounds})


# ------------------------------------------------------------------ governance


def test_params_are_validated_and_governed(consensus, deploy_consensus, gov, outsider):
    with reverts("InvalidParams"):
        deploy_consensus(weights=[3_000, 2_000, 2_000, 2_000, 999])
    with reverts("InvalidParams"):
        deploy_consensus(params=params_tuple(thresholdFloor=9_000))
    with reverts("InvalidParams"):
        deploy_consensus(params=params_tuple(expirySlashBps=10_001))
    with reverts("InvalidParams"):
        consensus.setParams(params_tuple(expirySlashBps=10_001), WEIGHTS, {"from": gov})
    with reverts("InvalidParams"):  # the seed block would hold the submission: its proposer picks it
        consensus.setParams(params_tuple(seedDelay=0), WEIGHTS, {"from": gov})
    with reverts("InvalidParams"):
        deploy_consensus(initial_threshold=9_000)
    with reverts("AccessControlUnauthorizedAccount"):
        consensus.setParams(params_tuple(), WEIGHTS, {"from": outsider})
    consensus.setParams(params_tuple(thresholdFloor=6_000), WEIGHTS, {"from": gov})
    assert consensus.threshold() == 6_000
    assert consensus.getParams()["thresholdFloor"] == 6_000
    with reverts("ZeroAddress"):
        consensus.setTreasury("0x" + "00" * 20, {"from": gov})
