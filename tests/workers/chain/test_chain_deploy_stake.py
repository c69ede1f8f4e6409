"""deploy_network and stake against a real anvil."""

import json

import pytest

from workers.chain import (
    ROLES,
    ChainClient,
    DeploymentExists,
    DeployParams,
    InvalidRequest,
    deploy_network,
    stake,
)
from workers.chain.deploy import DEFAULT_ADMIN_ROLE, GENESIS_MODEL_CID
from workers.chain.localnode import dev_signer
from workers.chain.units import WAD, WEI_PER_DSH
from workers.storage.cids import Cid


def test_deploy_writes_record_and_contracts_have_code(network, treasury, deployments_dir):
    on_disk = json.loads((deployments_dir / f"{treasury.chain_id}.json").read_text())
    assert on_disk == network
    assert on_disk["chainId"] == treasury.chain_id == 31337
    assert on_disk["deployer"] == on_disk["governance"] == treasury.address
    assert set(on_disk["contracts"]) == {
        "Emission",
        "DeepshardToken",
        "StakeRegistry",
        "DataConsensus",
        "ModelRegistry",
        "FingerprintAggregation",
        "TrainerBonds",
        "TrainingRounds",
        "Storage",
        "WeightAccess",
    }
    for name, entry in on_disk["contracts"].items():
        assert entry["artifact"] == f"build/contracts/{name}.json"
        assert len(treasury.w3.eth.get_code(entry["address"])) > 0
    # TrainingRounds calls the libraries at the recorded addresses: its code embeds them where brownie left
    # placeholders.
    code = treasury.w3.eth.get_code(on_disk["contracts"]["TrainingRounds"]["address"])
    for library in ("FingerprintAggregation", "TrainerBonds"):
        assert bytes.fromhex(on_disk["contracts"][library]["address"][2:].lower()) in code
    assert on_disk["deployBlock"] <= treasury.w3.eth.block_number


def test_deploy_uses_default_params(network, treasury):
    params = DeployParams()
    emission, token, registry = (treasury.contract(n) for n in ("Emission", "DeepshardToken", "StakeRegistry"))
    assert token.functions.cap().call() == 1_000_000_000 * WEI_PER_DSH
    assert token.functions.totalSupply().call() == 100_000_000 * WEI_PER_DSH
    assert emission.functions.epochDuration().call() == 7 * 24 * 3600
    assert emission.functions.initialEpochBudget().call() == 1_000_000 * WEI_PER_DSH
    assert emission.functions.decayPerEpoch().call() == 99 * WAD // 100
    delays = {registry.functions.unbondingDelay(i).call() for i in range(len(ROLES))}
    assert delays == {params.unbonding_delay} == {7 * 24 * 3600}
    minimums = [registry.functions.minStake(i).call() // WEI_PER_DSH for i in range(len(ROLES))]
    assert minimums == [100, 1000, 1000, 1000, 500, 10000]
    consensus = treasury.contract("DataConsensus")
    assert registry.functions.hasRole(registry.functions.MODULE_ROLE().call(), consensus.address).call()
    assert emission.functions.hasRole(emission.functions.DRAWER_ROLE().call(), consensus.address).call()
    assert tuple(consensus.functions.getParams().call()) == params.data_consensus.as_struct()
    assert consensus.functions.threshold().call() == params.data_consensus.initial_threshold
    rounds, models = treasury.contract("TrainingRounds"), treasury.contract("ModelRegistry")
    assert tuple(rounds.functions.getParams().call()) == params.training_rounds.as_struct()
    assert consensus.functions.hasRole(consensus.functions.CONSUMER_ROLE().call(), rounds.address).call()
    assert models.functions.hasRole(models.functions.REGISTRAR_ROLE().call(), rounds.address).call()
    storage, access = treasury.contract("Storage"), treasury.contract("WeightAccess")
    assert tuple(storage.functions.params().call()) == params.storage.as_struct()
    assert tuple(access.functions.params().call()) == params.weight_access.as_struct()
    value_source = emission.functions.VALUE_SOURCE_ROLE().call()
    assert all(emission.functions.hasRole(value_source, m.address).call() for m in (consensus, rounds))
    assert not emission.functions.hasRole(value_source, storage.address).call()
    assert emission.functions.hasRole(emission.functions.DRAWER_ROLE().call(), storage.address).call()
    assert storage.functions.hasRole(storage.functions.FUNDER_ROLE().call(), access.address).call()
    for contract in (models, storage, access):
        assert contract.functions.hasRole(contract.functions.PUBLISHER_ROLE().call(), treasury.address).call()
    genesis = models.functions.getVersion(1).call()
    assert str(Cid.from_bytes(bytes(genesis[4]))) == GENESIS_MODEL_CID


def test_genesis_cid_is_the_shipped_model():
    from workers.ml.models import locate_smollm2_gguf
    from workers.storage.unixfs import cid_of_file

    assert str(cid_of_file(locate_smollm2_gguf())) == GENESIS_MODEL_CID


def test_governance_handover(anvil, tmp_path):
    deployer = ChainClient(anvil.url, dev_signer(3), deployments_dir=tmp_path)
    governance = dev_signer(4).address
    record = deploy_network(deployer, governance=governance)
    assert record["governance"] == governance and record["deployer"] == deployer.address
    for name in (
        "Emission",
        "StakeRegistry",
        "DataConsensus",
        "ModelRegistry",
        "TrainingRounds",
        "Storage",
        "WeightAccess",
    ):
        contract = deployer.contract(name)
        assert contract.functions.hasRole(DEFAULT_ADMIN_ROLE, governance).call()
        assert not contract.functions.hasRole(DEFAULT_ADMIN_ROLE, deployer.address).call()


def test_deploy_refuses_to_orphan_a_live_deployment(network, anvil, deployments_dir):
    client = ChainClient(anvil.url, dev_signer(3), deployments_dir=deployments_dir)
    nonce = client.w3.eth.get_transaction_count(client.address)
    with pytest.raises(DeploymentExists, match="already has a live deployment"):
        deploy_network(client)
    assert client.w3.eth.get_transaction_count(client.address) == nonce


def test_stake_with_approve(make_account):
    account = make_account()
    result = stake(account.client, "Trainer", "1000")
    registry = account.client.contract("StakeRegistry")
    assert result.new_stake == registry.functions.stakeOf(account.address, 2).call() == 1000 * WEI_PER_DSH
    assert result.role == "TRAINER" and not result.via_permit
    # A top-up below the minimum is fine once the stake is above it.
    assert stake(account.client, "TRAINER", "0.5").new_stake == 10005 * WEI_PER_DSH // 10


def test_stake_with_permit_sends_one_transaction(make_account):
    account = make_account()
    nonce = account.nonce()
    result = stake(account.client, "inference", "10000.25", use_permit=True)
    registry = account.client.contract("StakeRegistry")
    assert result.via_permit
    assert result.new_stake == registry.functions.stakeOf(account.address, 5).call() == 1000025 * WEI_PER_DSH // 100
    assert account.nonce() == nonce + 1  # no separate approve
    token = account.client.contract("DeepshardToken")
    assert token.functions.allowance(account.address, registry.address).call() == 0


@pytest.mark.parametrize(
    "role, amount, message",
    [
        ("miner", "1000", "unknown role 'miner'"),
        ("curator", "999.99", "below the CURATOR minimum"),
        ("curator", "0", "greater than 0"),
        ("storage", "60000", "insufficient DSH"),
    ],
)
def test_stake_checks_before_sending(make_account, role, amount, message):
    account = make_account()
    nonce = account.nonce()
    with pytest.raises(InvalidRequest, match=message):
        stake(account.client, role, amount)
    assert account.nonce() == nonce


@pytest.mark.parametrize("governance", ["0x1234", "0x" + "00" * 20])
def test_deploy_rejects_bad_governance(anvil, tmp_path, governance):
    client = ChainClient(anvil.url, dev_signer(3), deployments_dir=tmp_path)
    nonce = client.w3.eth.get_transaction_count(client.address)
    with pytest.raises(InvalidRequest, match="not a usable address"):
        deploy_network(client, governance=governance)
    assert client.w3.eth.get_transaction_count(client.address) == nonce
