"""Dishonest nodes for the proof's calibration (benchmarks.serve.run) and tests (tests/workers/serve): engines that
announce the honest weights hash but compute with other weights."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable

import torch

from workers.ml.models import BaseModel
from workers.serve.engine import Engine


def forged(engine: Engine, change: Callable) -> Engine:
    """An engine on a changed copy of `engine`'s weights (`change(model)` edits in place or returns a new model)
    that announces the original weights hash and end-of-text tokens."""
    model = copy.deepcopy(engine.model)
    with torch.no_grad():
        model = change(model) or model
    fake = Engine(BaseModel("forged", model, engine.tokenizer, engine.weights_hash))
    fake.eos_ids = engine.eos_ids
    return fake


def low_rank_delta(seed: int, scale: float = 1e-3) -> Callable:
    """What a LoRA delta does to a version: add a rank-8 product to the attention's q and v projections, `scale`
    of each matrix's Frobenius norm (another seed: a sibling delta)."""

    def change(model) -> None:
        generator = torch.Generator().manual_seed(seed)
        for name, weight in model.named_parameters():
            if weight.ndim == 2 and ("q_proj" in name or "v_proj" in name):
                a = torch.randn(weight.shape[0], 8, generator=generator)
                b = torch.randn(8, weight.shape[1], generator=generator)
                product = a @ b
                weight.add_(product * (scale * weight.norm() / product.norm()))

    return change


def bf16_weights(model) -> None:
    """Weights rounded to bfloat16 (computed in fp32)."""
    for weight in model.parameters():
        weight.copy_(weight.to(torch.bfloat16).float())


def int8_weights(model):
    """Every Linear layer quantised to int8 by torch's dynamic quantisation (its int8 kernels)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


#: The weight forgeries the proof must detect, by name.
FORGERIES: dict[str, Callable] = {
    "child_delta": low_rank_delta(seed=1),
    "sibling_delta": low_rank_delta(seed=2),
    "bf16": bf16_weights,
    "int8": int8_weights,
}
