"""SortitionPanel, the commit-reveal panel both modules extend: one set of events and errors, and the behaviour
that became common when the two copies were merged (coherence is fixed when the panel is judged, a seat's record
is readable once revealed). A panel whose seed block fell out of blockhash's horizon is never reseeded: each module
ends its submission or round instead (tests/contracts/data, tests/contracts/training)."""

import json
from pathlib import Path

import pytest

from tests.contracts.conftest import (
    BOND,
    CURATOR,
    CURATOR_MNEMONIC,
    CURATOR_STAKE,
    EVALUATOR_BOND,
    GOOD,
    HONEST,
    INFORMANT,
    JUNK,
    PARAMS,
    POOL_BOND,
    ROUND_PARAMS,
    WEIGHTS,
    delta_cid,
    mine_past,
    params_tuple,
    reverts,
    round_params,
    salt,
    salt_for,
    seated_evaluators,
)

BUILD = Path(__file__).resolve().parents[3] / "build" / "contracts"
PANEL_EVENTS = {
    "PanelDrawn": "PanelDrawn(uint256,address[],uint256,uint256)",
    "Committed": "Committed(uint256,address)",
    "Revealed": "Revealed(uint256,address)",
    "Settled": "Settled(uint256,address,uint256,uint256)",
}
# Names of the evaluator panel's events before the merge, and the reseed that let an undrawn panel be skipped for
# free; workers must not find them any more.
RETIRED_EVENTS = {
    "EvaluatorsDrawn",
    "FingerprintsCommitted",
    "FingerprintsRevealed",
    "EvaluatorSettled",
    "PanelReseeded",
}


def abi_of(name):
    return json.loads((BUILD / f"{name}.json").read_text())["abi"]


def signature(entry):
    return f"{entry['name']}({','.join(i['type'] for i in entry['inputs'])})"


@pytest.mark.parametrize("name", ["DataConsensus", "TrainingRounds"])
def test_both_modules_expose_the_panel_events_and_errors(name):
    abi = abi_of(name)
    events = {e["name"]: e for e in abi if e["type"] == "event"}
    assert {name: signature(events[name]) for name in PANEL_EVENTS} == PANEL_EVENTS
    assert [i["indexed"] for i in events["Settled"]["inputs"]] == [True, True, False, False]
    assert not RETIRED_EVENTS & set(events)
    errors = {signature(e) for e in abi if e["type"] == "error"}
    panel_errors = {signature(e) for e in abi_of("SortitionPanel") if e["type"] == "error"}
    assert panel_errors <= errors
    assert {"WindowClosed()", "WindowNotOpen()", "WrongStatus(uint8)", "TooEarly(uint256)"} <= panel_errors
    assert not {"CommitClosed()", "RevealNotOpen()", "RevealClosed()"} & errors


# ------------------------------------------------------------------ the evaluator panel (TrainingRounds)


def test_evaluator_commit_and_reveal_events_and_windows(rounds, trainers, evaluators, open_round, train, chain):
    round_id = open_round()
    train(round_id, {t: delta_cid(f"w{i}") for i, t in enumerate(trainers[:2])})
    rounds.drawEvaluators(round_id)
    first, second = seated_evaluators(rounds, round_id, evaluators)[:2]
    reports = [HONEST, HONEST]
    commitment = rounds.fingerprintCommitmentFor(reports, salt(first, round_id), first)
    tx = rounds.commitFingerprints(round_id, commitment, {"from": first})
    assert tx.events["Committed"]["id"] == round_id and tx.events["Committed"]["member"] == first
    with reverts("WindowNotOpen"):
        rounds.revealFingerprints(round_id, reports, salt(first, round_id), {"from": first})
    mine_past(chain, rounds.getRound(round_id)["evalCommitDeadline"])
    with reverts("WindowClosed"):
        rounds.commitFingerprints(round_id, commitment, {"from": second})
    tx = rounds.revealFingerprints(round_id, reports, salt(first, round_id), {"from": first})
    assert tx.events["Revealed"]["id"] == round_id and tx.events["Revealed"]["member"] == first
    mine_past(chain, rounds.getRound(round_id)["evalRevealDeadline"])
    with reverts("WindowClosed"):
        rounds.revealFingerprints(round_id, reports, salt(first, round_id), {"from": first})


def test_fingerprints_of_a_seat_read_as_zeros_until_revealed(rounds, trainers, evaluators, open_round, train, chain):
    round_id = open_round()
    train(round_id, {t: delta_cid(f"z{i}") for i, t in enumerate(trainers[:2])})
    rounds.drawEvaluators(round_id)
    evaluator = seated_evaluators(rounds, round_id, evaluators)[0]
    seat, _ = rounds.seatOf(round_id, evaluator)
    reports = [HONEST, [-v for v in HONEST]]
    rounds.commitFingerprints(
        round_id, rounds.fingerprintCommitmentFor(reports, salt(evaluator, round_id), evaluator), {"from": evaluator}
    )
    # Until the reveal the seat's slot holds the commitment, which must not read as a fingerprint.
    assert list(rounds.fingerprintOf(round_id, seat, 0)) == [0] * 16
    mine_past(chain, rounds.getRound(round_id)["evalCommitDeadline"])
    rounds.revealFingerprints(round_id, reports, salt(evaluator, round_id), {"from": evaluator})
    assert [list(rounds.fingerprintOf(round_id, seat, d)) for d in range(3)] == reports + [[0] * 16]
    assert list(rounds.fingerprintOf(round_id, 15, 0)) == [0] * 16


# ------------------------------------------------------------------ the curator panel (DataConsensus)


@pytest.fixture
def voting(consensus, pool, informant, submit, panel):
    submission_id = submit(informant)
    return submission_id, panel(submission_id, pool)


def test_commit_before_the_draw_finds_no_seat(consensus, pool, informant):
    submission_id = consensus.submit(b"\x01" * 36, 100 * 10**18, {"from": informant}).return_value
    with reverts("NotOnPanel"):
        consensus.commit(submission_id, b"\x01" * 32, {"from": pool[0]})


def test_scores_of_a_seat_are_readable_once_revealed(consensus, voting, vote):
    submission_id, members = voting
    vote(submission_id, {members[0]: GOOD, members[1]: JUNK}, skip_reveal=(members[1],))
    assert list(consensus.scoresOf(submission_id, 0)) == GOOD
    assert list(consensus.scoresOf(submission_id, 1)) == [0] * 5  # committed, not revealed
    assert list(consensus.scoresOf(submission_id, 2)) == [0] * 5  # silent


def test_coherence_is_fixed_when_the_panel_is_judged(consensus, token, voting, vote, informant, gov):
    """A seat's coherence is decided with the tolerance in force at `finalize`, the same one that fixed the
    coherent weight its reward is divided by; a later governance change cannot turn a coherent seat into a
    penalised one, nor make the seats' rewards add up to more than the payout."""
    submission_id, members = voting
    ballots = {member: GOOD for member in members}
    ballots[members[0]] = [score - 5 for score in GOOD]  # 25 points from the consensus, within 50
    vote(submission_id, ballots)
    consensus.finalize(submission_id, {"from": informant})
    consensus.setParams(params_tuple(toleranceL1=0), WEIGHTS, {"from": gov})
    tx = consensus.claim(submission_id, 0, {"from": informant})
    stored = consensus.getSubmission(submission_id)
    assert tx.events["Settled"]["penalty"] == 0
    draws = consensus.panelOf(submission_id)[1][0]  # the seat's weight: its number of draws
    assert tx.events["Settled"]["reward"] == stored["curatorPayout"] * draws // stored["coherentWeight"] > 0
    assert token.balanceOf(members[0]) == tx.events["Settled"]["reward"]


def test_a_panel_of_more_than_sixteen_seats_commits_reveals_and_settles_every_seat(
    accounts, chain, consensus, pool, staked, informant, submit, vote
):
    """Seat masks are 32 bits: 31 votes over 55 equal curators (the fixture's 15 and 40 more) seat about 24 of them
    (at most 16 with probability 5e-5, the same on every run of a fresh chain; the assertion says so). Seats from
    16 up reveal, stay silent, are judged coherent or incoherent and settle exactly once, as the low ones do; with
    16-bit masks their bits would be lost (a high seat's reveal not counted, its coherence and its settlement
    forgotten)."""
    curators = accounts.from_mnemonic(CURATOR_MNEMONIC, count=40, offset=200)
    for curator in curators:
        accounts[0].transfer(curator, "1 ether")
        staked(curator, CURATOR, CURATOR_STAKE)
        consensus.joinPool(POOL_BOND, {"from": curator})
    submission_id = submit(informant)
    addresses, weights = consensus.panelOf(submission_id)
    by_address = {curator.address: curator for curator in [*pool, *curators]}
    members = [by_address[address] for address in addresses]
    size = len(members)
    assert sum(weights) == 31 and size > 16, "a panel of more than 16 seats (missed with probability 5e-5)"
    incoherent, silent = members[16], members[-1]  # seats 16 and size - 1, both above bit 15
    ballots = {member: GOOD for member in members}
    ballots[incoherent] = JUNK
    vote(submission_id, ballots, skip_reveal=(silent,))
    everyone = (1 << size) - 1
    assert consensus.getSubmission(submission_id)["revealedMask"] == everyone & ~(1 << (size - 1))
    with reverts("AlreadyRevealed"):  # its bit is kept: a 16-bit mask would lose it (then CommitmentMismatch)
        consensus.reveal(submission_id, JUNK, salt_for(incoherent, submission_id), {"from": incoherent})
    mine_past(chain, consensus.getSubmission(submission_id)["revealDeadline"])
    consensus.finalize(submission_id, {"from": informant})
    stored = consensus.getSubmission(submission_id)
    assert stored["status"] == 3  # Accepted
    coherent_weight = sum(w for member, w in zip(members, weights, strict=True) if member not in (incoherent, silent))
    assert stored["coherentWeight"] == coherent_weight
    for seat, (member, weight) in enumerate(zip(members, weights, strict=True)):
        settled = consensus.claim(submission_id, seat, {"from": informant}).events["Settled"]
        bond = POOL_BOND  # every seat's bond before its own penalty
        if member == silent:
            expected = (0, bond * PARAMS["noRevealPenaltyBps"] // 10_000)
        elif member == incoherent:
            expected = (0, bond * PARAMS["incoherentPenaltyBps"] // 10_000)
        else:
            expected = (stored["curatorPayout"] * weight // coherent_weight, 0)
        assert (settled["member"], settled["reward"], settled["penalty"]) == (member, *expected), seat
        assert expected != (0, 0)
    assert consensus.getSubmission(submission_id)["settledMask"] == everyone
    for seat in (16, size - 1):
        with reverts("AlreadySettled"):
            consensus.claim(submission_id, seat, {"from": informant})


# ------------------------------------------------------------------ settlement terms fixed when a panel opens

# What governance sets mid-panel: every rate far from the one the panel opened with.
NEW_PENALTIES = dict(incoherentPenaltyBps=5_000, noRevealPenaltyBps=9_000)


@pytest.mark.parametrize("when", ["before the draw", "after finalize"])
def test_curator_seats_settle_at_the_rates_their_panel_opened_with(
    when, consensus, pool, informant, submit, panel, vote, gov, chain
):
    """Governance raises both penalty rates while a submission is open (before its panel is drawn, or once it
    is finalized): an incoherent and a silent seat still lose the rates in force when it was submitted. A
    submission made after the change settles at the new rates."""
    if when == "before the draw":
        submission_id = consensus.submit(b"\x01" * 36, 100 * 10**18, {"from": informant}).return_value
        consensus.setParams(params_tuple(**NEW_PENALTIES), WEIGHTS, {"from": gov})
        mine_past(chain, consensus.getSubmission(submission_id)["seedBlock"])
        consensus.drawPanel(submission_id, {"from": informant})
    else:
        submission_id = submit(informant)
    members = panel(submission_id, pool)
    ballots = {member: GOOD for member in members}
    ballots[members[0]] = JUNK  # far outside the tolerance: incoherent
    vote(submission_id, ballots, skip_reveal=(members[1],))
    mine_past(chain, consensus.getSubmission(submission_id)["revealDeadline"])
    consensus.finalize(submission_id, {"from": informant})
    if when == "after finalize":
        consensus.setParams(params_tuple(**NEW_PENALTIES), WEIGHTS, {"from": gov})
    incoherent = consensus.claim(submission_id, 0, {"from": informant}).events["Settled"]
    silent = consensus.claim(submission_id, 1, {"from": informant}).events["Settled"]
    assert incoherent["penalty"] == POOL_BOND * PARAMS["incoherentPenaltyBps"] // 10_000
    assert silent["penalty"] == POOL_BOND * PARAMS["noRevealPenaltyBps"] // 10_000

    later = submit(informant)
    seated = panel(later, pool)
    vote(later, {seated[0]: GOOD}, reveal=False)  # one commit, no reveal: no quorum, a silent seat
    mine_past(chain, consensus.getSubmission(later)["revealDeadline"])
    consensus.finalize(later, {"from": informant})
    bond = consensus.poolMembers(seated[0])["bond"]
    settled = consensus.claim(later, 0, {"from": informant}).events["Settled"]
    assert settled["penalty"] == bond * NEW_PENALTIES["noRevealPenaltyBps"] // 10_000


def test_a_rejected_informant_loses_the_rate_in_force_when_it_submitted(
    consensus, registry, token, voting, vote, informant, gov
):
    """Governance raises the reject slash to the whole bond during the vote: the informant still loses the
    share in force at its submission, and the coherent curators share exactly that."""
    submission_id, members = voting
    stake = registry.stakeOf(informant, INFORMANT)
    consensus.setParams(params_tuple(rejectSlashBps=10_000), WEIGHTS, {"from": gov})
    vote(submission_id, {member: JUNK for member in members})
    held = token.balanceOf(consensus)
    consensus.finalize(submission_id, {"from": informant})
    slashed = BOND * PARAMS["rejectSlashBps"] // 10_000
    assert registry.stakeOf(informant, INFORMANT) == stake - slashed
    assert registry.lockedOf(informant, INFORMANT) == 0
    assert consensus.getSubmission(submission_id)["curatorPayout"] == slashed == token.balanceOf(consensus) - held


@pytest.mark.parametrize("when", ["before the draw", "after finalize"])
def test_evaluator_seats_settle_at_the_rates_their_round_opened_with(
    when, rounds, trainers, evaluators, open_round, train, evaluate, chain, gov
):
    """The same for the evaluator panel: rates raised after the round opened (before its panel is drawn, or
    once it is finalized) do not apply to its seats."""
    round_id = open_round()
    train(round_id, {t: delta_cid(f"rates-{i}") for i, t in enumerate(trainers[:2])})
    if when == "before the draw":
        rounds.setParams(round_params(**NEW_PENALTIES), {"from": gov})
    rounds.drawEvaluators(round_id)
    seated = seated_evaluators(rounds, round_id, evaluators)
    reports = {member: [HONEST, HONEST] for member in seated}
    reports[seated[0]] = [[-v for v in HONEST]] * 2  # far outside the tolerance: incoherent
    evaluate(round_id, reports, silent=(seated[1],))
    mine_past(chain, rounds.getRound(round_id)["evalRevealDeadline"])
    rounds.finalize(round_id)
    if when == "after finalize":
        rounds.setParams(round_params(**NEW_PENALTIES), {"from": gov})
    incoherent = rounds.claimEvaluator(round_id, 0).events["Settled"]
    silent = rounds.claimEvaluator(round_id, 1).events["Settled"]
    assert incoherent["penalty"] == EVALUATOR_BOND * ROUND_PARAMS["incoherentPenaltyBps"] // 10_000
    assert silent["penalty"] == EVALUATOR_BOND * ROUND_PARAMS["noRevealPenaltyBps"] // 10_000


@pytest.mark.parametrize("name", ["consensus", "rounds"])
def test_treasury_is_governed_in_the_base(name, consensus, rounds, gov, outsider, treasury):
    contract = {"consensus": consensus, "rounds": rounds}[name]
    assert contract.treasury() == treasury
    with reverts("AccessControlUnauthorizedAccount"):
        contract.setTreasury(outsider, {"from": outsider})
    with reverts("ZeroAddress"):
        contract.setTreasury("0x" + "00" * 20, {"from": gov})
    contract.setTreasury(outsider, {"from": gov})
    assert contract.treasury() == outsider


def test_panel_parameters_are_validated_in_the_base(deploy_consensus, deploy_rounds):
    for broken in (
        dict(commitWindow=0),
        dict(revealWindow=0),
        dict(seedDelay=0),
        dict(minPoolBond=0),
        dict(noRevealPenaltyBps=10_001),
        dict(incoherentPenaltyBps=10_001),
    ):
        with reverts("InvalidParams"):
            deploy_consensus(params=params_tuple(**broken))
    for broken in (
        dict(evalCommitWindow=0),
        dict(evalRevealWindow=0),
        dict(seedDelay=0),
        dict(minPoolBond=0),
        dict(noRevealPenaltyBps=10_001),
        dict(incoherentPenaltyBps=10_001),
    ):
        with reverts("InvalidParams"):
            deploy_rounds(round_params(**broken))
