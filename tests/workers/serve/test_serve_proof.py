"""The TOPLOC-style proof (workers.serve.proof) on the tiny model: honest answers verify across thread counts and
by exact replay; another version (parent, child or sibling delta), a changed prompt, bf16 and int8 weights and a
different sampling seed are rejected."""

from __future__ import annotations

import base64
import json

import pytest

from benchmarks.serve.forgeries import FORGERIES, forged, low_rank_delta
from workers.cli import main
from workers.serve.engine import Engine, SamplingParams, torch_threads
from workers.serve.proof import CHUNK_TOKENS, Proof, build_proof, evaluate, interpolate, verify

PROMPT = "Every node keeps a copy of the weights and answers in turn."
PARAMS = SamplingParams(max_tokens=CHUNK_TOKENS + 5, temperature=0.8, top_p=0.95, seed=1234)


def prove(engine: Engine, prompt_ids: list[int], claimed_hash: str | None = None, params=PARAMS) -> Proof:
    """Generates with `engine` and returns its proof, claiming `claimed_hash` as the weights (a dishonest node)."""
    sequence = engine.generate(prompt_ids, params)
    proof = build_proof(engine, "deepshard-v1", "req-1", prompt_ids, sequence.token_ids, sequence.hidden, params)
    if claimed_hash is not None:
        proof.weights_hash = claimed_hash
    return Proof.from_json(proof.to_json())  # recomputes the commitment over the claimed fields


@pytest.fixture(scope="module")
def prompt_ids(tiny_engine) -> list[int]:
    return tiny_engine.encode(PROMPT)


def test_polynomial_encoding_round_trips_and_is_258_bytes_per_chunk(tiny_engine, prompt_ids):
    xs, ys = [3, 17, 40_000, 65_000, 9], [0, 65_407, 12_345, 1, 77]
    poly = interpolate(xs, ys)
    assert [evaluate(poly, x) for x in xs] == ys
    proof = prove(tiny_engine, prompt_ids)
    sizes = [len(base64.b64decode(chunk)) for chunk in proof.chunks]
    assert len(proof.token_ids) == PARAMS.max_tokens and sizes == [258, 258]


def test_honest_answer_verifies_across_thread_counts_and_by_replay(tiny_engine, prompt_ids):
    with torch_threads(2):
        proof = prove(tiny_engine, prompt_ids)
    with torch_threads(1):
        verdict = verify(tiny_engine, proof, prompt_ids, replay=True)
    assert verdict.accepted, verdict.reasons
    assert len(verdict.chunks) == 2 and all(c.passed for c in verdict.chunks)


@pytest.mark.parametrize(
    "change",
    list(FORGERIES.values()),
    ids=list(FORGERIES),
)
def test_other_weights_are_rejected(tiny_engine, prompt_ids, change):
    fake = forged(tiny_engine, change)
    verdict = verify(tiny_engine, prove(fake, prompt_ids), prompt_ids)
    assert not verdict.accepted and "activations differ" in verdict.reasons[0]


def test_parent_weights_are_rejected_by_the_child(tiny_engine, prompt_ids):
    child = forged(tiny_engine, low_rank_delta(seed=1))
    child.weights_hash = "0x" + "c" * 64  # the child version's own identity
    verdict = verify(child, prove(tiny_engine, prompt_ids, claimed_hash=child.weights_hash), prompt_ids)
    assert not verdict.accepted


def test_a_changed_prompt_is_rejected(tiny_engine, prompt_ids):
    other = tiny_engine.encode(PROMPT.replace("copy", "slice"))
    cheap = prove(tiny_engine, other)
    # the node answered another prompt: its proof names that prompt ...
    assert verify(tiny_engine, cheap, prompt_ids).reasons == ["the proof's prompt differs from the request's"]
    # ... or claims the client's, and the activations give it away
    cheap.prompt_token_ids = prompt_ids
    relabelled = Proof.from_json(cheap.to_json())
    assert not verify(tiny_engine, relabelled, prompt_ids).accepted


def test_replay_rejects_another_seed_and_a_tampered_commitment(tiny_engine, prompt_ids):
    proof = prove(tiny_engine, prompt_ids)
    proof.sampling = {**proof.sampling, "seed": PARAMS.seed + 1}
    reseeded = Proof.from_json(proof.to_json())
    assert verify(tiny_engine, reseeded, prompt_ids).accepted  # the activations alone cannot see the seed
    assert verify(tiny_engine, reseeded, prompt_ids, replay=True).reasons == [
        "replay with the proof's seed gives other tokens"
    ]
    tampered = prove(tiny_engine, prompt_ids)
    tampered.token_ids = tampered.token_ids[:-1] + [(tampered.token_ids[-1] + 1) % tiny_engine.vocab_size]
    assert "the commitment does not match the proof's fields" in verify(tiny_engine, tampered).reasons


def test_verify_response_command_checks_a_saved_answer(server, tmp_path, capsys):
    request = {"model": "deepshard-v1", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 40, "seed": 9}
    answer = server.client().chat.completions.create(**request)
    (tmp_path / "answer.json").write_text(answer.model_dump_json())
    (tmp_path / "request.json").write_text(json.dumps(request))
    args = [
        "verify-response",
        str(tmp_path / "answer.json"),
        "--model",
        "tiny",
        "--request",
        str(tmp_path / "request.json"),
    ]
    assert main([*args, "--replay"]) == 0
    assert "choice 0: verified" in capsys.readouterr().out
    request["messages"][0]["content"] += " Or not."
    (tmp_path / "request.json").write_text(json.dumps(request))
    assert main(args) == 1
    assert "REJECTED: the proof's prompt differs" in capsys.readouterr().out


def forge(proof: Proof, **changes) -> Proof:
    """`proof` with `changes`, its commitment recomputed over them (a forger's proof is self-consistent)."""
    data = {**proof.to_json(), **changes}
    data.pop("commitment")
    forged_proof = Proof.from_json({**data, "commitment": ""})
    forged_proof.commitment = forged_proof.digest()
    return forged_proof


def test_hostile_token_ids_and_lengths_are_rejected_before_any_model_work(tiny_engine, prompt_ids):
    """Ids outside the vocabulary (an IndexError in the embedding before) and 20,000 tokens on a 512-token model
    (a 25.8 s, 843 MB prefill before) are refused by their bounds alone: no chunk is ever compared."""
    honest = prove(tiny_engine, prompt_ids)
    cases = {
        "out of vocabulary": (
            dict(token_ids=[5_000_000, 1, 2], chunks=honest.chunks[:1]),
            "token id 5000000 is outside the vocabulary",
        ),
        "negative": (dict(prompt_token_ids=[-3, 1]), "token id -3 is outside the vocabulary"),
        "longer than the context": (
            dict(token_ids=[1] * 20_000, chunks=honest.chunks * (-(-20_000 // CHUNK_TOKENS))),
            f"20000 generated tokens exceed the model's context of {tiny_engine.context_length} tokens",
        ),
    }
    for case, (changes, reason) in cases.items():
        verdict = verify(tiny_engine, forge(honest, **changes))
        assert not verdict.accepted and verdict.chunks == [], case
        assert any(reason in r for r in verdict.reasons), (case, verdict.reasons)


def test_verify_response_reads_a_bounded_file(tmp_path, capsys):
    """An endless file (/dev/zero) is refused after the size limit, not read forever."""
    assert main(["verify-response", "/dev/zero", "--model", "tiny"]) == 1
    assert "/dev/zero: over the 67,108,864-byte limit" in capsys.readouterr().err


def test_calibration_reports_its_targets(tiny_engine):
    """`make bench-serve`'s calibration, small: honest answers over every thread pairing, none rejected, every
    attack detected, and the targets say which limits a run this small meets (not the 200 answers)."""
    from benchmarks.serve.run import MIN_HONEST_RESPONSES, THREAD_PAIRS, calibrate

    with torch_threads(1):
        report = calibrate(tiny_engine, honest_responses=len(THREAD_PAIRS), responses=1, tokens=CHUNK_TOKENS)
    assert set(report["honest_by_threads"].values()) == {1}
    targets = report["targets"]
    assert targets["honest_rejections"] == {"value": 0, "limit": 0, "met": True}
    assert targets["honest_responses"] == {"value": len(THREAD_PAIRS), "limit": MIN_HONEST_RESPONSES, "met": False}
    detections = {name: t for name, t in targets.items() if name.startswith("detection_")}
    assert len(detections) == len(FORGERIES) + 2 and all(t["met"] for t in detections.values()), detections
