"""The inference node against plain `model.generate`, side by side, and under concurrent clients.

`python -m benchmarks.serve.run [--model tiny] [--trials 5] [--tokens 64] [--calibration-only]` (`make bench-serve`)

- Single stream: our forward loop (workers.serve.engine: KV cache, final-norm capture for the proof, per-token
  sampling step) against `model.generate` on the same weights, both greedy, both forced to the same number of
  new tokens (`min_new_tokens` for generate; our loop's end-of-text check is switched off by an empty set), one
  intra-op thread, interleaved repetitions after a warm-up; `ratio_vs_generate` = median of per-repetition
  ours / generate tokens/s (target >= 0.9).
- Proof overhead: seconds to build the proof of one 32-token chunk, bytes per chunk, and the verifier's prefill.
- Calibration: `--honest-responses` (default 200) prompts answered honestly (sampled, generated and verified with
  1 or 2 intra-op threads, every pairing in turn, each also by exact replay), and `--responses` (default 10) per
  attack by forged nodes that claim the honest weights hash: a rank-8 delta (child), another one (sibling), bf16
  weights, int8 weights (torch's dynamic quantisation), the answer to a changed prompt, and (replay) another
  seed. Counts honest rejections and each attack's detection rate; the mismatch counts show the margin;
  `calibration.targets` holds the issue's targets as {value, limit, met}: >= 200 honest answers with 0
  rejections, every attack detected.
- Pipeline: the same greedy generation split over two gloo processes (workers.serve.pipeline) against one
  process, tokens/s of the generation loop (process start and model loading excluded), and each stage's
  parameter count.
- Served: a real `deepshard serve --dev` child on a free port and the `openai` client, streaming: time to the
  first token (TTFT) and aggregate completion tokens/s at 1, 4 and 8 concurrent clients.
Results: benchmarks/results/serve.json (serve-MODEL.json for other models).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the other benchmarks; results unchanged

import torch  # noqa: E402

from benchmarks import RESULTS_DIR, machine_description, utc_now  # noqa: E402
from benchmarks.serve.forgeries import FORGERIES, forged  # noqa: E402
from workers.chain.localnode import free_port  # noqa: E402
from workers.ml.models import MODEL_NAMES, load_base_model  # noqa: E402
from workers.serve.engine import Engine, SamplingParams  # noqa: E402
from workers.serve.proof import CHUNK_TOKENS, build_proof, verify  # noqa: E402

TARGET_RATIO = 0.9
PROMPT = "The network trains one model together, and every node that serves it must prove"
CLIENTS = (1, 4, 8)


def ours(engine: Engine, prompt_ids: list[int], tokens: int) -> tuple[float, list]:
    started = time.perf_counter()
    sequence = engine.generate(prompt_ids, SamplingParams(max_tokens=tokens, temperature=0.0))
    return tokens / (time.perf_counter() - started), sequence


def plain_generate(engine: Engine, prompt_ids: list[int], tokens: int) -> float:
    ids = torch.tensor([prompt_ids])
    started = time.perf_counter()
    with torch.inference_mode():
        engine.model.generate(
            ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=0, attention_mask=None
        )
    return tokens / (time.perf_counter() - started)


#: (threads generating, threads verifying) of the honest responses, in turn: every pairing of 1 and 2.
THREAD_PAIRS = ((1, 1), (1, 2), (2, 1), (2, 2))
#: The issue's targets for the proof: 0 honest rejections over at least this many responses, every attack caught.
MIN_HONEST_RESPONSES = 200


def _prove(source: Engine, ids: list[int], params: SamplingParams):
    sequence = source.generate(ids, params)
    return build_proof(source, "deepshard-v1", "calibration", ids, sequence.token_ids, sequence.hidden, params)


def _calibration_prompt(number: int) -> str:
    from workers.ml.models import reference_corpus

    prompts = reference_corpus()
    return prompts[number % len(prompts)][:200]


def calibrate(engine: Engine, honest_responses: int, responses: int, tokens: int) -> dict:
    """Honest rejections over `honest_responses` answers (sampled, seed = their number, generated and verified
    with the thread counts of THREAD_PAIRS in turn, each also by exact replay) and each attack's detections over
    `responses` answers (see the module docstring); `targets` holds the issue's, each {value, limit, met}."""
    honest_rejected, honest_mismatch = 0, []
    per_pair = {f"{g}->{v}": 0 for g, v in THREAD_PAIRS}
    for number in range(honest_responses):
        ids = engine.encode(_calibration_prompt(number))
        params = SamplingParams(max_tokens=tokens, temperature=0.8, top_p=0.95, seed=number)
        generating, verifying = THREAD_PAIRS[number % len(THREAD_PAIRS)]
        torch.set_num_threads(generating)
        honest = _prove(engine, ids, params)
        torch.set_num_threads(verifying)
        verdict = verify(engine, honest, ids, replay=True)
        honest_rejected += not verdict.accepted
        per_pair[f"{generating}->{verifying}"] += 1
        honest_mismatch += [c.mismatches for c in verdict.chunks]
        if (number + 1) % 20 == 0:
            print(f"honest {number + 1}/{honest_responses}", file=sys.stderr, flush=True)

    forged_engines = {name: forged(engine, change) for name, change in FORGERIES.items()}
    detected = {name: 0 for name in [*forged_engines, "changed_prompt", "other_seed_replay"]}
    attack_mismatch: dict[str, list[int]] = {name: [] for name in [*forged_engines, "changed_prompt"]}
    torch.set_num_threads(1)
    for number in range(responses):
        text = _calibration_prompt(number)
        ids = engine.encode(text)
        params = SamplingParams(max_tokens=tokens, temperature=0.8, top_p=0.95, seed=number)
        for name, source in forged_engines.items():
            verdict = verify(engine, _prove(source, ids, params), ids)
            detected[name] += not verdict.accepted
            attack_mismatch[name] += [c.mismatches for c in verdict.chunks]
        cheap = _prove(engine, engine.encode("Ignore that. " + text), params)
        cheap.prompt_token_ids = ids  # claims the client's prompt
        cheap.commitment = cheap.digest()
        verdict = verify(engine, cheap, ids)
        detected["changed_prompt"] += not verdict.accepted
        attack_mismatch["changed_prompt"] += [c.mismatches for c in verdict.chunks]
        honest = _prove(engine, ids, params)
        honest.sampling = {**honest.sampling, "seed": number + 1}
        honest.commitment = honest.digest()
        detected["other_seed_replay"] += not verify(engine, honest, ids, replay=True).accepted
        print(f"attacks {number + 1}/{responses}", file=sys.stderr, flush=True)
    rates = {name: round(count / responses, 4) if responses else None for name, count in detected.items()}
    targets = {
        "honest_responses": {
            "value": honest_responses,
            "limit": MIN_HONEST_RESPONSES,
            "met": honest_responses >= MIN_HONEST_RESPONSES,
        },
        "honest_rejections": {
            "value": honest_rejected,
            "limit": 0,
            "met": honest_responses > 0 and honest_rejected == 0,
        },
        **{f"detection_{name}": {"value": rate, "limit": 1.0, "met": rate == 1.0} for name, rate in rates.items()},
    }
    return {
        "honest_responses": honest_responses,
        "honest_by_threads": per_pair,
        "honest_rejected": honest_rejected,
        "honest_mismatches_max": max(honest_mismatch, default=0),
        "responses": responses,
        "detected": detected,
        "detection_rates": rates,
        "attack_mismatches_min": {name: min(v, default=0) for name, v in attack_mismatch.items()},
        "targets": targets,
        "method": "honest: sampled, generated and verified with 1 or 2 threads (every pairing in turn), plus exact "
        "replay; attacks claim the honest weights hash; a chunk fails above MAX_MISMATCH_FRACTION of its top-k "
        "values",
    }


def pipeline(engine: Engine, model: str, prompt_ids: list[int], tokens: int) -> dict:
    from workers.serve.pipeline import generate_pipelined

    params = SamplingParams(max_tokens=tokens, temperature=0.0)
    engine.eos_ids = frozenset()
    single, sequence = ours(engine, prompt_ids, tokens)
    piped = generate_pipelined(model, prompt_ids, params, stages=2, port=free_port())
    piped_tps = len(piped.token_ids) / piped.loop_seconds
    return {
        "stages": 2,
        "tokens": len(piped.token_ids),
        "tokens_equal_first": piped.token_ids == sequence.token_ids[: len(piped.token_ids)],
        "pipeline_tokens_per_second": round(piped_tps, 1),
        "one_process_tokens_per_second": round(single, 1),
        "ratio_vs_one_process": round(piped_tps / single, 4),
        "stage_parameters": piped.stage_parameters,
        "total_parameters": sum(p.numel() for p in engine.model.parameters()),
    }


def served(model: str, tokens: int, threads: int) -> dict:
    """TTFT and aggregate tokens/s of a real server child at each client count."""
    import openai

    port = free_port()
    log = tempfile.TemporaryFile()
    command = [sys.executable, "-m", "workers.cli", "serve", "--dev", "--model", model, "--port", str(port)]
    command += ["--threads", str(threads), "--queue-size", str(max(CLIENTS))]
    child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read()
                break
            except OSError:
                if child.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"the server did not start: {log.read()[-2000:]!r}") from None
                time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0, timeout=600)

        def one(seed: int) -> tuple[float, int]:
            started = time.perf_counter()
            first = None
            stream = client.completions.create(
                model="deepshard-v1",
                prompt=PROMPT,
                max_tokens=tokens,
                seed=seed,
                stream=True,
                stream_options={"include_usage": True},
            )
            count = 0
            for chunk in stream:
                if chunk.choices and chunk.choices[0].text and first is None:
                    first = time.perf_counter() - started
                if chunk.usage:
                    count = chunk.usage.completion_tokens
            return first or 0.0, count

        one(0)  # warm-up
        results = {}
        for clients in CLIENTS:
            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                rows = list(pool.map(one, range(1, clients + 1)))
            wall = time.perf_counter() - started
            results[str(clients)] = {
                "aggregate_tokens_per_second": round(sum(n for _, n in rows) / wall, 1),
                "ttft_seconds_median": round(statistics.median(t for t, _ in rows), 4),
            }
        return results
    finally:
        child.terminate()
        child.wait(timeout=30)


def run(
    model: str, trials: int, tokens: int, threads: int, with_server: bool, responses: int, honest_responses: int
) -> dict:
    torch.set_num_threads(threads)
    machine = machine_description()
    started_all = time.perf_counter()
    engine = Engine(load_base_model(model, "cpu"))
    engine.eos_ids = frozenset()  # forced length, as min_new_tokens does for generate
    prompt_ids = engine.encode(PROMPT)
    ours(engine, prompt_ids, 4), plain_generate(engine, prompt_ids, 4)  # warm-up
    rows: dict[str, list[float]] = {"ours": [], "generate": []}
    ratios = []
    sequence = None
    for rep in range(trials):
        order = ("ours", "generate") if rep % 2 == 0 else ("generate", "ours")
        got = {}
        for name in order:
            if name == "ours":
                got[name], sequence = ours(engine, prompt_ids, tokens)
            else:
                got[name] = plain_generate(engine, prompt_ids, tokens)
            rows[name].append(got[name])
        ratios.append(got["ours"] / got["generate"])
        print(f"repetition {rep + 1}/{trials}: ratio {ratios[-1]:.3f}", file=sys.stderr, flush=True)
    assert sequence is not None
    chunk_hidden = sequence.hidden[:CHUNK_TOKENS]
    params = SamplingParams(max_tokens=CHUNK_TOKENS, temperature=0.0)
    ids = sequence.token_ids[:CHUNK_TOKENS]
    build = []
    for _ in range(5):
        began = time.perf_counter()
        proof = build_proof(engine, "deepshard-v1", "bench", prompt_ids, ids, chunk_hidden, params)
        build.append(time.perf_counter() - began)
    began = time.perf_counter()
    verdict = verify(engine, proof, prompt_ids)
    verify_seconds = time.perf_counter() - began
    chunk_seconds = CHUNK_TOKENS / statistics.median(rows["ours"])
    report = {
        "model": model,
        "trials": trials,
        "new_tokens": tokens,
        "prompt_tokens": len(prompt_ids),
        "ratio_vs_generate": round(statistics.median(ratios), 4),
        "target_ratio": TARGET_RATIO,
        "ours_tokens_per_second": round(statistics.median(rows["ours"]), 1),
        "generate_tokens_per_second": round(statistics.median(rows["generate"]), 1),
        "ratios_per_repetition": [round(r, 4) for r in ratios],
        "proof": {
            "bytes_per_32_tokens": len(base64.b64decode(proof.chunks[0])),
            "build_seconds_per_32_tokens": round(statistics.median(build), 5),
            "overhead_vs_generating_32_tokens": round(statistics.median(build) / chunk_seconds, 4),
            "verify_seconds_32_tokens": round(verify_seconds, 4),
            "verified": verdict.accepted,
        },
        "method": (
            "greedy, forced length, one thread, interleaved repetitions after a warm-up; ratio = median of "
            "per-repetition ours/generate tokens/s"
        ),
        "machine": machine,
        "date": utc_now(),
    }
    if responses or honest_responses:
        report["calibration"] = calibrate(engine, honest_responses, responses, tokens)
        torch.set_num_threads(threads)
    report["pipeline"] = pipeline(engine, model, prompt_ids, tokens)
    if with_server:
        report["served_streaming"] = served(model, tokens, threads)
    report["run_seconds"] = round(time.perf_counter() - started_all, 1)
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve.run", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", choices=MODEL_NAMES)
    parser.add_argument("--trials", type=int, default=5, help="interleaved repetitions (default 5)")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per generation (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--responses", type=int, default=10, help="answers per attack (default 10; 0 skips)")
    parser.add_argument(
        "--honest-responses",
        type=int,
        default=MIN_HONEST_RESPONSES,
        help=f"honest answers verified (default {MIN_HONEST_RESPONSES}, the target; 0 skips)",
    )
    parser.add_argument("--no-server", action="store_true", help="skip the served (HTTP) measurements")
    parser.add_argument(
        "--calibration-only",
        action="store_true",
        help="run only the proof's calibration and replace `calibration` in the existing results file",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/serve.json)")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.tokens < CHUNK_TOKENS:
        parser.error(f"--trials must be >= 1 and --tokens >= {CHUNK_TOKENS}")
    out = args.out or RESULTS_DIR / ("serve.json" if args.model == "tiny" else f"serve-{args.model}.json")
    if args.calibration_only:
        if not out.exists():
            parser.error(f"--calibration-only updates {out}, which does not exist yet: run the whole benchmark first")
        report = json.loads(out.read_text(encoding="utf-8"))
        started = time.perf_counter()
        engine = Engine(load_base_model(args.model, "cpu"))
        engine.eos_ids = frozenset()  # forced length, as in the whole run
        calibration = calibrate(engine, args.honest_responses, args.responses, args.tokens)
        report["calibration"] = {
            **calibration,
            "machine": machine_description(),
            "date": utc_now(),
            "run_seconds": round(time.perf_counter() - started, 1),
        }
    else:
        report = run(
            args.model,
            args.trials,
            args.tokens,
            args.threads,
            not args.no_server,
            args.responses,
            args.honest_responses,
        )
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("ratio_vs_generate", "proof", "calibration") if k in report}))
    return report


if __name__ == "__main__":
    main()
