"""Perplexity under a causal LM: a tiny random Llama and a tokenizer trained offline (no hub access)."""

import math
import statistics

import pytest

from workers.data import SAMPLES_DIR, CuratorPolicy, compute_signals, perplexity

pytest.importorskip("torch")


def test_perplexity_per_record_batched_and_deterministic(tiny_lm):
    model, tokenizer = tiny_lm
    texts = [
        "Water boils at 100 degrees Celsius.",
        "The Moon orbits Earth.",
        "a",
        "Photosynthesis converts light energy into chemical energy. " * 3,
    ]
    model.train()  # the function must not leave it in another mode
    stats = perplexity(texts, model, tokenizer, batch_size=3)
    assert model.training
    assert len(stats.per_record) == 4 and all(v is not None and v > 1 for v in stats.per_record)
    # A random model is close to uniform over its vocabulary.
    vocab = model.config.vocab_size
    assert all(vocab / 4 < v < vocab * 4 for v in stats.per_record)
    assert stats.median == pytest.approx(statistics.median(stats.per_record))
    assert stats.mean == pytest.approx(sum(stats.per_record) / 4)
    assert stats.tokens == sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    # Batching and padding do not change a record's value.
    alone = [perplexity([text], model, tokenizer).per_record[0] for text in texts]
    assert stats.per_record == pytest.approx(alone, rel=1e-4)
    assert perplexity(texts, model, tokenizer, batch_size=3) == stats


def test_perplexity_truncates_and_handles_unscorable(tiny_lm):
    model, tokenizer = tiny_lm
    long = perplexity(["word " * 2000], model, tokenizer, max_tokens=64)
    assert long.tokens == 63
    # Without BOS a one-token text has nothing to predict.
    empty = perplexity(["a"], model, tokenizer, prepend_bos=False)
    assert empty.per_record == [None] and empty.mean is None and empty.median is None and empty.tokens == 0


def test_signals_with_a_model(tiny_lm):
    model, tokenizer = tiny_lm
    signals = compute_signals(SAMPLES_DIR / "good.jsonl", model=model, tokenizer=tokenizer, perplexity_sample=8)
    assert signals.perplexity is not None and len(signals.perplexity.per_record) == 8
    assert math.isfinite(signals.perplexity.mean)
    # A random model's perplexity (~ its vocabulary) reads as not fluent under the default bounds.
    assert CuratorPolicy().score(signals).truthfulness < 50
    lenient = CuratorPolicy(perplexity_good=2 * model.config.vocab_size, perplexity_bad=1e6)
    assert lenient.score(signals).truthfulness == 95
