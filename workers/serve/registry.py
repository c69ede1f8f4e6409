"""Which weights a node may serve as version N of the ModelRegistry.

What identifies a version today: the registry stores no weights hash, only content identifiers. Version 1 (the
genesis) records the genesis model's CID; every later version records the CID of the LoRA delta that turned its
parent into it. A version's weights are therefore fixed by its lineage of CIDs: the genesis model with the deltas
merged in order (what trainers and evaluators rebuild, workers.tasks.training.base_version), and their
`weights_hash` (workers.ml.models) is what the node announces.

A version folder (a `save_pretrained` model folder, assembled by the weight-custody flow or by hand) carries
`deepshard-version.json`: `{"version": N, "base_model": NAME, "lineage_cids": [CID of v1, ..., CID of vN],
"weights_hash": "0x..."}`. The node refuses to start unless version N exists in the registry, its lineage CIDs
equal the folder's, and the loaded weights hash to the recorded `weights_hash`. Without a folder only the
genesis (version 1) can be served, from the named base model. Once the registry records weights hashes (the
weight-custody issue), the last check compares against the chain directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..chain import ChainClient, ChainError
from ..protocol.constants import GENESIS_VERSION
from ..rounds.chain import TrainingRoundsClient
from ..safejson import JsonRejected, parse_json

VERSION_FILE = "deepshard-version.json"
MAX_VERSION_FILE_BYTES = 1 << 20


class VersionRefused(ChainError):
    """Weights the node must not serve as the requested version (printed as one `error:` line)."""


@dataclass(frozen=True)
class VersionRecord:
    """A version folder's claim: which registry version it is, built from which base and lineage, its hash."""

    version: int
    base_model: str
    lineage_cids: list[str]
    weights_hash: str


def read_version_record(folder: Path) -> VersionRecord:
    """The folder's `deepshard-version.json`; VersionRefused when missing or malformed."""
    path = Path(folder) / VERSION_FILE
    try:
        data: Any = parse_json(path.read_bytes(), what=str(path), max_bytes=MAX_VERSION_FILE_BYTES)
    except OSError as exc:
        raise VersionRefused(f"{path} cannot be read ({exc.strerror})") from None
    except JsonRejected as exc:
        raise VersionRefused(str(exc)) from None
    try:
        record = VersionRecord(
            version=int(data["version"]),
            base_model=str(data["base_model"]),
            lineage_cids=[str(c) for c in data["lineage_cids"]],
            weights_hash=str(data["weights_hash"]),
        )
    except (KeyError, TypeError, ValueError):
        raise VersionRefused(f"{path} needs version (int), base_model, lineage_cids (list) and weights_hash") from None
    return record


def registered_lineage(chain: ChainClient, version: int) -> list[str]:
    """The CIDs of versions 1..`version` in lineage order (genesis first), read from the ModelRegistry;
    VersionRefused if the registry has no such version."""
    rounds = TrainingRoundsClient(chain)
    latest = int(rounds.models.functions.latestVersion().call())
    if not 1 <= version <= latest:
        raise VersionRefused(f"the ModelRegistry has no version {version} (latest is {latest})")
    return [rounds.version_cid(v) for v in rounds.lineage(version)]


def check_version(chain: ChainClient, version: int, weights_hash: str, record: VersionRecord | None) -> None:
    """Refuses (VersionRefused) weights that are not version `version` by the rules in this module's docstring."""
    lineage = registered_lineage(chain, version)
    if record is None:
        if version != GENESIS_VERSION:
            raise VersionRefused(
                f"version {version} is the genesis plus {len(lineage) - 1} deltas: serve it from a version folder "
                "(--weights DIR with deepshard-version.json)"
            )
        return
    if record.version != version:
        raise VersionRefused(f"the version folder holds version {record.version}, not {version}")
    if record.lineage_cids != lineage:
        raise VersionRefused(f"the version folder's lineage differs from the registry's for version {version}")
    if record.weights_hash != weights_hash:
        raise VersionRefused(
            f"the folder's weights hash to {weights_hash}, its record says {record.weights_hash}: refusing to serve"
        )
