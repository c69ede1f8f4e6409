"""Which weights a node may serve as version N of the ModelRegistry.

What identifies a version: version 1 (the genesis) records the genesis model's CID; every later version records the
CID of the LoRA delta that turned its parent into it, so a version's weights are fixed by its lineage of delta CIDs:
the base model with the deltas merged in order (what trainers and evaluators rebuild,
workers.tasks.training.base_version), and their `weights_hash` (workers.ml.models) is what the node announces.
Once a version's encrypted shards are published, the registry also records that hash (`publishShards`).

A version folder is what `deepshard model get VERSION --out DIR` (a rebuild from the lineage) or `deepshard weights
fetch VERSION -o DIR` (a bought copy) writes: a model folder with `deepshard-version.json`, `{"version": N,
"base_model": NAME, "lineage": [{"cid": delta CID, "round": R, ...}, ...], "weights_hash": "0x...", ...}`, the
lineage oldest first without the genesis. The node refuses to start unless version N exists in the registry and:
when the registry records N's weights hash, the loaded weights hash to it (the chain decides, whatever the folder
says; a folder's record, when there is one, must name N); otherwise the folder's delta CIDs equal the registry's
and the loaded weights hash to its recorded `weights_hash`. Without a folder only the genesis (version 1) can be
served, from the named base model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..chain import ChainClient, ChainError, InvalidRequest, registry
from ..ml.models import VERSION_FILE
from ..protocol.constants import GENESIS_VERSION
from ..safejson import JsonRejected, parse_json

MAX_VERSION_FILE_BYTES = 1 << 20


class VersionRefused(ChainError):
    """Weights the node must not serve as the requested version (printed as one `error:` line)."""


@dataclass(frozen=True)
class VersionRecord:
    """A version folder's claim: which registry version it is, built from which base and deltas (their CIDs,
    oldest first, the genesis left out), and its weights hash."""

    version: int
    base_model: str
    delta_cids: list[str]
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
            delta_cids=[str(step["cid"]) for step in data["lineage"]],
            weights_hash=str(data["weights_hash"]),
        )
    except (KeyError, TypeError, ValueError):
        raise VersionRefused(
            f"{path} needs version (int), base_model, lineage (a list of {{cid, ...}}) and weights_hash"
        ) from None
    return record


def registered_deltas(chain: ChainClient, version: int) -> list[str]:
    """The delta CIDs that make `version` from the genesis, oldest first, read from the ModelRegistry;
    VersionRefused if the registry has no such version."""
    models = chain.contract("ModelRegistry")
    try:
        registry.check_registered(models, version)
    except InvalidRequest as exc:
        raise VersionRefused(str(exc)) from None
    return [cid for cid, _ in registry.base_deltas(models, version)]


def check_version(chain: ChainClient, version: int, weights_hash: str, record: VersionRecord | None) -> None:
    """Refuses (VersionRefused) weights that are not version `version` by the rules in this module's docstring."""
    deltas = registered_deltas(chain, version)
    if record is not None and record.version != version:
        raise VersionRefused(f"the version folder holds version {record.version}, not {version}")
    published = registry.published(chain.contract("ModelRegistry"), version)
    if published is not None:
        if weights_hash != published[1]:
            raise VersionRefused(
                f"the weights hash to {weights_hash}; the registry records {published[1]} for version {version}: "
                "refusing to serve"
            )
        return
    if record is None:
        if version != GENESIS_VERSION:
            raise VersionRefused(
                f"version {version} is the genesis plus {len(deltas)} deltas: serve it from a version folder "
                "(--weights DIR, written by `deepshard model get`)"
            )
        return
    if record.delta_cids != deltas:
        raise VersionRefused(f"the version folder's lineage differs from the registry's for version {version}")
    if record.weights_hash != weights_hash:
        raise VersionRefused(
            f"the folder's weights hash to {weights_hash}, its record says {record.weights_hash}: refusing to serve"
        )
