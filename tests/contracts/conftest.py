"""Fixtures shared by every contract test (brownie, yearn-vaults style): roles and factories, then the data
consensus (a deployed DataConsensus, a curator pool, helpers that drive a submission through its phases) and the
training rounds (TrainingRounds wired to the registry, Emission, DataConsensus and ModelRegistry, accepted
datasets, trainers, an evaluator pool, helpers that drive a round). The domain conftests re-export the
parameters their tests use.

Every test runs in its own chain snapshot (`fn_isolation`), so none depends on another's leftovers.
"""

import hashlib
import itertools
import re
import time

import brownie
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from web3.exceptions import TransactionNotFound

from workers.chain.staking import permit_typed_data
from workers.protocol.constants import K
from workers.protocol.merkle import merkle_root

DSH = 10**18
WAD = 10**18
DAY = 24 * 3600

# Role enum of IStakeRegistry, in declaration order.
INFORMANT, CURATOR, TRAINER, EVALUATOR, STORAGE, INFERENCE = range(6)
ROLES = (INFORMANT, CURATOR, TRAINER, EVALUATOR, STORAGE, INFERENCE)

TOKEN_CAP = 10_000_000 * DSH
GENESIS_SUPPLY = 4_000_000 * DSH
EPOCH_DURATION = 7 * DAY
INITIAL_EPOCH_BUDGET = 100_000 * DSH
DECAY_PER_EPOCH = WAD // 2
UNBONDING_DELAY = 7 * DAY
MIN_STAKES = [100 * DSH, 1_000 * DSH, 1_000 * DSH, 1_000 * DSH, 500 * DSH, 10_000 * DSH]


def custom_error(name, *args):
    """The revert message brownie reports for a Solidity custom error (it prints addresses lower-case)."""
    values = (str(arg).lower() if str(arg).startswith("0x") else str(arg) for arg in args)
    return {"revert_msg": f"{name}: {', '.join(values)}"}


def reverts(name, *args):
    """`brownie.reverts` for a custom error; with no arguments any argument values match."""
    if args:
        return brownie.reverts(**custom_error(name, *args))
    return brownie.reverts(revert_pattern=re.escape(name) + r":.*")


def grant_roles(gov, module, *grants):
    """Grants `module` each (contract, role name) of `grants`, as governance: how a module is wired in."""
    for contract, role in grants:
        contract.grantRole(getattr(contract, role)(), module, {"from": gov})


_gas_price_offsets = itertools.count(1)


def use_unique_gas_price():
    """After a snapshot revert, repeating an earlier transaction byte for byte (same sender, nonce and
    calldata) gives the same hash, and anvil then loses track of it ("Tx dropped without known
    replacement"). A gas price unique to each test, or each property-test example, keeps hashes unique."""
    brownie.network.gas_price(10**9 + next(_gas_price_offsets))


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    use_unique_gas_price()


@pytest.fixture(scope="session", autouse=True)
def patient_receipts():
    """Brownie declares a transaction dropped when the sender's nonce has moved but the receipt is not yet
    found; on a loaded machine a local node can briefly answer in that order for a transaction it has just
    mined. Ask again for up to a second before brownie draws that conclusion."""
    eth = brownie.network.web3.eth
    original = eth.get_transaction_receipt

    def get_transaction_receipt(txid):
        for _ in range(20):
            try:
                return original(txid)
            except TransactionNotFound:
                time.sleep(0.05)
        return original(txid)

    eth.get_transaction_receipt = get_transaction_receipt
    yield
    del eth.get_transaction_receipt


@pytest.fixture(scope="module")
def deployer(accounts):
    return accounts[0]


@pytest.fixture(scope="module")
def gov(accounts):
    return accounts[1]


@pytest.fixture(scope="module")
def treasury(accounts):
    return accounts[2]


@pytest.fixture(scope="module")
def alice(accounts):
    return accounts[3]


@pytest.fixture(scope="module")
def bob(accounts):
    return accounts[4]


@pytest.fixture(scope="module")
def module(accounts):
    """An authorised protocol module (DataConsensus, TrainingRounds ... in the deployed network)."""
    return accounts[5]


@pytest.fixture(scope="module")
def other_module(accounts):
    return accounts[6]


@pytest.fixture(scope="module")
def outsider(accounts):
    return accounts[7]


@pytest.fixture(scope="module")
def deploy_emission(Emission, deployer, treasury):
    """Factory: an Emission (and its token) with overridable parameters."""

    def deploy(**overrides):
        params = dict(
            admin=deployer,
            cap=TOKEN_CAP,
            genesis_recipient=treasury,
            genesis_supply=GENESIS_SUPPLY,
            epoch_duration=EPOCH_DURATION,
            initial_epoch_budget=INITIAL_EPOCH_BUDGET,
            decay_per_epoch=DECAY_PER_EPOCH,
        )
        params.update(overrides)
        return Emission.deploy(*params.values(), {"from": deployer})

    return deploy


@pytest.fixture(scope="module")
def emission(deploy_emission, deployer, gov, module):
    emission = deploy_emission()
    emission.grantRole(emission.DRAWER_ROLE(), module, {"from": deployer})
    emission.grantRole(emission.DEFAULT_ADMIN_ROLE(), gov, {"from": deployer})
    emission.renounceRole(emission.DEFAULT_ADMIN_ROLE(), deployer, {"from": deployer})
    return emission


@pytest.fixture(scope="module")
def token(emission, DeepshardToken):
    return DeepshardToken.at(emission.token())


@pytest.fixture(scope="module")
def registry(StakeRegistry, token, deployer, gov, module, other_module):
    registry = StakeRegistry.deploy(token, deployer, UNBONDING_DELAY, MIN_STAKES, {"from": deployer})
    for authorised in (module, other_module):
        registry.grantRole(registry.MODULE_ROLE(), authorised, {"from": deployer})
    registry.grantRole(registry.DEFAULT_ADMIN_ROLE(), gov, {"from": deployer})
    registry.renounceRole(registry.DEFAULT_ADMIN_ROLE(), deployer, {"from": deployer})
    return registry


@pytest.fixture(scope="module")
def fund(token, treasury):
    """Factory: gives `account` DSH from the treasury's genesis allocation."""

    def fund(account, amount):
        token.transfer(account, amount, {"from": treasury})

    return fund


@pytest.fixture(scope="module")
def staked(registry, token, fund):
    """Factory: funds `account` and stakes `amount` in `role` through approve + stake."""

    def stake(account, role, amount):
        fund(account, amount)
        token.approve(registry, amount, {"from": account})
        return registry.stake(role, amount, {"from": account})

    return stake


@pytest.fixture(scope="module")
def sign_permit(token, chain):
    """Factory: an EIP-2612 permit signature (v, r, s) of `owner` (a brownie LocalAccount)."""

    def sign(owner, spender, value, deadline):
        domain = (token.name(), "1", chain.id, token.address)
        typed = permit_typed_data(domain, owner.address, str(spender), value, token.nonces(owner), deadline)
        signed = Account.sign_message(encode_typed_data(full_message=typed), owner.private_key)
        return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")

    return sign


@pytest.fixture
def local_account(accounts, deployer):
    """A fresh account that holds its private key (for signing permits), with ETH for gas."""
    account = accounts.add()
    deployer.transfer(account, "10 ether")
    return account


# ------------------------------------------------------------------ data consensus

# A public, test-only mnemonic: deterministic curator accounts make panel draws reproducible.
CURATOR_MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
POOL_SIZE = 15
CURATOR_STAKE = 3_000 * DSH
POOL_BOND = 2_000 * DSH
INFORMANT_STAKE = 1_000 * DSH
BOND = 500 * DSH
CID = bytes.fromhex("01551220") + keccak(b"dataset")  # a CIDv1 (raw, sha2-256) in binary form
#: A stand-in for a version's weights hash (ModelRegistry.publishShards).
WEIGHTS_HASH = keccak(b"weights")

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
    commitWindow=40,  # room for a panel of 31 curators, one block per transaction on a dev chain
    revealWindow=40,
    minBond=100 * DSH,
    minPoolBond=1_000 * DSH,
    maxReward=1_000 * DSH,
    expirySlashBps=5_000,
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
            registry,
            emission,
            token,
            gov,
            treasury,
            params or params_tuple(),
            weights,
            initial_threshold,
            {"from": deployer},
        )
        grant_roles(
            gov, consensus, (registry, "MODULE_ROLE"), (emission, "DRAWER_ROLE"), (emission, "VALUE_SOURCE_ROLE")
        )
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


# ------------------------------------------------------------------ training rounds

# Public, test-only mnemonic for deterministic trainer and evaluator accounts.
ROLE_MNEMONIC = "legal winner thank year wave sausage worth useful legal winner thank yellow"
GENESIS_CID = bytes.fromhex("01551220") + keccak(b"genesis weights")
SPEC_HASH = keccak(b"training spec")
TRAINER_BOND = 1_000 * DSH
EVALUATOR_BOND = 2_000 * DSH
HONEST = [1_000 + 10 * k for k in range(K)]
POISONED = [5_000 - 10 * k for k in range(K)]

ROUND_PARAMS = dict(
    trainCommitWindow=40,  # room for sixteen trainers, one block per transaction on a dev chain
    trainRevealWindow=40,
    evalCommitWindow=40,  # room for a panel of 31 evaluators
    evalRevealWindow=40,
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
def fingerprint_aggregation(FingerprintAggregation, deployer):
    """The library TrainingRounds calls; brownie links its latest deployment into every TrainingRounds."""
    return FingerprintAggregation.deploy({"from": deployer})


@pytest.fixture(scope="module")
def trainer_bonds(TrainerBonds, deployer):
    """TrainingRounds' other library (trainer slots and bonds), linked the same way."""
    return TrainerBonds.deploy({"from": deployer})


@pytest.fixture(scope="module")
def deploy_rounds(
    TrainingRounds,
    fingerprint_aggregation,
    trainer_bonds,
    registry,
    emission,
    token,
    consensus,
    model_registry,
    deployer,
    gov,
    treasury,
):
    def deploy(params=None):
        rounds = TrainingRounds.deploy(
            registry,
            emission,
            token,
            consensus,
            model_registry,
            gov,
            treasury,
            params or round_params(),
            {"from": deployer},
        )
        grant_roles(
            gov,
            rounds,
            (registry, "MODULE_ROLE"),
            (emission, "DRAWER_ROLE"),
            (emission, "VALUE_SOURCE_ROLE"),
            (consensus, "CONSUMER_ROLE"),
            (model_registry, "REGISTRAR_ROLE"),
        )
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
    """Twenty evaluators with equal bonds in the pool: a panel draws 31 votes among them (one draw = one vote)."""
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
        ids = accepted_datasets[len(used) : len(used) + batch]
        used.extend(ids)
        return rounds.openRound(ids, SPEC_HASH, {"from": opener}).return_value

    return open_round


def salt(account, round_id):
    return keccak(f"{account.address}/{round_id}".encode())


@pytest.fixture(scope="module")
def train(rounds, chain):
    """Factory: trainers commit then (unless listed in `silent`) reveal their delta CIDs. Each locks its bond in
    `bonds` (trainer -> wei), else the round's minimum `trainerBond`."""

    def train(round_id, deltas, silent=(), bonds=None):
        minimum = rounds.getRound(round_id)["trainerBond"]
        for trainer, cid in deltas.items():
            commitment = rounds.deltaCommitmentFor(cid, salt(trainer, round_id), trainer)
            rounds.commitDelta(round_id, commitment, (bonds or {}).get(trainer, minimum), {"from": trainer})
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


# ------------------------------------------------------------------ weight custody (Storage, WeightAccess)

# Public, test-only mnemonic for deterministic storage nodes (which are also the key custodians).
STORAGE_MNEMONIC = "test test test test test test test test test test test junk"
STORAGE_NODES = 6
NODE_STAKE = 2_000 * DSH
CAPACITY = 10**9

STORAGE_PARAMS = dict(
    replication=3,
    confirmWindow=10,
    auditInterval=5,
    answerWindow=4,
    nodeBond=500 * DSH,
    auditSlash=100 * DSH,
    auditEmission=DSH,
)
ACCESS_PARAMS = dict(
    basePrice=100 * DSH,
    valueScale=10_000 * DSH,
    burnBps=1_000,
    storageBps=3_000,
    custodianBps=2_000,
    deliveryWindow=10,
    custodianBond=300 * DSH,
    custodianSlash=50 * DSH,
)
VERSION_KEY = keccak(b"version key")  # stands for a version's 32-byte AES key


def storage_params(**overrides):
    return tuple({**STORAGE_PARAMS, **overrides}.values())


def access_params(**overrides):
    return tuple({**ACCESS_PARAMS, **overrides}.values())


def replica_bytes(version, shard, node, size):
    """Deterministic stand-in for node `node`'s encrypted replica of a shard: unique per (version, shard, node),
    as the per-node encryption makes it (the contract sees only its Merkle root and size)."""
    seed = keccak(f"{version}/{shard}/{node}".encode())
    stream = b"".join(keccak(seed + i.to_bytes(4, "big")) for i in range(-(-size // 32)))
    return stream[:size]


def replica_cid(data):
    """The binary CIDv1 (raw, sha2-256) of a replica's bytes, as `Storage.assign` logs it."""
    return bytes.fromhex("01551220") + hashlib.sha256(data).digest()


@pytest.fixture(scope="module")
def publisher(accounts):
    return accounts[9]


@pytest.fixture(scope="module")
def deploy_storage(Storage, registry, emission, token, deployer, gov, treasury, publisher):
    """Factory: a Storage with overridable parameters, authorised on the registry and Emission."""

    def deploy(params=None):
        storage = Storage.deploy(
            registry, emission, token, gov, treasury, params or storage_params(), {"from": deployer}
        )
        grant_roles(gov, storage, (registry, "MODULE_ROLE"), (emission, "DRAWER_ROLE"))
        storage.grantRole(storage.PUBLISHER_ROLE(), publisher, {"from": gov})
        return storage

    return deploy


@pytest.fixture(scope="module")
def storage(deploy_storage):
    return deploy_storage()


@pytest.fixture(scope="module")
def storage_accounts(accounts, deployer, staked):
    """Storage nodes with STORAGE stake (enough for their node bond and two custodies), not yet registered."""
    members = accounts.from_mnemonic(STORAGE_MNEMONIC, count=STORAGE_NODES, offset=40)
    for member in members:
        deployer.transfer(member, "1 ether")
        staked(member, STORAGE, NODE_STAKE)
    return members


@pytest.fixture(scope="module")
def storage_nodes(storage, storage_accounts):
    """The storage accounts, registered."""
    for index, member in enumerate(storage_accounts):
        storage.register(f"/ip4/127.0.0.1/tcp/{4001 + index}".encode(), CAPACITY, {"from": member})
    return storage_accounts


@pytest.fixture(scope="module")
def store_shard(storage, publisher):
    """Factory: assigns (version, shard) to the next `count` nodes of its ranking (read from the contract's
    `nextHolder`), each with its own replica; confirms them unless told not to. Returns {node address: bytes}."""

    def store(version, shard, size=3_000, count=None, confirm=True):
        replicas = {}
        count = count if count is not None else STORAGE_PARAMS["replication"]
        for _ in range(count):
            node = storage.nextHolder(version, shard, size)
            data = replica_bytes(version, shard, node, size)
            storage.assign(version, shard, node, merkle_root(data), size, replica_cid(data), {"from": publisher})
            if confirm:
                storage.confirm(version, shard, {"from": node})
            replicas[node] = data
        return replicas

    return store


@pytest.fixture(scope="module")
def deploy_access(WeightAccess, registry, emission, token, model_registry, storage, deployer, gov, treasury, publisher):
    """Factory: a WeightAccess with overridable parameters, wired to the registry, Storage and the model
    registry (the publisher may publish shard manifests)."""

    def deploy(params=None):
        access = WeightAccess.deploy(
            registry,
            emission,
            token,
            model_registry,
            storage,
            gov,
            treasury,
            params or access_params(),
            {"from": deployer},
        )
        grant_roles(gov, access, (registry, "MODULE_ROLE"), (storage, "FUNDER_ROLE"))
        access.grantRole(access.PUBLISHER_ROLE(), publisher, {"from": gov})
        return access

    return deploy


@pytest.fixture(scope="module")
def weight_access(deploy_access, model_registry, gov, publisher):
    for role in ("PUBLISHER_ROLE", "REGISTRAR_ROLE"):
        model_registry.grantRole(getattr(model_registry, role)(), publisher, {"from": gov})
    return deploy_access()


@pytest.fixture(scope="module")
def list_version(weight_access, model_registry, publisher):
    """Factory: registers a new version (its shard manifest published) and puts it on sale with `custodians`
    holding a k-of-n split (stand-in shares: the contract sees only their hashes). Returns (version, shares)."""

    def list_version(custodians, threshold):
        version = model_registry.registerVersion(1, 0, CID, 0, {"from": publisher}).return_value
        model_registry.publishShards(version, CID, WEIGHTS_HASH, {"from": publisher})
        shares = [keccak(f"share {version}/{i}".encode()) for i in range(len(custodians))]
        weight_access.publish(
            version,
            keccak(VERSION_KEY),
            threshold,
            custodians,
            [keccak(share) for share in shares],
            {"from": publisher},
        )
        return version, shares

    return list_version
