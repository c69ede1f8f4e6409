"""Probability-curvature fingerprints of LoRA deltas (Fast-DetectGPT's analytic curvature, Bao et al. 2023).

Curvature of a text x under a model p, one forward pass, over the predicted tokens t = 1..T-1:
    lp_t  = log p(x_t | x_<t)
    mu_t  = sum_v p(v | x_<t) log p(v | x_<t)              (expected log-prob under the model itself)
    var_t = sum_v p(v | x_<t) (log p(v | x_<t))^2 - mu_t^2
    curvature(x) = sum_t (lp_t - mu_t) / sqrt(sum_t var_t)
Text the model has learned scores high (its tokens beat the model's own expectation); unfamiliar text
scores lower. Computed in float64 from the model's logits, one text at a time (no padding), so a
text's score never depends on which other texts are scored with it.

Probe set (built from the round seed and the round's training batch; 8 texts per group):
- `batch`: texts sampled from the training batch. An honest delta raises their likelihood; a lazy delta
  (no training) leaves them unchanged, one trained on other data raises them less.
- `reference`: held-out paragraphs of the shipped reference corpus (never in the batch): what the delta
  does to ordinary English it was not trained on (catches over-fitting, scaled or noised deltas).
- `perturbed`: the sampled batch texts with seeded word swaps and deletions (~15% of words). The
  Fast-DetectGPT contrast: memorised exact texts gain more than their perturbations.
- `canary`: other held-out paragraphs with a seeded nonsense trigger-like phrase inserted. Meant to
  expose deltas trained to react to odd phrases (backdoor-style poisoning); how well it does is to be
  measured, like the separation of the whole fingerprint.

Fingerprint: for every group in the order above, four statistics of the per-text shifts, tuned minus base:
    0 mean of the curvature shift         (curvature units)
    1 std  of the curvature shift         (population std)
    2 mean of the mean-log-prob shift     (nats per token)
    3 90th percentile of the mean-log-prob shift (linear interpolation): the most-moved texts
giving K = 16 numbers, each quantised as floor(x * 10_000 + 0.5) clamped to the int32 range: a
resolution of 1e-4 curvature units / nats per token: training shifts are ~0.1-10 (1e3-1e5 units), a
relative 1e-3 noise on the delta's weights moves the whole L1 by tens of units. The distance between
fingerprints is the L1 norm of the integer difference, exactly what the TrainingRounds contract computes
(`workers.protocol.rounds.fingerprint_distance`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from workers.ml.delta import LoraDelta
from workers.ml.merge import merge_deltas
from workers.ml.models import BaseModel, reference_corpus
from workers.ml.progress import progress
from workers.ml.seeds import HashRng, derive_seed, seed_hex
from workers.protocol.constants import INT32_MAX, INT32_MIN, K

# The fingerprint type and the L1 distance the contract judges with, re-exported for this module's callers.
from workers.protocol.rounds import Fingerprint, fingerprint_distance  # noqa: F401

PROBE_GROUPS = ("batch", "reference", "perturbed", "canary")
GROUP_STATISTICS = ("curvature_shift_mean", "curvature_shift_std", "logprob_shift_mean", "logprob_shift_q90")
#: Integers per fingerprint: the protocol's K, one per (probe group, statistic) pair.
FINGERPRINT_LENGTH = K
FINGERPRINT_SCALE = 10_000
PROBES_PER_GROUP = 8
MAX_PROBE_TOKENS = 128
PERTURB_PERCENT = 15  # of a text's words, rounded half up, at least one edit

# Syllables for canary triggers: pronounceable nonsense that is unlikely to occur in real data.
_SYLLABLES = (
    "zor",
    "vek",
    "qua",
    "mir",
    "thal",
    "oxu",
    "bren",
    "kyl",
    "dra",
    "fen",
    "jow",
    "lux",
    "nep",
    "sarn",
    "wub",
    "yx",
    "gha",
)


@dataclass(frozen=True)
class ProbeSet:
    round_seed: str
    groups: dict[str, tuple[str, ...]]

    def texts(self) -> list[tuple[str, str]]:
        """(group, text) pairs in canonical order."""
        return [(group, text) for group in PROBE_GROUPS for text in self.groups[group]]


@dataclass(frozen=True)
class TextScore:
    tokens: int  # predicted tokens scored (the first token has no prediction)
    mean_log_prob: float
    curvature: float


def build_probe_set(
    round_seed,
    batch_texts: Sequence[str],
    reference_texts: Sequence[str] | None = None,
    per_group: int = PROBES_PER_GROUP,
) -> ProbeSet:
    """The round's probe set; every choice is drawn from sub-seeds of the round seed."""
    seed = seed_hex(round_seed)
    batch_texts = list(batch_texts)
    if not batch_texts:
        raise ValueError("the probe set needs the round's training batch")
    in_batch = set(batch_texts)
    corpus = reference_texts if reference_texts is not None else reference_corpus()
    held_out = [t for t in corpus if t not in in_batch]
    if len(held_out) < 2 * per_group:
        raise ValueError(f"need {2 * per_group} held-out reference texts, have {len(held_out)}")

    batch = HashRng(derive_seed(seed, "probe-batch")).sample(batch_texts, min(per_group, len(batch_texts)))
    # Reference and canary texts are disjoint draws from one shuffle of the held-out corpus.
    shuffled = HashRng(derive_seed(seed, "probe-reference")).sample(held_out, 2 * per_group)
    reference, canary_hosts = shuffled[:per_group], shuffled[per_group:]
    perturbed = [_perturb(text, HashRng(derive_seed(seed, "probe-perturb", i))) for i, text in enumerate(batch)]
    canary = [
        _insert_trigger(text, HashRng(derive_seed(seed, "probe-canary", i))) for i, text in enumerate(canary_hosts)
    ]
    groups = {"batch": batch, "reference": reference, "perturbed": perturbed, "canary": canary}
    return ProbeSet(round_seed=seed, groups={g: tuple(groups[g]) for g in PROBE_GROUPS})


def _perturb(text: str, rng: HashRng) -> str:
    """Seeded word-level edits: each edit deletes a word or swaps two neighbours (half and half)."""
    words = text.split()
    for _ in range(max(1, (len(words) * PERTURB_PERCENT + 50) // 100)):
        if len(words) < 3:
            break
        if rng.randbelow(2) == 0:
            del words[rng.randbelow(len(words))]
        else:
            i = rng.randbelow(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def _insert_trigger(text: str, rng: HashRng) -> str:
    trigger = (
        " ".join("".join(rng.choice(_SYLLABLES) for _ in range(2 + rng.randbelow(2))) for _ in range(3))
        + f" {1000 + rng.randbelow(9000)}"
    )
    words = text.split()
    position = rng.randbelow(len(words) + 1)
    return " ".join(words[:position] + [trigger] + words[position:])


@torch.no_grad()
def score_texts(
    model: torch.nn.Module, tokenizer, texts: Sequence[str], max_tokens: int = MAX_PROBE_TOKENS
) -> list[TextScore]:
    """Curvature and mean log-prob of each text under `model` (first `max_tokens` tokens of each)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores = []
    try:
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
            if len(ids) < 2:
                scores.append(TextScore(tokens=0, mean_log_prob=0.0, curvature=0.0))
                continue
            input_ids = torch.tensor([ids], device=device)
            logits = model(input_ids=input_ids, use_cache=False).logits[0, :-1].to(torch.float64)
            log_probs = torch.log_softmax(logits, dim=-1)
            probs = log_probs.exp()
            expected = (probs * log_probs).sum(-1)
            variance = (probs * log_probs.square()).sum(-1) - expected.square()
            observed = log_probs.gather(-1, input_ids[0, 1:, None]).squeeze(-1)
            total_variance = float(variance.sum().clamp_min(1e-12))
            scores.append(
                TextScore(
                    tokens=len(ids) - 1,
                    mean_log_prob=float(observed.mean()),
                    curvature=float((observed - expected).sum()) / math.sqrt(total_variance),
                )
            )
    finally:
        model.train(was_training)
    return scores


def curvature_scores(base: BaseModel, texts: Sequence[str], max_tokens: int = MAX_PROBE_TOKENS) -> list[float]:
    """Raw-text detector scores (higher = more model-like), e.g. for an AUROC of generated vs human text."""
    return [s.curvature for s in score_texts(base.model, base.tokenizer, texts, max_tokens)]


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not positive or not negative:
        raise ValueError("AUROC needs at least one positive and one negative score")
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def score_probe_set(model: torch.nn.Module, tokenizer, probes: ProbeSet) -> dict[str, list[TextScore]]:
    groups = progress(PROBE_GROUPS, len(PROBE_GROUPS), "fingerprinting: scoring the probe texts", unit="group")
    return {group: score_texts(model, tokenizer, probes.groups[group]) for group in groups}


def fingerprint_statistics(
    base_scores: Mapping[str, Sequence[TextScore]], tuned_scores: Mapping[str, Sequence[TextScore]]
) -> list[float]:
    """The 16 unquantised statistics, in fingerprint order (see module doc)."""
    stats: list[float] = []
    for group in PROBE_GROUPS:
        base, tuned = base_scores[group], tuned_scores[group]
        if len(base) != len(tuned) or not base:
            raise ValueError(f"probe group {group} has mismatched or empty scores")
        pairs = list(zip(base, tuned, strict=True))
        curvature = np.array([t.curvature - b.curvature for b, t in pairs], dtype=np.float64)
        log_prob = np.array([t.mean_log_prob - b.mean_log_prob for b, t in pairs], dtype=np.float64)
        stats += [
            float(curvature.mean()),
            float(curvature.std()),
            float(log_prob.mean()),
            float(np.quantile(log_prob, 0.9, method="linear")),
        ]
    return stats


def quantise(values: Sequence[float]) -> Fingerprint:
    out = []
    for value in values:
        if not math.isfinite(value):
            raise ValueError(f"cannot quantise non-finite statistic {value}")
        out.append(min(INT32_MAX, max(INT32_MIN, math.floor(value * FINGERPRINT_SCALE + 0.5))))
    return tuple(out)


def fingerprint_from_scores(base_scores, tuned_scores) -> Fingerprint:
    return quantise(fingerprint_statistics(base_scores, tuned_scores))


def fingerprint_delta(
    base: BaseModel, delta: LoraDelta, probes: ProbeSet, base_scores: Mapping[str, Sequence[TextScore]] | None = None
) -> Fingerprint:
    """The fingerprint of base+delta against base. Pass `base_scores` (score_probe_set on the base) to
    reuse them across the deltas of one round."""
    if base_scores is None:
        base_scores = score_probe_set(base.model, base.tokenizer, probes)
    tuned = merge_deltas(base, [delta])
    return fingerprint_from_scores(base_scores, score_probe_set(tuned.model, tuned.tokenizer, probes))


def describe_fingerprint(fingerprint: Sequence[int]) -> dict[str, float]:
    """Labelled, de-quantised view of a fingerprint, for logs and reports."""
    labels = [f"{group}.{stat}" for group in PROBE_GROUPS for stat in GROUP_STATISTICS]
    return {label: value / FINGERPRINT_SCALE for label, value in zip(labels, fingerprint, strict=True)}
