"""Chain access for the workers: artifacts, deployment records, signers, the web3 client, deploy and stake;
`module` (the one base of the module clients, `ModuleClient`) and `salts` (the one store of commitment salts).

Plain web3.py, no brownie runtime, so that workers, the CLI and brownie scripts share one implementation.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .accounts import LocalSigner, NodeSigner, Signer, load_keystore, load_signer
    from .artifacts import Artifact, load_artifact, project_root
    from .client import ChainClient, NonceManager
    from .deploy import (
        DataConsensusParams,
        DeployParams,
        StorageParams,
        TrainingRoundsParams,
        WeightAccessParams,
        deploy_network,
    )
    from .deployments import deployment_path, deployments_dir, load_deployment, save_deployment
    from .endpoint import default_rpc_url
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

# The names are imported when first used (PEP 562): `from workers.chain.errors import ChainError` or the CLI's
# help do not load web3.
_LAZY = {
    "Artifact": "artifacts",
    "ArtifactMissing": "errors",
    "ChainClient": "client",
    "ChainError": "errors",
    "DataConsensusParams": "deploy",
    "DeployParams": "deploy",
    "DeploymentExists": "errors",
    "InvalidRequest": "errors",
    "LocalSigner": "accounts",
    "NoDeployment": "errors",
    "NodeSigner": "accounts",
    "NodeUnavailable": "errors",
    "NonceManager": "client",
    "ROLES": "roles",
    "ReceiptTimeout": "errors",
    "Signer": "accounts",
    "SignerUnavailable": "errors",
    "StakeResult": "staking",
    "StorageParams": "deploy",
    "TrainingRoundsParams": "deploy",
    "TransactionRejected": "errors",
    "TransactionReverted": "errors",
    "WeightAccessParams": "deploy",
    "default_rpc_url": "endpoint",
    "deploy_network": "deploy",
    "deployment_path": "deployments",
    "deployments_dir": "deployments",
    "format_dsh": "units",
    "load_artifact": "artifacts",
    "load_deployment": "deployments",
    "load_keystore": "accounts",
    "load_signer": "accounts",
    "parse_dsh": "units",
    "parse_role": "roles",
    "project_root": "artifacts",
    "save_deployment": "deployments",
    "stake": "staking",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


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
