"""Merging LoRA deltas into plain models: for each adapted Linear, W += (alpha / r) * B @ A.

A chain of deltas is a lineage of versions: delta i was trained on the model that deltas 0..i-1 produced,
so its manifest names that model's weights hash. `merge_deltas` checks each link before applying it and
returns a new BaseModel (the input is never modified) whose `weights_hash` identifies the new version.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from workers.ml.delta import DeltaRejected, LoraDelta
from workers.ml.models import BaseModel, as_base_model, weights_hash


def apply_delta_(model: torch.nn.Module, delta: LoraDelta) -> None:
    """Add the delta's low-rank update to `model`'s weights in place (fp32 product, cast to W's dtype)."""
    modules = dict(model.named_modules())
    scaling = delta.spec.scaling
    with torch.no_grad():
        for path, a, b in delta.modules():
            weight = modules[path].weight
            update = (b.to(weight.device, torch.float32) @ a.to(weight.device, torch.float32)) * scaling
            weight.add_(update.to(weight.dtype))


def merge_deltas(base: BaseModel, deltas: Sequence[LoraDelta]) -> BaseModel:
    """The version obtained by applying `deltas` in order on top of `base`, checking the lineage."""
    model = copy.deepcopy(base.model)
    current_hash = base.weights_hash
    for position, delta in enumerate(deltas):
        if delta.manifest.base_model != base.name:
            raise DeltaRejected(f"delta {position} is for base model {delta.manifest.base_model!r}, not {base.name!r}")
        if delta.manifest.base_weights_hash != current_hash:
            raise DeltaRejected(
                f"delta {position} was trained on weights {delta.manifest.base_weights_hash}, "
                f"but the chain is at {current_hash}"
            )
        apply_delta_(model, delta)
        if position + 1 < len(deltas):
            current_hash = weights_hash(model)
    return as_base_model(base.name, model, base.tokenizer, device=base.device)
