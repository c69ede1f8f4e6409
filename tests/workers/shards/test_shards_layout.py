"""Cutting a version into layer-range shards: every tensor exactly once, in safetensors plaintexts, the same from a
model in memory and from its saved folder."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load

from workers.shards import ShardError, ShardRejected, shard_state_dict, shard_version
from workers.shards.layout import load_shard


def test_one_layer_per_shard_gives_embed_four_layer_shards_and_head(tiny, sharded):
    assert [(s.index, s.part, s.layers) for s in sharded.shards] == [
        (0, "embed", None),
        (1, "layers", (0, 0)),
        (2, "layers", (1, 1)),
        (3, "layers", (2, 2)),
        (4, "layers", (3, 3)),
        (5, "head", None),
    ]
    state = tiny.model.state_dict()
    names = [t.name for s in sharded.shards for t in s.tensors]
    assert sorted(names) == sorted(state)
    assert sharded.aliases == ()
    assert sharded.weights_hash == tiny.weights_hash
    assert {t.name for t in sharded.shards[5].tensors} == {"model.norm.weight", "lm_head.weight"}
    for shard in sharded.shards:
        tensors = load(shard.plaintext)
        assert set(tensors) == {t.name for t in shard.tensors}
        assert all(tensors[name].equal(state[name]) for name in tensors)
    assert set(sharded.files) >= {"config.json", "tokenizer.json", "tokenizer_config.json"}


def test_layers_per_shard_groups_consecutive_layers(tiny):
    sharded = shard_version(tiny.model, tiny.tokenizer, layers_per_shard=3)
    assert [(s.part, s.layers) for s in sharded.shards] == [
        ("embed", None),
        ("layers", (0, 2)),
        ("layers", (3, 3)),
        ("head", None),
    ]
    with pytest.raises(ShardError, match="layers_per_shard must be >= 1"):
        shard_version(tiny.model, tiny.tokenizer, layers_per_shard=0)


def test_a_saved_folder_shards_exactly_like_the_model(tiny, sharded, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    from_folder = shard_version(tmp_path, layers_per_shard=1)
    assert from_folder.weights_hash == sharded.weights_hash
    assert [s.plaintext for s in from_folder.shards] == [s.plaintext for s in sharded.shards]


def test_a_folder_without_safetensors_weights_is_refused_not_unpickled(tiny, tmp_path):
    """A pickle checkpoint runs code when loaded: a folder holding only pytorch_model.bin is refused, whatever
    transformers would do with it, and a folder that does not load is one ShardError naming it."""
    tiny.model.config.save_pretrained(tmp_path)
    torch.save(tiny.model.state_dict(), tmp_path / "pytorch_model.bin")  # the pre-safetensors checkpoint format
    with pytest.raises(ShardError, match=r"holds no safetensors weights .*pytorch_model\.bin are refused"):
        shard_version(tmp_path)
    (tmp_path / "pytorch_model.bin").unlink()
    tiny.model.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": ')
    with pytest.raises(ShardError, match=f"cannot load the model folder {tmp_path}"):
        shard_version(tmp_path)


def test_foreign_files_and_wrong_plaintexts_are_refused(tiny, sharded):
    with pytest.raises(ShardError, match="'modeling_llama.py' is not a loader file"):
        shard_state_dict(tiny.model.state_dict(), {"modeling_llama.py": b""})
    with pytest.raises(ShardRejected, match="shard 4: the plaintext is not a safetensors file"):
        load_shard(4, b"\x00" * 64, sharded.shards[4].tensors)
    with pytest.raises(ShardRejected, match="shard 1: its tensors are not the ones the manifest lists"):
        load_shard(1, sharded.shards[2].plaintext, sharded.shards[1].tensors)
