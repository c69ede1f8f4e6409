"""Base models: the tiny test model and the SmolLM2 genesis model, both loaded offline from the cache."""

from __future__ import annotations

import time

import pytest
import torch

from workers.ml.models import (
    CACHE_LAYOUT,
    MODEL_CACHE_ENV,
    SMOLLM2,
    ModelError,
    gguf_token_id,
    load_base_model,
    locate_smollm2_gguf,
    model_cache_dir,
    reference_corpus,
    weights_hash,
)


def test_tiny_is_the_same_model_when_rebuilt(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv(MODEL_CACHE_ENV, str(tmp_path))
    assert model_cache_dir() == tmp_path
    rebuilt = load_base_model("tiny", device="cpu")
    assert (tmp_path / f"tiny-{CACHE_LAYOUT}" / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    assert rebuilt.weights_hash == tiny.weights_hash
    assert rebuilt.tokenizer("The river rose.")["input_ids"] == tiny.tokenizer("The river rose.")["input_ids"]
    assert 3_000_000 < sum(p.numel() for p in tiny.model.parameters()) < 6_000_000


# Pinned identity of `tiny`: its init uses numpy's PCG64 stream, not torch's CPU-specific kernels, so
# this holds across machines. If it changes, every cached `tiny` delta is orphaned: bump CACHE_LAYOUT.
TINY_WEIGHTS_HASH = "0x0f9be75f29209f7010fe6c71e70f09c8d2bdb7b73868e84f06695046f21dfd3f"


def test_tiny_identity_is_pinned(tiny):
    assert tiny.weights_hash == TINY_WEIGHTS_HASH


def test_tiny_tokenizer_round_trips_any_text(tiny):
    text = "Grüße, 東京! Tabs\tand numbers 12345."
    ids = tiny.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny.tokenizer.decode(ids) == text
    assert max(ids) < tiny.model.config.vocab_size
    assert tiny.tokenizer.eos_token_id == tiny.model.config.eos_token_id


def test_base_model_is_frozen_and_hash_tracks_weights(tiny):
    assert not tiny.model.training
    assert not any(p.requires_grad for p in tiny.model.parameters())
    assert tiny.weights_hash == weights_hash(tiny.model)
    assert tiny.weights_hash.startswith("0x") and len(tiny.weights_hash) == 66
    changed = torch.nn.Linear(2, 2)
    before = weights_hash(changed)
    with torch.no_grad():
        changed.weight[0, 0] += 1e-6
    assert weights_hash(changed) != before


def test_unknown_model_is_refused():
    with pytest.raises(ModelError, match="unknown base model 'gpt-9'"):
        load_base_model("gpt-9")


def test_reference_corpus_ships_with_the_package():
    corpus = reference_corpus()
    assert len(corpus) >= 100 and len(set(corpus)) == len(corpus)
    assert all(len(p.split()) >= 25 for p in corpus)


def test_smollm2_loads_offline_and_answers():
    try:
        locate_smollm2_gguf()
    except ModelError as error:
        pytest.skip(str(error))
    started = time.perf_counter()
    base = load_base_model(SMOLLM2, device="cpu")  # first call converts the GGUF into the cache (~25 s)
    loaded_in = time.perf_counter() - started
    assert base.model.config.num_hidden_layers == 30
    tokenizer = base.tokenizer
    # The separator of training texts is the file's own end-of-text token, whatever transformers' converter says.
    assert tokenizer.eos_token_id == gguf_token_id(locate_smollm2_gguf(), "tokenizer.ggml.eos_token_id") == 2
    assert tokenizer.eos_token == "<|im_end|>"
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True
    )
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        output = base.model.generate(**inputs, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    print(f"smollm2 load {loaded_in:.1f} s, answer {answer!r}")
    assert answer.strip()
    assert "Paris" in answer
