"""The ModelRegistry's reads that every role shares: whether a version exists, its lineage and the deltas that make
it, and the weights hash its publisher recorded.

A version's weights are fixed by its lineage (DESIGN.md): the genesis model with the LoRA delta of each later
version merged in order. Trainers and evaluators rebuild a round's base from it, `deepshard model get` a version's
folder. Once a version's encrypted shards are published, the registry also records the hash of its full weights
(`workers.ml.models.state_dict_hash`): what buyers assemble and inference nodes serve is checked against it
(workers.shards.assembly, workers.serve.registry), and anyone can rebuild the lineage to check the publisher.
"""

from __future__ import annotations

from typing import Any

from ..protocol.constants import GENESIS_VERSION
from .errors import ChainError, InvalidRequest
from .module import cid_from_chain, struct_of

#: Most versions a lineage query walks.
MAX_LINEAGE = 4_096


def check_registered(models: Any, version: int) -> None:
    """InvalidRequest unless `version` is registered. `models`: the ModelRegistry contract."""
    latest = int(models.functions.latestVersion().call())
    if not 1 <= version <= latest:
        raise InvalidRequest(f"version {version} is not registered: versions run from 1 to {latest}")


def lineage(models: Any, version: int) -> list[int]:
    """Version ids from the genesis to `version`, oldest first. `models`: the ModelRegistry contract. ChainError
    when the lineage is longer than MAX_LINEAGE (the contract's walk is bounded by it)."""
    ids = [int(i) for i in models.functions.lineage(int(version), MAX_LINEAGE).call()]
    if not ids or ids[-1] != GENESIS_VERSION:
        raise ChainError(f"the lineage of version {version} is longer than {MAX_LINEAGE} versions")
    return ids[::-1]


def base_deltas(models: Any, version: int) -> list[tuple[str, int]]:
    """(delta CID, round that produced it) of each version from the genesis to `version`, oldest first, the
    genesis itself left out: what is merged onto the genesis model to rebuild `version`."""
    out = []
    for v in lineage(models, version):
        if v == GENESIS_VERSION:
            continue
        info = struct_of(models, "getVersion", v)
        out.append((cid_from_chain(info["deltaCid"]), int(info["round"])))
    return out


def published(models: Any, version: int) -> tuple[str, str] | None:
    """(shard manifest CID, weights hash as 0x-hex) the publisher recorded for `version`, or None before its
    shards are published. InvalidRequest for a version that is not registered."""
    check_registered(models, version)
    info = struct_of(models, "getVersion", int(version))
    if not bytes(info["shardManifestCid"]):
        return None
    return cid_from_chain(info["shardManifestCid"]), "0x" + bytes(info["weightsHash"]).hex()
