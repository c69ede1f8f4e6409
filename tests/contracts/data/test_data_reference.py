"""DataConsensus against its Python reference, workers.protocol.consensus, through real submissions on a chain.

Hypothesis draws the governance parameters (quorum, tolerance, criteria weights, threshold rules, rewards,
penalties), a curator pool with random bonds (1 wei upward), and one to three submissions in a row, each with
its informant (sometimes a pool member, whom the draw must skip), bond and votes: honest clusters, outliers and
the extremes 0 and 100, some curators silent (no commit, or a commit never revealed), sometimes panels nobody
draws within blockhash's horizon (each such submission expires, part of the informant's bond slashed, and the
informant submits again), and sometimes new loss terms (reject slash, expiry slash, penalty rates) that
governance sets while a submission is under way: they must apply to the submissions made after it, never to
the one under way. Each submission runs through the contract (submit, expiries, draw, commit, reveal,
finalize, every seat settled, the informant paid) and every result must equal the reference's: the expiry
slashes, the panel (workers.protocol.sortition), quorum, consensus, value, the outcome, the threshold and its
EMA, the informant's reward or slash, the curators' payout, each seat's reward or penalty, and where every
token went.
Results are read from views, balances and the `Finalized` event.

Brownie's hypothesis integration is broken in this build: hypothesis runs inside the test and every example
starts from the same chain snapshot.
"""

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contracts.conftest import CURATOR, DSH, INFORMANT, ROLES, reverts, use_unique_gas_price
from tests.contracts.data.conftest import CID, CURATOR_MNEMONIC, PARAMS, WEIGHTS, params_tuple
from workers.protocol import constants
from workers.protocol.consensus import expiry_slash, next_threshold, payouts, seat_settlement, tally
from workers.protocol.sortition import draw_panel, panel_seed, seed_expired

CURATORS = 15
CURATOR_STAKE = 20_000 * DSH
INFORMANT_STAKE = 5_000 * DSH
#: Hypothesis examples (Ganache runs fewer through DEEPSHARD_STATEFUL_EXAMPLES).
EXAMPLES = int(os.environ.get("DEEPSHARD_STATEFUL_EXAMPLES", "30"))
STATUS = {name: index for index, name in enumerate(constants.DATA_STATUSES)}

bps = st.one_of(st.sampled_from([0, 1, 5_000, 10_000]), st.integers(0, 10_000))
uint16 = st.one_of(st.sampled_from([0, 65_535]), st.integers(0, 65_535))
pool_bonds = st.one_of(
    st.sampled_from([1, 1_000 * DSH, CURATOR_STAKE]), st.integers(1, CURATOR_STAKE), st.integers(1, 10**6)
)


@st.composite
def criteria_weights(draw):
    """Five bps weights summing to 10,000 (sometimes all on one criterion)."""
    cuts = sorted(draw(st.lists(st.integers(0, 10_000), min_size=4, max_size=4)))
    return [b - a for a, b in zip([0, *cuts], [*cuts, 10_000], strict=True)]


@st.composite
def rules(draw):
    # Wide bounds and moderate gains often, so that the threshold's own move (not only its clamp) is compared.
    floor = draw(st.one_of(st.just(0), st.integers(0, 5_000), bps))
    ceiling = draw(st.one_of(st.just(10_000), st.integers(floor, 10_000)))
    return dict(
        quorumBps=draw(bps),
        toleranceL1=draw(st.one_of(st.sampled_from([0, 50, 500]), st.integers(0, 500))),
        incoherentPenaltyBps=draw(bps),
        noRevealPenaltyBps=draw(bps),
        rejectSlashBps=draw(bps),
        expirySlashBps=draw(bps),
        curatorShareBps=draw(bps),
        thresholdFloor=floor,
        thresholdCeiling=ceiling,
        targetAcceptanceBps=draw(bps),
        emaAlphaBps=draw(bps),
        thresholdGainBps=draw(st.one_of(st.integers(0, 5_000), uint16)),
        minBond=1,
        minPoolBond=1,
        # Up to far beyond the epoch's budget, so that rewards are also capped by Emission.
        maxReward=draw(st.one_of(st.sampled_from([0, 1_000 * DSH, 2**88 - 1]), st.integers(0, 10**6 * DSH))),
    )


@st.composite
def submission(draw):
    """One submission, drawn whole before it runs (what the chain decides, such as the panel's size, must not
    steer the drawing, or hypothesis could not replay an example): the informant (0: one outside the pool,
    i: the i-th pool member, wrapped), its bond, and per possible seat a behaviour and five scores near the
    submission's centre, anywhere, or at the extremes 0 and 100."""
    centre = draw(st.lists(st.integers(0, 100), min_size=5, max_size=5))
    seats = []
    for _ in range(constants.MAX_CURATORS):
        behaviour = draw(st.sampled_from(["reveal", "reveal", "reveal", "commit only", "silent"]))
        kind = draw(st.sampled_from(["honest", "honest", "honest", "outlier", "extreme"]))
        if kind == "honest":
            scores = [min(100, max(0, c + draw(st.integers(-3, 3)))) for c in centre]
        elif kind == "outlier":
            scores = draw(st.lists(st.integers(0, 100), min_size=5, max_size=5))
        else:
            scores = draw(st.lists(st.sampled_from([0, 100]), min_size=5, max_size=5))
        seats.append((behaviour, scores))
    later = {}
    if draw(st.booleans()):
        later = dict(
            incoherentPenaltyBps=draw(bps),
            noRevealPenaltyBps=draw(bps),
            rejectSlashBps=draw(bps),
            expirySlashBps=draw(bps),
        )
    return dict(
        informant=draw(st.integers(0, CURATORS)),
        # At most a third of the stake, so that three slashed submissions in a row can still be bonded.
        bond=draw(st.one_of(st.just(1), st.integers(1, INFORMANT_STAKE // 3))),
        seats=seats,
        later=later,
        expiries=draw(st.sampled_from([0, 0, 1, 2])),
    )


# Full pools often: the largest panels and the longest loops are the interesting ones.
pools = st.one_of(
    st.lists(pool_bonds, min_size=CURATORS, max_size=CURATORS), st.lists(pool_bonds, min_size=1, max_size=CURATORS)
)


def test_protocol_constants_match_the_contract(consensus):
    assert consensus.MAX_PANEL() == constants.MAX_CURATORS
    assert consensus.MAX_DRAWS() == constants.DRAWS_PER_SEAT * constants.MAX_CURATORS
    assert consensus.CRITERIA() == constants.CRITERIA == len(constants.CRITERIA_NAMES)
    assert consensus.MAX_SCORE() == constants.MAX_SCORE
    assert consensus.MAX_CID_LENGTH() == constants.MAX_CID_LENGTH


def test_data_consensus_matches_the_reference(
    consensus, vote, past_reveal, staked, registry, token, emission, treasury, gov, accounts, chain, web3
):
    curators = accounts.from_mnemonic(CURATOR_MNEMONIC, count=CURATORS, offset=40)
    outside_informant = accounts[3]
    staked(outside_informant, INFORMANT, INFORMANT_STAKE)
    for curator in curators:
        accounts[0].transfer(curator, "1 ether")
        staked(curator, CURATOR, CURATOR_STAKE)
        staked(curator, INFORMANT, INFORMANT_STAKE)
    stakers = [outside_informant, *curators]
    keeper = accounts[8]  # settles seats for others: rewards still go to the seat's curator
    chain.snapshot()

    # No example database: block hashes follow the wall clock, so a stored example replays neither its panel
    # nor its failure, and stale ones from earlier strategies only cost time.
    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(rules(), criteria_weights(), pools, st.lists(submission(), min_size=1, max_size=3))
    def check(params, weights, pool_bond_list, submissions):
        chain.revert()
        use_unique_gas_price()
        params = dict(params)  # governance changes it between submissions
        consensus.setParams(params_tuple(**params), weights, {"from": gov})
        # setParams clamps the threshold into the new bounds; the EMA starts where the deployment put it.
        threshold = min(max(consensus.threshold(), params["thresholdFloor"]), params["thresholdCeiling"])
        ema = PARAMS["targetAcceptanceBps"]
        assert (consensus.threshold(), consensus.acceptanceEma()) == (threshold, ema)

        pool = curators[: len(pool_bond_list)]
        bonds = {}
        for curator, bond in zip(pool, pool_bond_list, strict=True):
            bonds[curator.address] = bond
            consensus.joinPool(bond, {"from": curator})
        tree_order = [str(consensus.poolMemberAt(i)) for i in range(1, consensus.poolMemberCount() + 1)]
        dust = 0  # what rounding leaves in the contract once every seat is settled

        for drawn in submissions:
            informant = pool[(drawn["informant"] - 1) % len(pool)] if drawn["informant"] else outside_informant
            bond = drawn["bond"]
            informant_stake = registry.stakeOf(informant, INFORMANT)
            # Governance changes the loss terms while a submission is under way: `terms` stay that one's.
            for attempt in range(drawn["expiries"] + 1):
                submission_id = consensus.submit(CID, bond, {"from": informant}).return_value
                terms = dict(params)  # what the submission risks, fixed now
                if drawn["later"]:
                    params.update(drawn["later"])
                    consensus.setParams(params_tuple(**params), weights, {"from": gov})
                if attempt == drawn["expiries"]:
                    break
                # Nobody draws within the horizon: the submission expires, and the informant submits again.
                seed_block = consensus.getSubmission(submission_id)["seedBlock"]
                chain.mine(seed_block + constants.BLOCKHASH_HORIZON - chain.height)
                treasury_balance = token.balanceOf(treasury)
                tx = consensus.drawPanel(submission_id, {"from": keeper})
                assert seed_expired(seed_block, tx.block_number) and "PanelDrawn" not in tx.events
                slashed = expiry_slash(bond, terms["expirySlashBps"])
                assert tx.events["SubmissionExpired"]["slashed"] == slashed
                assert consensus.getSubmission(submission_id)["status"] == STATUS["Expired"]
                assert token.balanceOf(treasury) == treasury_balance + slashed
                assert registry.lockedBy(consensus, informant, INFORMANT) == 0
                informant_stake -= slashed
                assert registry.stakeOf(informant, INFORMANT) == informant_stake
                if bond > informant_stake:  # nothing left to bond again
                    break
            if consensus.getSubmission(submission_id)["status"] != STATUS["AwaitingPanel"]:
                break
            seed_block = consensus.getSubmission(submission_id)["seedBlock"]
            if chain.height < seed_block:  # the draw lands in the block after the seed block or later
                chain.mine(seed_block - chain.height)
            seed = panel_seed(web3.eth.get_block(seed_block)["hash"], submission_id, consensus.address)
            try:
                expected_panel = draw_panel(
                    seed,
                    tree_order,
                    bonds,
                    informant.address,
                    constants.MAX_CURATORS,
                    constants.DRAWS_PER_SEAT * constants.MAX_CURATORS,
                )
            except ValueError:  # every ticket landed on the informant: nobody to seat
                # As a call (Ganache cannot trace the reverted draw loop), which Ganache runs at the latest
                # block's number: mine one so that the seed block is in the past there too.
                chain.mine(1)
                with reverts("NoEligibleMembers"):
                    consensus.drawPanel.call(submission_id, {"from": keeper})
                break
            consensus.drawPanel(submission_id, {"from": keeper})
            members, panel_weights = consensus.panelOf(submission_id)
            assert list(members) == list(expected_panel)
            assert list(panel_weights) == list(expected_panel.values())  # one draw = one vote
            seated = [next(c for c in pool if c.address == m) for m in members]

            behaviour = [b for b, _ in drawn["seats"][: len(seated)]]
            votes = {c: scores for c, (b, scores) in zip(seated, drawn["seats"], strict=False) if b != "silent"}
            silent = [c for c, b in zip(seated, behaviour, strict=True) if b == "commit only"]
            vote(submission_id, votes, skip_reveal=silent)
            revealed = [b == "reveal" for b in behaviour]
            if not all(revealed):
                past_reveal(submission_id)
            stored = consensus.getSubmission(submission_id)
            assert stored["rejectSlashBps"] == terms["rejectSlashBps"]
            assert stored["expirySlashBps"] == terms["expirySlashBps"]

            expected = tally(
                [votes[c] for c, r in zip(seated, revealed, strict=True) if r],
                [w for w, r in zip(panel_weights, revealed, strict=True) if r],
                sum(panel_weights),
                quorum_bps=params["quorumBps"],
                tolerance_l1=params["toleranceL1"],
                criteria_weights=weights,
                threshold=threshold,
            )
            if expected.quorum:
                status = "Accepted" if expected.accepted else "Rejected"
                next_, next_ema = next_threshold(
                    threshold,
                    ema,
                    expected.accepted,
                    ema_alpha_bps=params["emaAlphaBps"],
                    target_acceptance_bps=params["targetAcceptanceBps"],
                    threshold_gain_bps=params["thresholdGainBps"],
                    threshold_floor=params["thresholdFloor"],
                    threshold_ceiling=params["thresholdCeiling"],
                )
            else:
                status, next_, next_ema = "NoQuorum", threshold, ema
            paid = payouts(
                expected,
                bond,
                max_reward=params["maxReward"],
                available=emission.available(),
                curator_share_bps=params["curatorShareBps"],
                reject_slash_bps=terms["rejectSlashBps"],
            )
            before = dict(
                treasury=token.balanceOf(treasury), module=token.balanceOf(consensus), supply=token.totalSupply()
            )

            event = consensus.finalize(submission_id, {"from": keeper}).events["Finalized"]
            assert event["status"] == STATUS[status]
            assert list(event["consensus"]) == list(expected.consensus or [0] * 5)
            assert event["value"] == expected.value
            assert (event["threshold"], event["nextThreshold"]) == (threshold, next_)
            assert (consensus.threshold(), consensus.acceptanceEma()) == (next_, next_ema)
            threshold, ema = next_, next_ema
            stored = consensus.getSubmission(submission_id)
            assert stored["status"] == STATUS[status] and stored["value"] == expected.value
            assert list(consensus.consensusOf(submission_id)) == list(expected.consensus or [0] * 5)
            assert stored["revealedWeight"] == sum(w for w, r in zip(panel_weights, revealed, strict=True) if r)
            assert stored["coherentWeight"] == expected.coherent_weight
            assert stored["informantReward"] == paid.informant_reward
            assert stored["curatorPayout"] == paid.curator_payout
            # The informant: bond released, less the slash of a rejected dataset.
            assert registry.stakeOf(informant, INFORMANT) == informant_stake - paid.informant_slashed
            assert registry.lockedOf(informant, INFORMANT) == 0
            to_treasury = paid.informant_slashed if paid.informant_slashed and not expected.coherent_weight else 0
            assert token.balanceOf(treasury) == before["treasury"] + to_treasury
            assert token.totalSupply() == before["supply"] + paid.emitted
            assert token.balanceOf(consensus) == before["module"] + paid.emitted + paid.informant_slashed - to_treasury

            coherent = iter(expected.coherent)
            rewards = 0
            for seat, curator in enumerate(seated):
                reward, penalty = seat_settlement(
                    revealed=revealed[seat],
                    quorum=expected.quorum,
                    coherent=next(coherent) if revealed[seat] else False,
                    weight=panel_weights[seat],
                    bond=bonds[curator.address],
                    curator_payout=paid.curator_payout,
                    coherent_weight=expected.coherent_weight,
                    incoherent_penalty_bps=terms["incoherentPenaltyBps"],
                    no_reveal_penalty_bps=terms["noRevealPenaltyBps"],
                )
                balance, stake, treasury_balance = (
                    token.balanceOf(curator),
                    registry.stakeOf(curator, CURATOR),
                    token.balanceOf(treasury),
                )
                consensus.claim(submission_id, seat, {"from": keeper})
                assert token.balanceOf(curator) == balance + reward
                assert registry.stakeOf(curator, CURATOR) == stake - penalty
                assert token.balanceOf(treasury) == treasury_balance + penalty
                bonds[curator.address] -= penalty
                assert consensus.poolMembers(curator)["bond"] == bonds[curator.address]
                rewards += reward
            dust += paid.curator_payout - rewards
            if paid.informant_reward:
                balance = token.balanceOf(informant)
                consensus.claimInformantReward(submission_id, {"from": informant})
                assert token.balanceOf(informant) == balance + paid.informant_reward

        # Every token is where the model says: the module holds only rounding dust, the registry the stakes.
        assert token.balanceOf(consensus) == dust
        assert consensus.poolWeight() == sum(bonds.values())
        stakes = sum(registry.stakeOf(s, role) for s in stakers for role in (CURATOR, INFORMANT))
        pending = sum(registry.pendingWithdrawal(s, role)[0] for s in stakers for role in (CURATOR, INFORMANT))
        assert token.balanceOf(registry) == stakes + pending == sum(registry.totalStaked(r) for r in ROLES)

    check()


def test_default_weights_are_the_deployed_ones(consensus):
    assert [consensus.criteriaWeights(c) for c in range(constants.CRITERIA)] == WEIGHTS
