"""Chain access for the workers: artifacts, deployment records, signers, the web3 client, deploy and stake;
`module` (the one base of the module clients, `ModuleClient`) and `salts` (the one store of commitment salts).

Plain web3.py, no brownie runtime, so that workers, the CLI and brownie scripts share one implementation.
"""

from .accounts import LocalSigner, NodeSigner, Signer, load_keystore, load_signer
from .artifacts import Artifact, load_artifact, project_root
from .client import ChainClient, NonceManager, default_rpc_url
from .deploy import (
    DataConsensusParams,
    DeployParams,
    StorageParams,
    TrainingRoundsParams,
    WeightAccessParams,
    deploy_network,
)
from .deployments import deployment_path, deployments_dir, load_deployment, save_deployment
from .errors import (
    ArtifactMissing,
    ChainError,
    DeploymentExists,
    InvalidRequest,
    NoDeployment,
    NodeUnavailable,
    ReceiptTimeout,
    SignerUnavailable,
    TransactionRejected,
    TransactionReverted,
)
from .roles import ROLES, parse_role
from .staking import StakeResult, stake
from .units import format_dsh, parse_dsh

__all__ = [
    "Artifact",
    "ArtifactMissing",
    "ChainClient",
    "ChainError",
    "DataConsensusParams",
    "DeployParams",
    "StorageParams",
    "WeightAccessParams",
    "DeploymentExists",
    "InvalidRequest",
    "LocalSigner",
    "NoDeployment",
    "NodeSigner",
    "NodeUnavailable",
    "NonceManager",
    "ROLES",
    "ReceiptTimeout",
    "Signer",
    "SignerUnavailable",
    "StakeResult",
    "TrainingRoundsParams",
    "TransactionRejected",
    "TransactionReverted",
    "default_rpc_url",
    "deploy_network",
    "deployment_path",
    "deployments_dir",
    "format_dsh",
    "load_artifact",
    "load_deployment",
    "load_keystore",
    "load_signer",
    "parse_dsh",
    "parse_role",
    "project_root",
    "save_deployment",
    "stake",
]
