"""The inference node's OpenAI API through the real `openai` client against a real uvicorn server (tiny model)."""

from __future__ import annotations

import json

import openai
import pytest
from servekit import ENV_API_KEYS, MAX_BODY_BYTES, MODEL_ID

from workers.serve.proof import Proof, verify
from workers.serve.schema import MAX_STOP, MAX_STOP_CHARS

HELLO = [{"role": "user", "content": "Tell me about the network."}]


def test_models_lists_the_version_with_its_weights_hash(server, tiny_engine):
    models = server.client().models.list().data
    assert [m.id for m in models] == [MODEL_ID]
    assert models[0].model_extra["weights_hash"] == tiny_engine.weights_hash
    assert server.client().models.retrieve(MODEL_ID).id == MODEL_ID


def test_chat_answer_has_the_openai_fields_and_a_verifiable_proof(server, tiny_engine):
    answer = server.client().chat.completions.create(model=MODEL_ID, messages=HELLO, max_tokens=40, seed=7)
    assert answer.id.startswith("chatcmpl-") and answer.object == "chat.completion" and answer.model == MODEL_ID
    choice = answer.choices[0]
    assert choice.finish_reason in ("length", "stop") and isinstance(choice.message.content, str)
    proof = Proof.from_json(choice.model_extra["deepshard_proof"])
    assert answer.usage.completion_tokens == len(proof.token_ids) <= 40
    assert answer.usage.prompt_tokens == len(proof.prompt_token_ids) == len(tiny_engine.chat_prompt(HELLO))
    assert verify(tiny_engine, proof, tiny_engine.chat_prompt(HELLO), replay=True).accepted


def test_stream_with_usage_equals_the_plain_answer_for_the_same_seed(server):
    client = server.client()
    plain = client.chat.completions.create(model=MODEL_ID, messages=HELLO, max_tokens=30, seed=11, temperature=0.9)
    chunks = list(
        client.chat.completions.create(
            model=MODEL_ID,
            messages=HELLO,
            max_tokens=30,
            seed=11,
            temperature=0.9,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == plain.choices[0].finish_reason
    streamed_proof = finals[0].choices[0].model_extra["deepshard_proof"]
    assert streamed_proof["token_ids"] == plain.choices[0].model_extra["deepshard_proof"]["token_ids"]


def test_same_seed_same_tokens_other_seed_other_tokens(server):
    def tokens(seed: int) -> list[int]:
        answer = server.client().completions.create(model=MODEL_ID, prompt="The data", max_tokens=24, seed=seed)
        return answer.choices[0].model_extra["deepshard_proof"]["token_ids"]

    assert tokens(3) == tokens(3)
    assert tokens(3) != tokens(4)


def test_stop_string_cuts_the_text_in_both_modes(server):
    client = server.client()
    kwargs = dict(model=MODEL_ID, prompt="Nodes", max_tokens=40, seed=5, temperature=0.0)
    full = client.completions.create(**kwargs).choices[0].text
    stop = full[10:14]  # greedy decoding: the same text again, cut where `stop` first occurs
    assert len(stop) == 4
    expected = full[: full.find(stop)]
    cut = client.completions.create(**kwargs, stop=[stop])
    assert cut.choices[0].text == expected and cut.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in client.completions.create(**kwargs, stop=stop, stream=True))
    assert streamed == expected


def test_n_choices_logprobs_and_completion_logprobs(server):
    client = server.client()
    chat = client.chat.completions.create(
        model=MODEL_ID, messages=HELLO, max_tokens=5, n=2, seed=1, logprobs=True, top_logprobs=3
    )
    assert [c.index for c in chat.choices] == [0, 1]
    content = chat.choices[0].logprobs.content
    assert len(content) == chat.choices[0].model_extra["deepshard_proof"]["token_ids"].__len__()
    assert all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in content)
    text = client.completions.create(model=MODEL_ID, prompt="A", max_tokens=4, logprobs=2, seed=1)
    assert len(text.choices[0].logprobs.tokens) == 4 and all(len(t) <= 2 for t in text.choices[0].logprobs.top_logprobs)


@pytest.mark.parametrize(
    "change, error, param",
    [
        ({"model": "gpt-4"}, openai.NotFoundError, "model"),
        ({"max_tokens": -1}, openai.BadRequestError, "max_tokens"),
        ({"max_tokens": 100_000}, openai.BadRequestError, "max_tokens"),
        ({"messages": [{"role": "user", "content": "word " * 2000}]}, openai.BadRequestError, "messages"),
        ({"temperature": "hot"}, openai.UnprocessableEntityError, "temperature"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, openai.UnprocessableEntityError, "messages.0.role"),
        ({"presence_penalty": 0.5}, openai.BadRequestError, "presence_penalty"),
        ({"stop": ["x", "Z" * (MAX_STOP_CHARS + 1)]}, openai.BadRequestError, "stop"),
    ],
)
def test_bad_requests_map_to_the_openai_exceptions(server, change, error, param):
    kwargs = {"model": MODEL_ID, "messages": HELLO, **change}
    with pytest.raises(error) as raised:
        server.client().chat.completions.create(**kwargs)
    assert raised.value.body["param"] == param and raised.value.body["message"]


def test_wrong_key_is_401(server):
    with pytest.raises(openai.AuthenticationError):
        server.client(api_key="not-the-key").models.list()


def test_keys_listed_in_the_environment_with_spaces_are_accepted(server):
    for key in ENV_API_KEYS:
        assert server.client(api_key=key).models.list().data[0].id == MODEL_ID
    with pytest.raises(openai.AuthenticationError):
        server.client(api_key=f" {ENV_API_KEYS[1]}").models.list()


@pytest.mark.parametrize("prompt", [[True, False], [1, 2, 1e2], [1, 2.0]])
def test_token_id_prompts_must_be_json_integers(server, prompt):
    got, payload = server.raw("/v1/completions", json.dumps({"model": MODEL_ID, "prompt": prompt}).encode())
    assert got == 422 and payload["error"]["param"].startswith("prompt")


def test_stop_strings_at_the_bound_are_accepted(server):
    answer = server.client().completions.create(
        model=MODEL_ID, prompt="A", max_tokens=3, seed=1, stop=["Z" * MAX_STOP_CHARS] * MAX_STOP
    )
    assert answer.choices[0].finish_reason in ("length", "stop") and answer.usage.completion_tokens >= 1


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b'{"model": "deepshard-v1", "messages": [', 400, "invalid_json"),
        (b"[" * 5000 + b"]" * 5000, 400, "invalid_json"),
        (b'"just a string"', 400, None),
        (b" " * (MAX_BODY_BYTES + 1), 413, "request_too_large"),
    ],
)
def test_malformed_deep_and_oversize_bodies_get_clear_errors(server, body, status, code):
    got, payload = server.raw("/v1/chat/completions", body)
    assert got == status
    assert set(payload["error"]) == {"message", "type", "param", "code"} and payload["error"]["code"] == code


def test_full_queue_answers_429_with_retry_after_and_frees_the_slot(server):
    server.wait_idle()
    held = server.hold_slot()
    try:
        with pytest.raises(openai.RateLimitError) as raised:
            server.client().chat.completions.create(model=MODEL_ID, messages=HELLO, max_tokens=2)
        assert raised.value.response.headers["retry-after"] == "1"
        assert raised.value.body["code"] == "queue_full"
    finally:
        held.close()
    server.wait_idle()
    assert server.client().chat.completions.create(model=MODEL_ID, messages=HELLO, max_tokens=2).choices


def test_a_client_leaving_mid_stream_frees_its_slot(server):
    server.wait_idle()
    stream = server.client().chat.completions.create(
        model=MODEL_ID, messages=HELLO, max_tokens=400, seed=2, stream=True
    )
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    stream.close()
    server.wait_idle()  # the condition: the slot is free again (a generous bound, not a speed target)
    answer = server.client().chat.completions.create(model=MODEL_ID, messages=HELLO, max_tokens=2)
    assert json.dumps(answer.choices[0].model_extra["deepshard_proof"])
