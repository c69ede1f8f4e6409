"""Fixtures for DataConsensus: a deployed consensus module wired to the registry and Emission, a pool of
fifteen curators, informants, and helpers that drive a submission through its phases."""

import pytest
from eth_utils import keccak

from tests.contracts.conftest import CURATOR, DSH, INFORMANT

# A public, test-only mnemonic: deterministic curator accounts make panel draws reproducible.
CURATOR_MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
POOL_SIZE = 15
CURATOR_STAKE = 3_000 * DSH
POOL_BOND = 2_000 * DSH
INFORMANT_STAKE = 1_000 * DSH
BOND = 500 * DSH
CID = bytes.fromhex("01551220") + keccak(b"dataset")  # a CIDv1 (raw, sha2-256) in binary form

PARAMS = dict(
    quorumBps=5_000,
    toleranceL1=50,
    incoherentPenaltyBps=100,
    noRevealPenaltyBps=500,
    rejectSlashBps=5_000,
    curatorShareBps=1_000,
    thresholdFloor=3_000,
    thresholdCeiling=8_000,
    targetAcceptanceBps=5_000,
    emaAlphaBps=2_000,
    thresholdGainBps=2_000,
    seedDelay=2,
    commitWindow=20,
    revealWindow=20,
    minBond=100 * DSH,
    minPoolBond=1_000 * DSH,
    maxReward=1_000 * DSH,
)
WEIGHTS = [3_000, 2_000, 2_000, 2_000, 1_000]
INITIAL_THRESHOLD = 5_000
GOOD = [80, 75, 70, 85, 70]
JUNK = [5, 10, 20, 10, 15]


def params_tuple(**overrides):
    return tuple({**PARAMS, **overrides}.values())


@pytest.fixture(scope="module")
def deploy_consensus(DataConsensus, registry, emission, token, deployer, gov, treasury):
    """Factory: a DataConsensus with overridable parameters, authorised on the registry and Emission."""

    def deploy(params=None, weights=WEIGHTS, initial_threshold=INITIAL_THRESHOLD):
        consensus = DataConsensus.deploy(
            registry, emission, token, gov, treasury, params or params_tuple(), weights, initial_threshold,
            {"from": deployer},
        )
        registry.grantRole(registry.MODULE_ROLE(), consensus, {"from": gov})
        emission.grantRole(emission.DRAWER_ROLE(), consensus, {"from": gov})
        return consensus

    return deploy


@pytest.fixture(scope="module")
def consensus(deploy_consensus):
    return deploy_consensus()


@pytest.fixture(scope="module")
def curator_accounts(accounts, deployer):
    members = accounts.from_mnemonic(CURATOR_MNEMONIC, count=POOL_SIZE)
    for member in members:
        deployer.transfer(member, "1 ether")
    return members


@pytest.fixture(scope="module")
def pool(consensus, staked, curator_accounts):
    """Fifteen curators with equal stake, all in the sortition pool."""
    for member in curator_accounts:
        staked(member, CURATOR, CURATOR_STAKE)
        consensus.joinPool(POOL_BOND, {"from": member})
    return curator_accounts


@pytest.fixture(scope="module")
def informant(accounts, staked):
    account = accounts[3]
    staked(account, INFORMANT, INFORMANT_STAKE)
    return account


@pytest.fixture(scope="module")
def submit(consensus, chain):
    """Factory: submits a dataset and draws its panel; returns the submission id."""

    def submit(informant, bond=BOND, cid=CID):
        tx = consensus.submit(cid, bond, {"from": informant})
        submission_id = tx.return_value
        chain.mine(PARAMS["seedDelay"])
        consensus.drawPanel(submission_id, {"from": informant})
        return submission_id

    return submit


def salt_for(curator, submission_id):
    return keccak(f"{curator.address}:{submission_id}".encode())


@pytest.fixture(scope="module")
def vote(consensus, chain):
    """Factory: commit for each (curator -> scores), move to the reveal window, reveal (unless told not to)."""

    def vote(submission_id, ballots, reveal=True, skip_reveal=()):
        for curator, scores in ballots.items():
            commitment = consensus.commitmentFor(scores, salt_for(curator, submission_id), curator)
            consensus.commit(submission_id, commitment, {"from": curator})
        to_reveal_window(submission_id)
        if reveal:
            for curator, scores in ballots.items():
                if curator not in skip_reveal:
                    consensus.reveal(submission_id, scores, salt_for(curator, submission_id), {"from": curator})

    def to_reveal_window(submission_id):
        deadline = consensus.getSubmission(submission_id)["commitDeadline"]
        if chain.height <= deadline:
            chain.mine(deadline - chain.height + 1)

    return vote


@pytest.fixture(scope="module")
def panel(consensus):
    """Factory: the curators seated on a submission's panel, as brownie accounts in seat order."""

    def panel(submission_id, pool):
        members, _ = consensus.panelOf(submission_id)
        by_address = {account.address: account for account in pool}
        return [by_address[member] for member in members]

    return panel


@pytest.fixture(scope="module")
def past_reveal(consensus, chain):
    def past_reveal(submission_id):
        deadline = consensus.getSubmission(submission_id)["revealDeadline"]
        if chain.height <= deadline:
            chain.mine(deadline - chain.height + 1)

    return past_reveal
