"""Two-stage pipeline generation (workers.serve.pipeline): two gloo processes, each holding half the layers and
its own KV cache, give the tokens of single-process generation with logits within 1e-5."""

from __future__ import annotations

from workers.chain.localnode import free_port
from workers.serve.engine import SamplingParams
from workers.serve.pipeline import generate_pipelined, layer_ranges


def test_layer_ranges_cover_every_layer_once():
    assert layer_ranges(30, 2) == [range(0, 15), range(15, 30)]
    assert [len(r) for r in layer_ranges(4, 3)] == [1, 2, 1]


def test_two_stages_equal_one_process(tiny_engine):
    prompt = tiny_engine.encode("The pipeline splits the model between two processes.")
    params = SamplingParams(max_tokens=12, temperature=0.7, seed=5)
    single = tiny_engine.start(prompt, params)
    logits = []
    while len(single.token_ids) < params.max_tokens:
        step_logits, _ = tiny_engine.forward(prompt if not single.token_ids else single.token_ids[-1:], single.cache)
        logits.append(step_logits)
        step = tiny_engine.pick(step_logits, params, single.generator)
        single.token_ids.append(step.token_id)
        if step.is_eos:
            break
    piped = generate_pipelined("tiny", prompt, params, stages=2, port=free_port())
    assert piped.token_ids == single.token_ids
    assert max(float((a - b).abs().max()) for a, b in zip(piped.logits, logits, strict=True)) <= 1e-5
    # each stage held only its half of the layers: together about one model, neither the whole
    total = sum(p.numel() for p in tiny_engine.model.parameters())
    assert all(count < 0.75 * total for count in piped.stage_parameters)
    assert abs(sum(piped.stage_parameters) - total) < 0.01 * total + 2
