"""The ModelRegistry's reads that every role shares: a version's lineage and the deltas that make it.

A version's weights are fixed by its lineage (DESIGN.md): the genesis model with the LoRA delta of each later
version merged in order. Trainers and evaluators rebuild a round's base from it, `deepshard model get` a version's
folder, and the inference node checks a folder's record against it (workers.serve.registry).
"""

from __future__ import annotations

from typing import Any

from ..protocol.constants import GENESIS_VERSION
from .errors import ChainError
from .module import cid_from_chain

#: Most versions a lineage query walks.
MAX_LINEAGE = 4_096


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
        info = models.functions.getVersion(v).call()
        out.append((cid_from_chain(info[4]), int(info[1])))
    return out
