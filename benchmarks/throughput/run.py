"""Throughput of our deterministic LoRA trainer against a plain peft + torch loop, side by side.

`python -m benchmarks.throughput.run [--model tiny] [--trials 10]`

Both train the same base model, on the same packed token blocks in the same step order (the round's
batch from `benchmarks.verification.corpus`, blocks and schedule from `workers.ml.training`), under the
same TrainingSpec (`benchmarks.verification.specs`). The plain loop is what one would write without our
determinism requirements: `get_peft_model` with peft's own init, `model(input_ids, labels=...)` for the
loss, default `torch.optim.AdamW`, and torch's deterministic-algorithms switch off while it runs. Ours is
`workers.ml.training.train_lora` as the network runs it (seeded init, per-parameter AdamW, fp32 loss,
determinism on). Tokens/s counts steps x batch x sequence length over the training loop's seconds (setup
such as copying the model and wrapping it with peft is reported separately as wall-clock tokens/s).

Repetitions are interleaved (ours then plain, then plain then ours, ...) after one untimed warm-up of
each, so a machine shared with other jobs slows both sides alike; the headline ratio is the median of the
per-repetition ratios ours / plain. Target: >= 0.9.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks.verification.run; results unchanged

import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402

from benchmarks import RESULTS_DIR, machine_description, utc_now  # noqa: E402
from benchmarks.verification.corpus import round_batch  # noqa: E402
from benchmarks.verification.specs import round_spec  # noqa: E402
from workers.ml.models import MODEL_NAMES, BaseModel, load_base_model  # noqa: E402
from workers.ml.spec import TrainingSpec  # noqa: E402
from workers.ml.training import batch_schedule, train_lora, training_blocks  # noqa: E402

ROUND_SEED = "0x" + "7e" * 32  # any fixed seed: the data and step order of the measured round
TARGET_RATIO = 0.9


def ours(base: BaseModel, texts: list[str], spec: TrainingSpec) -> dict:
    started = time.perf_counter()
    result = train_lora(base, texts, spec, ROUND_SEED)
    wall = time.perf_counter() - started
    return {
        "loop_seconds": result.seconds,
        "wall_seconds": wall,
        "tokens": result.tokens,
        "final_loss": result.losses[-1],
    }


def plain_peft_loop(base: BaseModel, texts: list[str], spec: TrainingSpec) -> dict:
    """A straightforward peft + torch training loop on the same blocks and step order."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)
    try:
        started = time.perf_counter()
        blocks = training_blocks(base.tokenizer, texts, spec, ROUND_SEED)
        schedule = batch_schedule(len(blocks), spec, ROUND_SEED)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model = get_peft_model(
                copy.deepcopy(base.model),
                LoraConfig(
                    r=spec.lora_rank,
                    lora_alpha=spec.lora_alpha,
                    lora_dropout=spec.lora_dropout,
                    target_modules=list(spec.target_modules),
                    bias="none",
                ),
            )
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=spec.learning_rate, weight_decay=spec.weight_decay
        )
        model.train()
        loop_started = time.perf_counter()
        for step in schedule:
            batch = blocks[step].to(base.device)
            loss = model(input_ids=batch, labels=batch, use_cache=False).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        if base.device.type == "cuda":
            torch.cuda.synchronize()  # ours syncs every step (it records each loss as a float)
        loop = time.perf_counter() - loop_started
        wall = time.perf_counter() - started
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
    tokens = spec.steps * spec.batch_size * spec.sequence_length
    return {"loop_seconds": loop, "wall_seconds": wall, "tokens": tokens, "final_loss": float(loss.detach())}


def run(model: str, trials: int, steps: int | None, quiet: bool = False, device: str | None = None) -> dict:
    started_all = time.perf_counter()
    machine = machine_description()
    machine["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
    base = load_base_model(model, device=device)  # None: CUDA when present, else CPU
    machine["device"] = str(base.device) if base.device.type != "cuda" else machine["device"]
    spec = round_spec(model, steps)
    texts = round_batch(ROUND_SEED)
    runners = {"ours": ours, "plain_peft": plain_peft_loop}
    for runner in runners.values():  # warm-up, untimed
        runner(base, texts, spec)
    samples: dict[str, list[dict]] = {name: [] for name in runners}
    ratios = []
    for rep in range(trials):
        order = list(runners) if rep % 2 == 0 else list(runners)[::-1]
        for name in order:
            samples[name].append(runners[name](base, texts, spec))
        tps = {name: samples[name][-1]["tokens"] / samples[name][-1]["loop_seconds"] for name in runners}
        ratios.append(tps["ours"] / tps["plain_peft"])
        if not quiet:
            print(
                f"repetition {rep + 1}/{trials}: ours {tps['ours']:.0f} tok/s, plain {tps['plain_peft']:.0f} tok/s, "
                f"ratio {ratios[-1]:.3f}",
                file=sys.stderr,
                flush=True,
            )

    def summary(name: str) -> dict:
        rows = samples[name]
        loop = [r["tokens"] / r["loop_seconds"] for r in rows]
        wall = [r["tokens"] / r["wall_seconds"] for r in rows]
        return {
            "tokens_per_second": round(statistics.median(loop), 1),
            "tokens_per_second_all": [round(v, 1) for v in loop],
            "wall_tokens_per_second": round(statistics.median(wall), 1),
            "final_loss": round(rows[-1]["final_loss"], 4),
        }

    result = {"ours": summary("ours"), "plain_peft": summary("plain_peft")}
    return {
        "model": model,
        "trials": trials,
        "spec": spec.to_dict(),
        "tokens_per_run": samples["ours"][0]["tokens"],
        "ours": result["ours"],
        "plain_peft": result["plain_peft"],
        "ratio": round(statistics.median(ratios), 4),
        "ratio_of_medians": round(result["ours"]["tokens_per_second"] / result["plain_peft"]["tokens_per_second"], 4),
        "ratio_wall": round(
            result["ours"]["wall_tokens_per_second"] / result["plain_peft"]["wall_tokens_per_second"], 4
        ),
        "ratios_per_repetition": [round(r, 4) for r in ratios],
        "target_ratio": TARGET_RATIO,
        "method": (
            "interleaved repetitions after one warm-up each; tokens/s over the training loop; ratio = median of "
            "per-repetition ours/plain"
        ),
        "machine": machine,
        "date": utc_now(),
        "run_seconds": round(time.perf_counter() - started_all, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput.run", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", choices=MODEL_NAMES)
    parser.add_argument("--trials", type=int, default=10, help="interleaved repetitions per trainer (default 10)")
    parser.add_argument("--steps", type=int, default=None, help="override the spec's steps")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default benchmarks/results/throughput[-MODEL].json)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when present, else CPU)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be >= 1")
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        report = run(args.model, args.trials, args.steps, args.quiet, args.device)
    finally:
        torch.set_num_threads(previous)
    out = args.out or RESULTS_DIR / ("throughput.json" if args.model == "tiny" else f"throughput-{args.model}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if not args.quiet:
        print(
            f"{args.model}: ours {report['ours']['tokens_per_second']} tok/s, plain peft "
            f"{report['plain_peft']['tokens_per_second']} tok/s, ratio {report['ratio']} (target >= {TARGET_RATIO})"
        )
    return report


if __name__ == "__main__":
    main()
