"""The inference node's input handling in process (starlette's TestClient on the real app and tiny model): where
prompt tokenization runs, the character bound before it, and the stop-string filter's per-token work."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from servekit import MODEL_ID
from starlette.testclient import TestClient

from workers.serve.app import ServedVersion, completion_top_logprobs, create_app
from workers.serve.engine import Engine, StopText


class RecordingEngine(Engine):
    """The tiny model's real engine, noting for each tokenization whether it ran on an event loop's thread and
    how many token ids each decode was given."""

    def __init__(self, base):
        super().__init__(base)
        self.tokenized: list[tuple[str, bool]] = []
        self.decoded: list[int] = []

    @staticmethod
    def _on_event_loop() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def encode(self, text: str) -> list[int]:
        self.tokenized.append(("encode", self._on_event_loop()))
        return super().encode(text)

    def chat_prompt(self, messages: list[dict[str, str]]) -> list[int]:
        self.tokenized.append(("chat_prompt", self._on_event_loop()))
        return super().chat_prompt(messages)

    def decode(self, token_ids: list[int]) -> str:
        self.decoded.append(len(token_ids))
        return super().decode(token_ids)


@pytest.fixture
def engine(tiny_engine) -> Iterator[RecordingEngine]:
    recording = RecordingEngine(tiny_engine.base)
    try:
        yield recording
    finally:
        recording.close()  # its own final-norm hook


@pytest.fixture
def client(engine) -> TestClient:
    return TestClient(create_app(engine, ServedVersion(1, engine.weights_hash, "tiny")))


def test_prompts_are_tokenized_off_the_event_loop(engine, client):
    chat = {"model": MODEL_ID, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 1}
    assert client.post("/v1/chat/completions", json=chat).status_code == 200
    text = {"model": MODEL_ID, "prompt": "hello", "max_tokens": 1}
    assert client.post("/v1/completions", json=text).status_code == 200
    # chat_prompt calls encode itself: both on the tokenizer thread, never where the event loop runs
    assert [name for name, _ in engine.tokenized] == ["chat_prompt", "encode", "encode"]
    assert not any(on_loop for _, on_loop in engine.tokenized)


@pytest.mark.parametrize("path, param", [("/v1/chat/completions", "messages"), ("/v1/completions", "prompt")])
def test_a_prompt_too_long_by_its_characters_is_refused_without_tokenizing(engine, client, path, param):
    chars = engine.context_length * engine.max_token_chars + 1
    body = {"model": MODEL_ID, "max_tokens": 1}
    body.update(
        {"messages": [{"role": "user", "content": "a" * chars}]} if param == "messages" else {"prompt": "a" * chars}
    )
    answer = client.post(path, json=body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", param)
    assert engine.tokenized == []


def test_the_longest_token_bounds_characters_per_token(tiny_engine):
    # the bound holds for every token the tokenizer can produce
    longest = max(len(tiny_engine.token_text(i)) for i in range(tiny_engine.vocab_size))
    assert 1 <= longest <= tiny_engine.max_token_chars


# Prose with characters of 2, 3 and 4 UTF-8 bytes, which byte-level tokens split.
TEXT = "Nodes share the model: naïve café, 東京 and 🚀 launches. " * 40


def test_stop_text_decodes_only_a_window_and_releases_the_whole_text(engine):
    ids = engine.encode(TEXT)
    assert len(ids) > 500
    stop = StopText(engine, ["never in the text"])
    engine.decoded.clear()
    released = "".join(stop.push(i) for i in ids) + stop.push(None)
    assert released == engine.decode(ids)
    # each push decodes the tokens since the last complete character and one before: never the text so far
    assert max(engine.decoded[:-1]) <= 8


def test_stop_text_cuts_at_the_first_stop_string_across_token_boundaries(engine):
    ids = engine.encode(TEXT)
    full = engine.decode(ids)
    for needle in ("東京 and 🚀", "café, 東", "launches. Nodes", "🚀"):
        stop = StopText(engine, ["absent", needle])
        pieces = []
        for token in ids:
            pieces.append(stop.push(token))
            if stop.stopped:
                break
        assert stop.stopped and "".join(pieces) == full[: full.find(needle)]


def test_completion_top_logprobs_keep_the_most_likely_of_alternatives_that_decode_alike(tiny_engine):
    alike = [i for i in range(tiny_engine.vocab_size) if tiny_engine.token_text(i) == "\ufffd"][:2]
    other = tiny_engine.encode(" the")[0]
    top = [(alike[0], -0.5), (other, -1.0), (alike[1], -2.0)]
    assert completion_top_logprobs(tiny_engine, top) == {"\ufffd": -0.5, tiny_engine.token_text(other): -1.0}
