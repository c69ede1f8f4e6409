"""A registered version's weights rebuilt from its lineage, the way trainers and evaluators rebuild a round's base
(`workers.tasks.training.base_version`): the base model its rounds trained on with each delta of its lineage merged
in order, every delta fetched by the CID the registry records and checked against it and against the spec of the
round that made it. `deepshard model get` writes the result to a folder; `deepshard serve` rebuilds a version the
registry records no weights hash for, to check the folder it was given (workers.serve.registry).
"""

from __future__ import annotations

from typing import Any

from ..chain.registry import check_registered
from .training import RoundInputs, base_version, genesis_model

#: The genesis (version 1) of the ModelRegistry: the base model of every lineage that has no delta yet.
GENESIS_BASE_MODEL = "smollm2-135m"


def fetch_version(rounds, version: int, store, specs) -> tuple[Any, dict[str, Any]]:
    """The model `version` (a `workers.ml.models.BaseModel`) and its description (base model, lineage with each
    delta's CID, round and spec hash, its weights hash and the base model's). Deltas are verified as the module
    docstring says. Raises `InvalidRequest` for an unknown version, `SpecUnknown` for a round whose spec is not found,
    `TaskInputError` for a delta that is missing, does not match its CID or does not fit its spec."""
    check_registered(rounds.models, version)
    lineage = rounds.base_deltas(version)
    spec_list = [specs.resolve(rounds.round(round_id).spec_hash) for _, round_id in lineage]
    if not lineage:
        model = genesis_model(GENESIS_BASE_MODEL)
        base = GENESIS_BASE_MODEL
    else:
        base = spec_list[0].base_model
        inputs = RoundInputs(
            round_id=lineage[-1][1],
            base_model=base,
            base_delta_cids=tuple(cid for cid, _ in lineage),
            base_delta_specs=tuple(spec_list),
            dataset_cids=(),
            spec=spec_list[-1],
            seed="0x" + "00" * 32,
        )
        model = base_version(store, inputs)
    description = {
        "version": version,
        "base_model": base,
        "lineage": [
            {"cid": cid, "round": round_id, "spec_hash": spec.spec_hash_hex()}
            for (cid, round_id), spec in zip(lineage, spec_list, strict=True)
        ],
        "weights_hash": model.weights_hash,
        "base_weights_hash": genesis_model(base).weights_hash,
    }
    return model, description
