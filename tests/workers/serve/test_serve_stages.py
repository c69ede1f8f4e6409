"""`deepshard serve --stages 2` (workers.serve.stages): the HTTP server generating through two gloo processes gives,
through the real `openai` client, the tokens of single-process serving for a seeded request, and its proof
(computed by the last stage, which holds the final norm) verifies against the whole model in one process."""

from __future__ import annotations

import openai
import pytest
from servekit import MODEL_ID, WAIT_SECONDS, start_node

from workers.chain.localnode import free_port
from workers.cli import main
from workers.serve.proof import Proof, verify

QUESTION = [{"role": "user", "content": "Split the model between two processes."}]


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    port = free_port()
    options = ["--stages", "2", "--threads", "1"]
    child = start_node("two-stage inference node", port, options, tmp_path_factory.mktemp("stages"))
    try:
        yield openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="any", max_retries=0, timeout=WAIT_SECONDS)
    finally:
        child.stop()


def ask(client: openai.OpenAI, **options):
    return client.chat.completions.create(
        model=MODEL_ID,
        messages=QUESTION,  # type: ignore[arg-type]
        max_tokens=40,
        temperature=0.9,
        seed=11,
        logprobs=True,
        **options,
    )


def test_two_stages_serve_the_tokens_of_one_process(staged, server, tiny_engine):
    single, piped = ask(server.client()), ask(staged)
    single_proof = single.choices[0].model_extra["deepshard_proof"]
    piped_proof = piped.choices[0].model_extra["deepshard_proof"]
    assert piped_proof["token_ids"] == single_proof["token_ids"] and len(piped_proof["token_ids"]) > 0
    assert piped.choices[0].message.content == single.choices[0].message.content
    single_lp = [t.logprob for t in single.choices[0].logprobs.content]
    piped_lp = [t.logprob for t in piped.choices[0].logprobs.content]
    assert max(abs(a - b) for a, b in zip(single_lp, piped_lp, strict=True)) <= 1e-4
    verdict = verify(tiny_engine, Proof.from_json(piped_proof), tiny_engine.chat_prompt(QUESTION))
    assert verdict.accepted, verdict.reasons


def test_two_stages_stream_and_answer_request_after_request(staged):
    """A stream gives the same text; a request after others (their stage caches released) still matches."""
    whole = ask(staged).choices[0].message.content
    stream = ask(staged, stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == whole
    assert ask(staged).choices[0].message.content == whole


def test_stages_need_dev_and_a_built_in_model(capsys):
    assert main(["serve", "--model", "tiny", "--stages", "2"]) == 1
    assert "--stages splits a built-in model: use it with --dev and without --weights" in capsys.readouterr().err
