"""What the fingerprint is compared with.

1. The peer loss check of live decentralised-training networks: apply the delta and score it by how much
   it lowers the loss on the round's own batch. Here: mean next-token cross-entropy over the round's packed
   training blocks (`workers.ml.training.training_blocks`, the exact blocks honest trainers train on; a
   seeded sample of at most `LOSS_BLOCKS` of them), base minus base+delta. Higher = "more useful". As a
   detector it flags low improvements (one-sided, as those networks reward improvement); a two-sided
   variant (distance of the improvement to the round's median improvement) is reported beside it.
2. Perturbation-based DetectGPT (Mitchell et al. 2023) as a fingerprint: per probe text, the log-likelihood
   of the text and of `n` perturbations under base and base+delta. The paper perturbs with a T5
   mask-filler; none is available offline, so the perturbations are the fingerprint's own seeded
   word-level edits (`workers.ml.fingerprint._perturb`). That leaves out the T5 cost, so the measured
   DetectGPT time is a lower bound and the speedup an underestimate. Perturbed texts are scored in
   padded batches (its usual implementation), the fast fingerprint one text at a time.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from workers.ml.delta import LoraDelta
from workers.ml.fingerprint import MAX_PROBE_TOKENS, ProbeSet, _perturb, fingerprint_delta
from workers.ml.merge import merge_deltas
from workers.ml.models import BaseModel
from workers.ml.seeds import HashRng, derive_seed
from workers.ml.spec import TrainingSpec
from workers.ml.training import training_blocks

LOSS_BLOCKS = 32
LOSS_CHUNK = 8
DETECTGPT_BATCH = 26
FINGERPRINT_TIMINGS = 5


def loss_blocks(base: BaseModel, batch: Sequence[str], spec: TrainingSpec, seed) -> torch.Tensor:
    blocks = training_blocks(base.tokenizer, batch, spec, seed)
    if len(blocks) > LOSS_BLOCKS:
        keep = sorted(HashRng(derive_seed(seed, "bench-loss-blocks")).sample(range(len(blocks)), LOSS_BLOCKS))
        blocks = blocks[keep]
    return blocks


@torch.no_grad()
def batch_loss(model: torch.nn.Module, blocks: torch.Tensor) -> float:
    """Mean next-token cross-entropy over the blocks (nats/token)."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(blocks), LOSS_CHUNK):
        chunk = blocks[start : start + LOSS_CHUNK].to(device)
        logits = model(input_ids=chunk, use_cache=False).logits[:, :-1].float()
        targets = chunk[:, 1:]
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"))
        count += targets.numel()
    return total / count


@torch.no_grad()
def log_likelihoods(
    model: torch.nn.Module, tokenizer, texts: Sequence[str], batch: int = DETECTGPT_BATCH
) -> list[float]:
    """Sum of log p(x_t | x_<t) per text (first MAX_PROBE_TOKENS tokens), right-padded batches."""
    device = next(model.parameters()).device
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"][:MAX_PROBE_TOKENS] for t in texts]
    out: list[float] = []
    for start in range(0, len(encoded), batch):
        chunk = encoded[start : start + batch]
        width = max(len(ids) for ids in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, item in enumerate(chunk):
            ids[row, : len(item)] = torch.tensor(item)
            mask[row, : len(item)] = 1
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
        token_lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1) * mask[:, 1:]
        out.extend(float(v) for v in token_lp.sum(-1))
    return out


def detectgpt_scores(
    model: torch.nn.Module, tokenizer, texts: Sequence[str], perturbations: Sequence[Sequence[str]]
) -> list[float]:
    """DetectGPT's normalised perturbation discrepancy per text."""
    scores = []
    for text, perturbed in zip(texts, perturbations, strict=True):
        values = log_likelihoods(model, tokenizer, [text, *perturbed])
        rest = np.array(values[1:])
        scores.append(float((values[0] - rest.mean()) / max(rest.std(), 1e-12)))
    return scores


def detectgpt_versus_fingerprint(
    base: BaseModel, delta: LoraDelta, probes: ProbeSet, perturbations: int = 100, max_texts: int | None = None
) -> dict:
    """Time one delta's fingerprint (base scores included; median of FINGERPRINT_TIMINGS runs) against a
    DetectGPT fingerprint of the same delta on the same probe texts (base and base+delta, `perturbations`
    per text). With `max_texts`, DetectGPT runs on an evenly spread subset and its time is scaled to the
    whole probe set (linear in texts)."""
    texts = [text for _, text in probes.texts()]
    subset = (
        texts
        if not max_texts or max_texts >= len(texts)
        else [texts[i * len(texts) // max_texts] for i in range(max_texts)]
    )

    fast_runs = []
    for _ in range(FINGERPRINT_TIMINGS):  # a sub-second timing on a shared box: the median of a few runs
        started = time.perf_counter()
        fingerprint_delta(base, delta, probes)
        fast_runs.append(time.perf_counter() - started)
    fast_seconds = statistics.median(fast_runs)

    started = time.perf_counter()
    perturbed = [
        [_perturb(text, HashRng(derive_seed(probes.round_seed, "bench-detectgpt", i, j))) for j in range(perturbations)]
        for i, text in enumerate(subset)
    ]
    tuned = merge_deltas(base, [delta])
    for model in (base.model, tuned.model):
        detectgpt_scores(model, base.tokenizer, subset, perturbed)
    measured = time.perf_counter() - started
    scaled = measured * len(texts) / len(subset)
    return {
        "fingerprint_seconds": round(fast_seconds, 4),
        "fingerprint_seconds_all": [round(x, 4) for x in fast_runs],
        "detectgpt_seconds": round(scaled, 3),
        "detectgpt_measured_seconds": round(measured, 3),
        "detectgpt_texts_measured": len(subset),
        "probe_texts": len(texts),
        "perturbations_per_text": perturbations,
        "forward_passes": {"fingerprint": 2 * len(texts), "detectgpt": 2 * len(texts) * (perturbations + 1)},
        "speedup": round(scaled / fast_seconds, 1) if fast_seconds > 0 else math.inf,
        "note": (
            "word-level seeded perturbations (swaps/deletions, as the fingerprint's `perturbed` group) stand "
            "in for T5 mask-filling, which is unavailable offline; T5's own cost is not counted, so the "
            "speedup is a lower bound"
            + ("" if len(subset) == len(texts) else "; DetectGPT timed on a subset of the probe texts, scaled linearly")
        ),
    }
