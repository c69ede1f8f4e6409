"""Deterministic LoRA training: byte-identical honest runs, manifest contents, seeded data order."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors import safe_open

from workers.ml.delta import MANIFEST_KEY, data_digest, expected_lora_shapes, load_delta
from workers.ml.models import weights_hash
from workers.ml.seeds import seed_hex
from workers.ml.training import TrainingError, batch_schedule, train_lora, training_blocks


def test_two_honest_runs_are_byte_identical(honest, honest_again):
    assert honest.adapter == honest_again.adapter
    assert honest.manifest == honest_again.manifest


def test_seed_forms_give_the_same_adapter(tiny, batch, spec, honest, round_seed):
    as_bytes32 = train_lora(tiny, batch, spec, round_seed.to_bytes(32, "big"))
    assert as_bytes32.adapter == honest.adapter


def test_different_seed_or_data_gives_a_different_adapter(honest, other_seed_run, other_data_run):
    assert len({honest.adapter, other_seed_run.adapter, other_data_run.adapter}) == 3
    assert other_seed_run.manifest.round_seed != honest.manifest.round_seed
    assert other_data_run.manifest.data_digest != honest.manifest.data_digest


def test_manifest_describes_the_run(tiny, batch, spec, honest, round_seed):
    manifest = honest.manifest
    assert manifest.spec_hash == spec.spec_hash_hex()
    assert manifest.base_model == "tiny" and manifest.base_weights_hash == tiny.weights_hash
    assert manifest.round_seed == seed_hex(round_seed)
    assert manifest.data_digest == data_digest(batch)
    assert dict(manifest.tensors) == expected_lora_shapes(spec, tiny.model)
    assert manifest.final_loss == honest.losses[-1]
    assert len(honest.losses) == spec.steps
    assert honest.losses[-1] < honest.losses[0]  # it learned something
    assert honest.tokens == spec.steps * spec.batch_size * spec.sequence_length


def test_adapter_holds_only_lora_tensors_and_the_manifest(tmp_path, honest, spec, tiny):
    path = honest.write(tmp_path / "delta.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata().keys() == {MANIFEST_KEY}
        assert json.loads(handle.metadata()[MANIFEST_KEY])["spec_hash"] == spec.spec_hash_hex()
        names = list(handle.keys())
    assert names == sorted(names) and all(".lora_A.weight" in n or ".lora_B.weight" in n for n in names)
    # 4 layers x 4 projections x (A, B)
    assert len(names) == 4 * 4 * 2
    loaded = load_delta(path, spec, tiny)
    assert all(torch.equal(loaded.tensors[n], honest.delta.tensors[n]) for n in names)


def test_training_leaves_the_base_and_the_callers_rng_alone(tiny, batch, spec, round_seed):
    torch.manual_seed(1234)
    expected_next = torch.rand(3)
    torch.manual_seed(1234)
    train_lora(tiny, batch, dataclasses.replace(spec, steps=2), round_seed)
    assert torch.equal(torch.rand(3), expected_next)
    assert weights_hash(tiny.model) == tiny.weights_hash
    assert not any(p.requires_grad for p in tiny.model.parameters())


def test_dropout_runs_are_still_deterministic(tiny, batch, spec, round_seed):
    with_dropout = dataclasses.replace(spec, lora_dropout=0.1, steps=5)
    first = train_lora(tiny, batch, with_dropout, round_seed)
    second = train_lora(tiny, batch, with_dropout, round_seed)
    assert first.adapter == second.adapter


def test_data_order_comes_from_the_round_seed(tiny, batch, spec, round_seed, other_seed):
    blocks = training_blocks(tiny.tokenizer, batch, spec, round_seed)
    assert blocks.shape[1] == spec.sequence_length
    assert torch.equal(blocks, training_blocks(tiny.tokenizer, batch, spec, round_seed))
    assert not torch.equal(blocks, training_blocks(tiny.tokenizer, batch, spec, other_seed))
    schedule = batch_schedule(len(blocks), spec, round_seed)
    assert len(schedule) == spec.steps and all(len(step) == spec.batch_size for step in schedule)
    first_epoch = [i for step in schedule for i in step][: len(blocks)]
    assert sorted(first_epoch) == list(range(len(blocks)))  # each epoch visits every block once
    assert schedule != batch_schedule(len(blocks), spec, other_seed)


def test_short_corpus_wraps_into_one_block(tiny, spec, round_seed):
    blocks = training_blocks(tiny.tokenizer, ["Tiny."], spec, round_seed)
    assert blocks.shape == (1, spec.sequence_length)


def test_training_refuses_mismatched_inputs(tiny, batch, spec, round_seed):
    with pytest.raises(TrainingError, match="spec is for base model 'smollm2-135m'"):
        train_lora(tiny, batch, dataclasses.replace(spec, base_model="smollm2-135m"), round_seed)
    with pytest.raises(TrainingError, match="match no layer"):
        train_lora(tiny, batch, dataclasses.replace(spec, target_modules=("c_attn",)), round_seed)
    with pytest.raises(TrainingError, match="no training texts"):
        train_lora(tiny, [], spec, round_seed)
