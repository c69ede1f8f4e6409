"""The TrainingSpec a benchmark round uses, per base model (also used by the throughput benchmark).

Chosen for realism and stability before any adversary was measured, never to suit the fingerprint:
- LoRA rank 8, alpha 16 (scaling 2), no dropout, on the attention projections q/k/v/o: the usual
  small-LoRA recipe.
- `tiny`: lr 1e-3, 40 steps of 4 x 64 tokens (10,240 training tokens, ~1.5 passes over the 64-record
  batch). Honest runs clearly learn (the loss on the round's batch drops by ~0.45 nats from 7.68).
  lr 3e-3 was tried first and is NOT stable at rank 8 beyond ~20 steps on this random-init model: the
  same seed at 1 vs 2 torch threads diverged by 0.3% (40 steps) and 41% (80 steps) of the delta's norm,
  against 2e-6 / 5e-5 at lr 1e-3. A round spec must keep honest float noise at float level, so 1e-3.
- `smollm2-135m`: lr 1e-3, 10 steps of 4 x 64 tokens: CPU training of the real model runs at ~100-200
  tokens/s, so a round here is short; on a GPU a round would train far longer.
"""

from __future__ import annotations

import dataclasses

from workers.ml.spec import TrainingSpec

_COMMON = dict(
    lora_rank=8,
    lora_alpha=16.0,
    lora_dropout=0.0,
    target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
    batch_size=4,
    sequence_length=64,
    dtype="float32",
)

ROUND_SPECS = {
    "tiny": TrainingSpec(base_model="tiny", learning_rate=1e-3, steps=40, **_COMMON),
    "smollm2-135m": TrainingSpec(base_model="smollm2-135m", learning_rate=1e-3, steps=10, **_COMMON),
}


def round_spec(model: str, steps: int | None = None) -> TrainingSpec:
    """The round spec for `model`; `steps` overrides the step count (smoke tests only)."""
    try:
        spec = ROUND_SPECS[model]
    except KeyError:
        raise SystemExit(f"no benchmark spec for model {model!r}; known: {', '.join(ROUND_SPECS)}") from None
    return dataclasses.replace(spec, steps=steps) if steps else spec
