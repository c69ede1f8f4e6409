"""Fixtures of the dataset tests: files written from lines, and a tiny causal LM built offline."""

from __future__ import annotations

import json

import pytest


def _jsonl(*records: object) -> bytes:
    """A JSON Lines file: dicts and lists are dumped, bytes and str are taken as a line as is."""
    lines = []
    for record in records:
        if isinstance(record, bytes):
            lines.append(record)
        elif isinstance(record, str):
            lines.append(record.encode("utf-8"))
        else:
            lines.append(json.dumps(record).encode("utf-8"))
    return b"\n".join(lines) + b"\n"


@pytest.fixture
def jsonl():
    """jsonl(*records) -> bytes of a JSON Lines file (dicts/lists dumped, bytes/str lines as they are)."""
    return _jsonl


@pytest.fixture
def write(tmp_path):
    """write(data, name="data.jsonl") -> path of a file holding `data` (bytes)."""

    def make(data: bytes, name: str = "data.jsonl"):
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return make


@pytest.fixture(scope="session")
def tiny_lm():
    """(model, tokenizer): a randomly initialised 2-layer Llama and a byte-level BPE trained here, no hub."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from workers.data import SAMPLES_DIR

    corpus = [json.loads(line)["text"] for line in (SAMPLES_DIR / "good.jsonl").read_text().splitlines()]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=backend.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = LlamaForCausalLM(config)
    return model, tokenizer
