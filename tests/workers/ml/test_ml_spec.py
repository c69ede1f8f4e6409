"""TrainingSpec canonical form and hash; round-seed derivations."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from eth_hash.auto import keccak

from workers.ml.seeds import HashRng, SeedError, derive_int_seed, derive_seed, normalize_round_seed
from workers.ml.spec import SpecError, TrainingSpec

DEFAULT_JSON = (
    b'{"base_model":"tiny","batch_size":4,"dtype":"float32","format":"deepshard/training-spec/v1",'
    b'"learning_rate":0.001,"lora_alpha":16.0,"lora_dropout":0.0,"lora_rank":8,"sequence_length":64,'
    b'"steps":20,"target_modules":["k_proj","o_proj","q_proj","v_proj"],"weight_decay":0.0}'
)
# Pinned: a change here means every spec CID and on-chain spec hash changes. Bump SPEC_FORMAT instead.
DEFAULT_HASH = "0xe987f19def31887a3c8e8d00bb82135a9f7d25992d308199d09e568910d57023"

# A different valid value for every field.
CHANGES = {
    "base_model": "smollm2-135m",
    "lora_rank": 16,
    "lora_alpha": 32.0,
    "lora_dropout": 0.05,
    "target_modules": ("q_proj", "v_proj"),
    "learning_rate": 2e-4,
    "steps": 21,
    "batch_size": 8,
    "sequence_length": 128,
    "dtype": "bfloat16",
    "weight_decay": 0.01,
}


def test_canonical_json_and_hash_are_pinned():
    spec = TrainingSpec(base_model="tiny")
    assert spec.canonical_json() == DEFAULT_JSON
    assert spec.spec_hash() == keccak(DEFAULT_JSON)
    assert spec.spec_hash_hex() == DEFAULT_HASH
    assert len(spec.spec_hash()) == 32


def test_every_field_changes_the_hash():
    assert set(CHANGES) == {f.name for f in dataclasses.fields(TrainingSpec)}
    base = TrainingSpec(base_model="tiny")
    hashes = {base.spec_hash()}
    for name, value in CHANGES.items():
        changed = dataclasses.replace(base, **{name: value})
        assert changed.spec_hash() != base.spec_hash(), name
        hashes.add(changed.spec_hash())
    assert len(hashes) == len(CHANGES) + 1


def test_equivalent_spellings_hash_alike():
    a = TrainingSpec(base_model="tiny", lora_alpha=16, target_modules=("v_proj", "q_proj", "q_proj"))
    b = TrainingSpec(base_model="tiny", lora_alpha=16.0, target_modules=["q_proj", "v_proj"])
    assert a.spec_hash() == b.spec_hash()
    assert a.target_modules == ("q_proj", "v_proj")


def test_json_round_trip():
    spec = TrainingSpec(base_model="smollm2-135m", learning_rate=1.5e-5, lora_dropout=0.1)
    again = TrainingSpec.from_json(spec.canonical_json())
    assert again == spec and again.canonical_json() == spec.canonical_json()
    assert b"1.5e-05" in spec.canonical_json()  # repr: shortest decimal that round-trips


@pytest.mark.parametrize(
    "change, message",
    [
        ({"lora_rank": 0}, "lora_rank"),
        ({"steps": 2.5}, "steps"),
        ({"batch_size": True}, "batch_size"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"lora_dropout": 1.0}, "lora_dropout"),
        ({"dtype": "int8"}, "dtype"),
        ({"target_modules": "q_proj"}, "target_modules"),
        ({"target_modules": ()}, "target_modules"),
        ({"base_model": ""}, "base_model"),
        ({"weight_decay": -1.0}, "weight_decay"),
    ],
)
def test_invalid_specs_are_refused(change, message):
    with pytest.raises(SpecError, match=message):
        TrainingSpec(**{"base_model": "tiny", **change})


def test_from_json_refuses_unknown_fields_and_formats():
    with pytest.raises(SpecError, match="unknown spec fields: extra"):
        TrainingSpec.from_dict({"base_model": "tiny", "extra": 1})
    with pytest.raises(SpecError, match="unsupported spec format"):
        TrainingSpec.from_dict({"base_model": "tiny", "format": "deepshard/training-spec/v0"})
    with pytest.raises(SpecError, match="not valid JSON"):
        TrainingSpec.from_json(b"{")


def test_round_seed_forms_agree():
    as_bytes = (5).to_bytes(32, "big")
    assert normalize_round_seed(5) == normalize_round_seed(as_bytes) == normalize_round_seed("0x" + as_bytes.hex())
    for bad in (-1, 2**256, b"short", "0xzz", True, 1.5):
        with pytest.raises(SeedError):
            normalize_round_seed(bad)


def test_derived_seeds_are_sha256_of_domain_label_seed_and_parts():
    seed = (1).to_bytes(32, "big")
    assert derive_seed(1, "x") == hashlib.sha256(b"deepshard/x\x00" + seed).digest()
    assert derive_seed(1, "x").hex() == "41501ae58950fed8127bb618f592ceeb957b5e019cb00149cfa4e4f719ea123f"
    assert (
        len(
            {
                derive_seed(1, "x"),
                derive_seed(2, "x"),
                derive_seed(1, "y"),
                derive_seed(1, "x", 0),
                derive_seed(1, "x", 1),
                derive_seed(1, "x", "ab", "c"),
                derive_seed(1, "x", "a", "bc"),
            }
        )
        == 7
    )
    assert 0 <= derive_int_seed(1, "x") < 2**63


def test_hash_rng_is_pinned_and_uniform_enough():
    rng = HashRng(derive_seed(1, "x"))
    assert [rng.randbelow(1000) for _ in range(5)] == [450, 941, 848, 926, 8]
    permutation = HashRng(b"p").permutation(50)
    assert sorted(permutation) == list(range(50)) and permutation != list(range(50))
    assert HashRng(b"p").permutation(50) == permutation
    counts = [0] * 4
    rng = HashRng(b"u")
    for _ in range(4000):
        counts[rng.randbelow(4)] += 1
    assert all(900 < c < 1100 for c in counts)
