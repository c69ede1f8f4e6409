"""Deployment records: deployments/<chain-id>.json says where the network's contracts live on a chain.

Format (one file per chain, written by `deploy_network`):
    {"chainId": 31337, "deployBlock": 1, "deployer": "0x..", "governance": "0x..",
     "contracts": {"Emission": {"address": "0x..", "artifact": "build/contracts/Emission.json"}, ...}}
`deployBlock` is where event scanners start. The folder is `$DEEPSHARD_DEPLOYMENTS_DIR` if set (tests and
the demo use a temporary one so they never touch the repo's records), else <project root>/deployments.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address

from ..safejson import load_json_file
from .artifacts import project_root
from .errors import NoDeployment

DEPLOYMENTS_DIR_ENV = "DEEPSHARD_DEPLOYMENTS_DIR"
#: A record names a few dozen contracts (a few KB).
MAX_DEPLOYMENT_BYTES = 1 << 20

Deployment = dict[str, Any]


def deployments_dir(directory: str | os.PathLike | None = None) -> Path:
    """The folder of deployment records: `directory`, else `$DEEPSHARD_DEPLOYMENTS_DIR`, else the repo's."""
    if directory is not None:
        return Path(directory)
    override = os.environ.get(DEPLOYMENTS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return project_root() / "deployments"


def deployment_path(chain_id: int, directory: str | os.PathLike | None = None) -> Path:
    return deployments_dir(directory) / f"{int(chain_id)}.json"


def load_deployment(chain_id: int, directory: str | os.PathLike | None = None) -> Deployment:
    """Reads and validates the record of `chain_id`; raises `NoDeployment` naming the chain if absent."""
    path = deployment_path(chain_id, directory)
    if not path.is_file():
        raise NoDeployment(f"no deployment for chain {chain_id} (expected {path}): deploy with `deepshard deploy`")
    try:
        record = load_json_file(path, what="its JSON", max_bytes=MAX_DEPLOYMENT_BYTES)
        if int(record["chainId"]) != int(chain_id):
            raise ValueError(f"it is for chain {record['chainId']}")
        for name, entry in record["contracts"].items():
            if not is_address(entry["address"]):
                raise ValueError(f"{name} has no valid address")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise NoDeployment(f"deployment record {path} for chain {chain_id} is invalid: {exc}") from exc
    return record


def save_deployment(record: Deployment, directory: str | os.PathLike | None = None) -> Path:
    """Writes the record atomically (temp file + rename), so a crash never leaves half a JSON file."""
    path = deployment_path(record["chainId"], directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def contract_address(record: Deployment, name: str) -> str:
    """Checksummed address of contract `name` in the record; `NoDeployment` if it is not part of it."""
    try:
        return to_checksum_address(record["contracts"][name]["address"])
    except KeyError:
        raise NoDeployment(
            f"the deployment for chain {record['chainId']} has no {name} contract "
            f"(it has: {', '.join(sorted(record['contracts'])) or 'none'})"
        ) from None
