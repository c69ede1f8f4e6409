"""Curvature fingerprints: probe set, the analytic curvature, quantisation and distances between deltas."""

from __future__ import annotations

import math

import pytest
import torch

from workers.ml.fingerprint import (
    FINGERPRINT_LENGTH,
    GROUP_STATISTICS,
    INT32_MAX,
    INT32_MIN,
    PROBE_GROUPS,
    PROBES_PER_GROUP,
    auroc,
    build_probe_set,
    curvature_scores,
    describe_fingerprint,
    fingerprint_delta,
    fingerprint_distance,
    quantise,
    score_texts,
)
from workers.ml.models import reference_corpus
from workers.protocol.constants import K


@pytest.fixture(scope="module")
def fingerprints(tiny, probes, base_scores, honest, honest_again, other_seed_run, other_data_run):
    def of(delta):
        return fingerprint_delta(tiny, delta, probes, base_scores)

    generator = torch.Generator().manual_seed(7)
    noised = {n: t * (1 + 1e-3 * torch.randn(t.shape, generator=generator)) for n, t in honest.delta.tensors.items()}
    zeroed = {n: torch.zeros_like(t) for n, t in honest.delta.tensors.items()}
    doubled = {n: t * math.sqrt(2.0) for n, t in honest.delta.tensors.items()}  # B@A doubles
    prints = {
        "honest": of(honest.delta),
        "honest_again": of(honest_again.delta),
        "other_seed": of(other_seed_run.delta),
        "other_data": of(other_data_run.delta),
        "noised_1e-3": of(honest.delta.with_tensors(noised)),
        "lazy": of(honest.delta.with_tensors(zeroed)),
        "scaled_x2": of(honest.delta.with_tensors(doubled)),
    }
    distances = {k: fingerprint_distance(prints["honest"], v) for k, v in prints.items()}
    print("fingerprint distances to the honest delta:", distances)
    return prints, distances


def test_probe_set_groups(probes, batch):
    assert tuple(probes.groups) == PROBE_GROUPS
    assert all(len(texts) == PROBES_PER_GROUP for texts in probes.groups.values())
    corpus = set(reference_corpus())
    sampled = probes.groups["batch"]
    assert set(sampled) <= set(batch) and len(set(sampled)) == len(sampled)
    assert set(probes.groups["reference"]) <= corpus
    for original, perturbed in zip(sampled, probes.groups["perturbed"], strict=True):
        assert perturbed != original and set(perturbed.split()) <= set(original.split())
    reference = set(probes.groups["reference"])
    for canary in probes.groups["canary"]:
        assert canary not in corpus and any(word.isdigit() for word in canary.split())
        host = [p for p in corpus if set(p.split()) <= set(canary.split())]
        assert host and host[0] not in reference  # canary hosts are disjoint from the reference group


def test_probe_set_is_fixed_by_the_round_seed(probes, batch, round_seed, other_seed):
    assert build_probe_set(round_seed, batch) == probes
    other = build_probe_set(other_seed, batch)
    assert all(other.groups[g] != probes.groups[g] for g in PROBE_GROUPS)


def test_probe_set_excludes_batch_texts_from_held_out_groups():
    corpus = reference_corpus()
    probes = build_probe_set(1, corpus[:60])
    assert not set(probes.groups["reference"]) & set(corpus[:60])


def test_curvature_matches_the_definition(tiny):
    text = "The river rose slowly through the night."
    ids = tiny.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = tiny.model(input_ids=torch.tensor([ids])).logits[0].double()
    observed, expected, variance = [], [], []
    for t in range(1, len(ids)):
        log_p = torch.log_softmax(logits[t - 1], -1)
        p = log_p.exp()
        observed.append(float(log_p[ids[t]]))
        expected.append(float((p * log_p).sum()))
        variance.append(float((p * log_p**2).sum()) - expected[-1] ** 2)
    (score,) = score_texts(tiny.model, tiny.tokenizer, [text])
    assert score.tokens == len(ids) - 1
    assert score.curvature == pytest.approx((sum(observed) - sum(expected)) / math.sqrt(sum(variance)), rel=1e-9)
    assert score.mean_log_prob == pytest.approx(sum(observed) / len(observed), rel=1e-9)
    assert curvature_scores(tiny, [text]) == [score.curvature]


def test_training_raises_the_batch_texts_score(tiny, honest, base_scores, probes):
    from workers.ml.merge import merge_deltas

    tuned = merge_deltas(tiny, [honest.delta])
    after = score_texts(tuned.model, tuned.tokenizer, probes.groups["batch"])
    before = base_scores["batch"]
    assert all(a.mean_log_prob > b.mean_log_prob for a, b in zip(after, before, strict=True))
    assert sum(a.curvature for a in after) > sum(b.curvature for b in before)


def test_fingerprint_is_sixteen_int32s_and_deterministic(fingerprints, tiny, honest, probes):
    prints, _ = fingerprints
    honest_print = prints["honest"]
    assert len(honest_print) == FINGERPRINT_LENGTH == len(PROBE_GROUPS) * len(GROUP_STATISTICS) == K == 16
    assert all(type(v) is int and INT32_MIN <= v <= INT32_MAX for v in honest_print)
    assert fingerprint_delta(tiny, honest.delta, probes) == honest_print  # base scores recomputed
    assert len(describe_fingerprint(honest_print)) == 16


def test_honest_runs_agree_and_dishonest_ones_do_not(fingerprints):
    _, d = fingerprints
    assert d["honest_again"] == 0
    # Float-level noise on the weights moves the fingerprint a little...
    assert d["noised_1e-3"] < 2_000
    # ...another seed, other data, no training or a scaled delta move it far more.
    for far in ("other_seed", "other_data", "lazy", "scaled_x2"):
        assert d[far] > 10 * max(d["noised_1e-3"], 100), far


def test_quantisation_rounds_and_clamps():
    assert quantise([0.00004, 0.00005, -0.00005, 1.23456, 1e9, -1e9]) == (0, 1, 0, 12346, INT32_MAX, INT32_MIN)
    with pytest.raises(ValueError, match="non-finite"):
        quantise([float("nan")])


def test_auroc():
    assert auroc([3, 4], [1, 2]) == 1.0
    assert auroc([1, 2], [3, 4]) == 0.0
    assert auroc([1], [1]) == 0.5
