"""What `deepshard serve --weights` and `deepshard verify-response --weights` load from a version folder
(workers.ml.models.load_version_folder): safetensors only, every file's framing checked against its size before
the library reads it, every parameter present, and no more context than the base model's whatever config.json
claims. Each hostile folder gives one `error:` line, never a traceback."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from workers.cli import main
from workers.ml.models import (
    MAX_LOADER_FILE_BYTES,
    TINY_CONTEXT_TOKENS,
    ModelError,
    check_safetensors_file,
    load_base_model,
)
from workers.serve.cli import load_engine


@pytest.fixture(scope="module")
def tiny_base():
    return load_base_model("tiny", "cpu")


@pytest.fixture
def folder(tmp_path, tiny_base):
    """A version folder as `deepshard model get` writes it (config, safetensors weights, tokenizer)."""
    out = tmp_path / "version"
    tiny_base.model.save_pretrained(out)
    tiny_base.tokenizer.save_pretrained(out)
    return out


def refusal(capsys, folder) -> str:
    """The one `error:` line `verify-response --weights folder` prints (the proof file is never reached)."""
    proof = folder.parent / "proof.json"
    proof.write_text("{}")
    assert main(["verify-response", str(proof), "--model", "tiny", "--weights", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_an_honest_folder_loads_as_its_base(folder, tiny_base):
    engine = load_engine("tiny", folder)
    assert engine.weights_hash == tiny_base.weights_hash
    assert engine.context_length == TINY_CONTEXT_TOKENS


def test_config_cannot_raise_the_context_above_the_base_models(folder):
    """config.json claiming 10^9 positions made the node accept max_tokens 100,000,000 (unbounded memory)."""
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 10**9}))
    assert load_engine("tiny", folder).context_length == TINY_CONTEXT_TOKENS


def test_a_context_below_one_token_is_refused(folder, capsys):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": -5}))
    assert "claims a context of -5 tokens: refusing to load" in refusal(capsys, folder)


def test_a_config_of_the_wrong_type_gives_one_line(folder, capsys):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 1e9}))
    assert "expected int, got float" in refusal(capsys, folder)


def test_pickled_weights_are_refused(folder, tiny_base, capsys):
    (folder / "model.safetensors").unlink()
    torch.save(tiny_base.model.state_dict(), folder / "pytorch_model.bin")  # what transformers loaded before
    assert "holds no safetensors weights (pickled weights such as pytorch_model.bin are refused)" in refusal(
        capsys, folder
    )


def header_file(header: dict, data: bytes = b"", length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


HOSTILE = {
    "garbage": (b"\x8f\x03 not a safetensors file at all" * 8, "runs past the file's"),
    "a 2^62-byte header": (header_file({}, length=1 << 62), f"header length {1 << 62:,} runs past"),
    "40 GB of tensors": (
        header_file({"w": {"dtype": "F32", "shape": [10_000, 1_000_000], "data_offsets": [0, 40_000_000_000]}}),
        "tensor 'w' claims bytes 0-40000000000 of a 0-byte data section",
    ),
    "a header that is not JSON": (header_file({}, length=4) + b"{x:1", "its header: not valid JSON"),
    "a range that does not fit the shape": (
        header_file({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),
        "tensor 'w''s byte range does not match its shape [2]",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_safetensors_give_one_line(folder, capsys, case):
    content, reason = HOSTILE[case]
    (folder / "model.safetensors").write_bytes(content)
    assert reason in refusal(capsys, folder)


def test_weights_without_tensors_are_refused_not_randomly_initialised(folder, capsys):
    save_file({}, str(folder / "model.safetensors"))
    assert "it holds no tensors" in refusal(capsys, folder)
    save_file({"unrelated": torch.zeros(2)}, str(folder / "model.safetensors"))
    assert "lack " in refusal(capsys, folder)


def test_loader_files_are_size_checked_before_transformers_reads_them(folder, capsys):
    """config.json, tokenizer.json and the safetensors index were read whole by transformers before any check."""
    with (folder / "config.json").open("r+b") as handle:
        handle.truncate(MAX_LOADER_FILE_BYTES + 1)  # sparse: no disk used
    assert f"holds {MAX_LOADER_FILE_BYTES + 1:,} bytes, over the" in refusal(capsys, folder)
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to("/dev/zero")  # endless, and stat says 0 bytes
    assert "config.json is not a regular file" in refusal(capsys, folder)


@pytest.mark.parametrize("name", ["sub/model.safetensors", "../model.safetensors", "absent.safetensors"])
def test_an_index_may_name_only_top_level_files(folder, capsys, name):
    (folder / "sub").mkdir()
    (folder / "sub" / "model.safetensors").write_bytes(header_file({}, length=1 << 62))  # never header-checked
    index = {"metadata": {}, "weight_map": {"model.norm.weight": name}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert f"names {name!r}, not a file at the top of" in refusal(capsys, folder)


def test_bool_dimensions_and_short_files_are_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(header_file({"w": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, b"\0" * 4))
    with pytest.raises(ModelError, match="tensor 'w' claims bytes 0-4"):
        check_safetensors_file(path)
    path.write_bytes(b"\x01\x02")
    with pytest.raises(ModelError, match="shorter than its 8-byte header length"):
        check_safetensors_file(path)
