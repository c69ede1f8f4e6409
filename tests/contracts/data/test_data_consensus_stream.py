"""Long streams of all-good and all-junk submissions (and hypothesis-chosen mixes): the threshold stays within
its floor and ceiling, and every DSH token is accounted for after every submission.

Brownie's `state_machine` helper is broken in this build, so hypothesis runs directly and each example
starts from the same chain snapshot.
"""

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contracts.conftest import CURATOR, DSH, INFORMANT, use_unique_gas_price
from tests.contracts.data.conftest import CURATOR_MNEMONIC, GOOD, JUNK, PARAMS, salt_for

STREAM_CURATORS = 5
BOND = 100 * DSH
INFORMANT_STAKE = 20_000 * DSH
EXAMPLES = int(os.environ.get("DEEPSHARD_STATEFUL_EXAMPLES", "30")) // 6 or 1

streams = st.one_of(
    st.integers(min_value=8, max_value=14).map(lambda n: [True] * n),  # all good
    st.integers(min_value=8, max_value=14).map(lambda n: [False] * n),  # all junk
    st.lists(st.booleans(), min_size=6, max_size=12),  # mixed
)


def test_threshold_bounded_and_tokens_accounted(
    chain, accounts, deploy_consensus, token, registry, emission, staked, treasury, gov
):
    consensus = deploy_consensus()
    informant = accounts[3]
    staked(informant, INFORMANT, INFORMANT_STAKE)
    curators = accounts.from_mnemonic(CURATOR_MNEMONIC, count=STREAM_CURATORS, offset=20)
    for curator in curators:
        accounts[0].transfer(curator, "1 ether")
        staked(curator, CURATOR, 2_000 * DSH)
        consensus.joinPool(2_000 * DSH, {"from": curator})
    holders = [informant, treasury, gov, registry, consensus, *curators, *accounts]
    by_address = {curator.address: curator for curator in curators}
    chain.snapshot()

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(stream=streams)
    def run(stream):
        chain.revert()
        use_unique_gas_price()
        supply_before = token.totalSupply()
        minted = 0
        for good in stream:
            submission_id = consensus.submit(b"\x01" * 36, BOND, {"from": informant}).return_value
            chain.mine(PARAMS["seedDelay"])
            consensus.drawPanel(submission_id, {"from": informant})
            members = [by_address[m] for m in consensus.panelOf(submission_id)[0]]
            scores = GOOD if good else JUNK
            for member in members:
                salt = salt_for(member, submission_id)
                consensus.commit(submission_id, consensus.commitmentFor(scores, salt, member), {"from": member})
            chain.mine(consensus.getSubmission(submission_id)["commitDeadline"] - chain.height + 1)
            for member in members:
                consensus.reveal(submission_id, scores, salt_for(member, submission_id), {"from": member})
            consensus.finalize(submission_id, {"from": informant})
            outcome = consensus.getSubmission(submission_id)
            minted += outcome["informantReward"] + (outcome["curatorPayout"] if outcome["status"] == 3 else 0)
            for seat in range(len(members)):
                consensus.claim(submission_id, seat, {"from": informant})
            if outcome["informantReward"]:
                consensus.claimInformantReward(submission_id, {"from": informant})

            threshold = consensus.threshold()
            assert PARAMS["thresholdFloor"] <= threshold <= PARAMS["thresholdCeiling"]
            # Every token is somewhere we know of, and only Emission rewards changed the supply.
            assert sum(token.balanceOf(holder) for holder in set(holders)) == token.totalSupply()
            assert token.totalSupply() == supply_before + minted
            # Once every seat is settled, the consensus contract keeps only rounding dust (< 1 wei per seat).
            assert token.balanceOf(consensus) < len(stream) * STREAM_CURATORS
            # The registry holds exactly the stakes (nothing here is pending withdrawal).
            staked_total = sum(registry.stakeOf(informant, role) for role in (INFORMANT,)) + sum(
                registry.stakeOf(c, CURATOR) for c in curators
            )
            assert token.balanceOf(registry) == staked_total
        if all(stream):
            assert consensus.threshold() > 5_000  # accepting everything raised the bar
        if not any(stream):
            assert consensus.threshold() < 5_000  # rejecting everything lowered it

    run()
