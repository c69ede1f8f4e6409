"""Merging deltas into plain models: matches peft's adapter model; chains compose; lineage is checked."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from peft import set_peft_model_state_dict

from workers.ml.delta import DeltaRejected, load_delta
from workers.ml.merge import merge_deltas
from workers.ml.models import weights_hash
from workers.ml.training import peft_model_for, train_lora


@pytest.fixture(scope="module")
def inputs(tiny, batch):
    ids = tiny.tokenizer(batch[:2], add_special_tokens=False, padding="max_length", max_length=48, truncation=True)
    return torch.tensor(ids["input_ids"])


@pytest.fixture(scope="module")
def version_one(tiny, honest):
    return merge_deltas(tiny, [honest.delta])


@pytest.fixture(scope="module")
def second_delta(version_one, other_batch, spec, round_seed):
    """A delta of the next round, trained on version one."""
    return train_lora(version_one, other_batch, dataclasses.replace(spec, steps=8), round_seed + 100).delta


def logits(model, inputs):
    with torch.no_grad():
        return model(input_ids=inputs, use_cache=False).logits


def test_merge_reproduces_the_peft_adapter_model(tiny, honest, spec, version_one, inputs):
    reference = peft_model_for(tiny.model, spec)
    result = set_peft_model_state_dict(reference, honest.delta.tensors)
    assert not result.unexpected_keys
    assert not [k for k in result.missing_keys if "lora_" in k]
    reference.eval()
    expected = logits(reference, inputs)
    merged = logits(version_one.model, inputs)
    assert not torch.allclose(expected, logits(tiny.model, inputs), atol=1e-3)  # the delta does something
    torch.testing.assert_close(merged, expected, atol=1e-5, rtol=0)


def test_merging_leaves_the_base_untouched(tiny, version_one):
    assert weights_hash(tiny.model) == tiny.weights_hash
    assert version_one.weights_hash != tiny.weights_hash
    assert version_one.name == tiny.name


def test_a_chain_equals_applying_deltas_in_sequence(tiny, honest, version_one, second_delta, inputs):
    chained = merge_deltas(tiny, [honest.delta, second_delta])
    sequential = merge_deltas(version_one, [second_delta])
    assert chained.weights_hash == sequential.weights_hash
    torch.testing.assert_close(logits(chained.model, inputs), logits(sequential.model, inputs), atol=0, rtol=0)
    assert chained.weights_hash != version_one.weights_hash


def test_lineage_is_checked(tiny, honest, spec, version_one, second_delta):
    with pytest.raises(DeltaRejected, match="delta 0 was trained on weights .* but the chain is at"):
        merge_deltas(tiny, [second_delta])
    with pytest.raises(DeltaRejected, match="delta 1 was trained on weights"):
        merge_deltas(tiny, [honest.delta, honest.delta])
    second_spec = second_delta.spec
    assert load_delta(second_delta.to_bytes(), second_spec, version_one).manifest == second_delta.manifest
    with pytest.raises(DeltaRejected, match="trained on base weights"):
        load_delta(second_delta.to_bytes(), second_spec, tiny)
