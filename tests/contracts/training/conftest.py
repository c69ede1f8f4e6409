"""Fixtures for TrainingRounds: the module wired to the registry, Emission, DataConsensus and ModelRegistry,
accepted datasets to train on, trainers and a pool of evaluators, and helpers that drive a round."""

import pytest
from eth_utils import keccak

from tests.contracts.conftest import DSH, EVALUATOR, TRAINER
from tests.contracts.data.conftest import *  # noqa: F401,F403  (consensus, pool, informant, submit, vote ...)
from tests.contracts.data.conftest import GOOD

# Public, test-only mnemonic for deterministic trainer and evaluator accounts.
ROLE_MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"
GENESIS_CID = bytes.fromhex("01551220") + keccak(b"genesis weights")
SPEC_HASH = keccak(b"training spec")
TRAINER_BOND = 1_000 * DSH
EVALUATOR_BOND = 2_000 * DSH
K = 16
HONEST = [1_000 + 10 * k for k in range(K)]
POISONED = [5_000 - 10 * k for k in range(K)]

ROUND_PARAMS = dict(
    trainCommitWindow=40,  # room for sixteen trainers, one block per transaction on a dev chain
    trainRevealWindow=40,
    evalCommitWindow=20,
    evalRevealWindow=20,
    seedDelay=2,
    minBatch=1,
    maxBatch=4,
    minAccepted=2,
    tolerance=400,
    evaluatorTolerance=400,
    outlierSlashBps=10_000,
    evaluatorShareBps=2_000,
    incoherentPenaltyBps=200,
    noRevealPenaltyBps=500,
    trainerBond=TRAINER_BOND,
    minPoolBond=1_000 * DSH,
    roundReward=5_000 * DSH,
)


def round_params(**overrides):
    return tuple({**ROUND_PARAMS, **overrides}.values())


def delta_cid(name):
    return bytes.fromhex("01551220") + keccak(name.encode())


def noisy(fingerprint, seed):
    """An honest fingerprint as another machine would measure it: a few units off per coordinate."""
    return [value + ((seed * 7 + k * 3) % 5) - 2 for k, value in enumerate(fingerprint)]


@pytest.fixture(scope="module")
def model_registry(ModelRegistry, deployer, gov):
    return ModelRegistry.deploy(gov, GENESIS_CID, {"from": deployer})


@pytest.fixture(scope="module")
def deploy_rounds(TrainingRounds, registry, emission, token, consensus, model_registry, deployer, gov, treasury):
    def deploy(params=None):
        rounds = TrainingRounds.deploy(
            registry, emission, token, consensus, model_registry, gov, treasury, params or round_params(),
            {"from": deployer},
        )
        registry.grantRole(registry.MODULE_ROLE(), rounds, {"from": gov})
        emission.grantRole(emission.DRAWER_ROLE(), rounds, {"from": gov})
        consensus.grantRole(consensus.CONSUMER_ROLE(), rounds, {"from": gov})
        model_registry.grantRole(model_registry.REGISTRAR_ROLE(), rounds, {"from": gov})
        return rounds

    return deploy


@pytest.fixture(scope="module")
def rounds(deploy_rounds):
    return deploy_rounds()


@pytest.fixture(scope="module")
def accepted_datasets(consensus, pool, informant, submit, panel, vote):
    """Four datasets accepted by the curator pool, ready to be trained on."""
    ids = []
    for _ in range(4):
        submission_id = submit(informant, bond=100 * 10**18)
        vote(submission_id, {member: GOOD for member in panel(submission_id, pool)})
        consensus.finalize(submission_id, {"from": informant})
        ids.append(submission_id)
    return ids


@pytest.fixture(scope="module")
def trainers(accounts, staked, deployer):
    members = accounts.from_mnemonic(ROLE_MNEMONIC, count=16)
    for member in members:
        deployer.transfer(member, "1 ether")
        staked(member, TRAINER, 2 * TRAINER_BOND)
    return members


@pytest.fixture(scope="module")
def evaluators(accounts, staked, deployer, rounds):
    """Twenty evaluators with equal bonds in the pool, so that a panel of nine is drawn in practice."""
    members = accounts.from_mnemonic(ROLE_MNEMONIC, count=20, offset=16)
    for member in members:
        deployer.transfer(member, "1 ether")
        staked(member, EVALUATOR, 2 * EVALUATOR_BOND)
        rounds.joinPool(EVALUATOR_BOND, {"from": member})
    return members


@pytest.fixture
def open_round(rounds, accepted_datasets, informant):
    """Factory: opens a round on the next unused accepted datasets (per test: the chain is reverted after)."""
    used = []

    def open_round(batch=1, opener=informant):
        ids = accepted_datasets[len(used):len(used) + batch]
        used.extend(ids)
        return rounds.openRound(ids, SPEC_HASH, {"from": opener}).return_value

    return open_round


def salt(account, round_id):
    return keccak(f"{account.address}/{round_id}".encode())


@pytest.fixture(scope="module")
def train(rounds, chain):
    """Factory: trainers commit then (unless listed in `silent`) reveal their delta CIDs."""

    def train(round_id, deltas, silent=()):
        for trainer, cid in deltas.items():
            rounds.commitDelta(round_id, rounds.deltaCommitmentFor(cid, salt(trainer, round_id), trainer),
                               {"from": trainer})
        mine_past(chain, rounds.getRound(round_id)["trainCommitDeadline"])
        for trainer, cid in deltas.items():
            if trainer not in silent:
                rounds.revealDelta(round_id, cid, salt(trainer, round_id), {"from": trainer})
        mine_past(chain, rounds.getRound(round_id)["panelSeedBlock"])

    return train


@pytest.fixture(scope="module")
def evaluate(rounds, chain):
    """Factory: draws the panel, then each evaluator commits and reveals its fingerprints (one per delta)."""

    def evaluate(round_id, reports, silent=(), default=None):
        if rounds.getRound(round_id)["status"] == 1:  # not drawn yet
            rounds.drawEvaluators(round_id)
        panel, _ = rounds.panelOf(round_id)
        by_address = {e.address: e for e in reports} if reports else {}
        seated = [by_address.get(member) for member in panel]
        for evaluator in seated:
            if evaluator is None:
                continue
            fingerprints = reports[evaluator]
            commitment = rounds.fingerprintCommitmentFor(fingerprints, salt(evaluator, round_id), evaluator)
            rounds.commitFingerprints(round_id, commitment, {"from": evaluator})
        mine_past(chain, rounds.getRound(round_id)["evalCommitDeadline"])
        for evaluator in seated:
            if evaluator is None or evaluator in silent:
                continue
            rounds.revealFingerprints(round_id, reports[evaluator], salt(evaluator, round_id), {"from": evaluator})
        return panel

    return evaluate


def mine_past(chain, block):
    if chain.height <= block:
        chain.mine(block - chain.height + 1)


def seated_evaluators(rounds, round_id, evaluators):
    """The evaluator accounts on a round's panel, in seat order."""
    by_address = {e.address: e for e in evaluators}
    return [by_address[member] for member in rounds.panelOf(round_id)[0]]
