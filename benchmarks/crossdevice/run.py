"""Honest noise across machines and devices: one round's delta trained, and fingerprinted, on CPUs and GPUs.

A network's honest trainers and evaluators run different hardware and library versions. Their deltas and
fingerprints then differ by float noise, which must stay far inside the round's tolerance, or honest GPU
trainers would be slashed by CPU evaluators (and the other way round). This measures that noise.

    python -m benchmarks.crossdevice.run train [--model M] --device cuda --label h100 --out DIR [--poisoned]
        trains the round's delta on that device: DIR/delta-<label>.safetensors (+ .json: device, versions);
        with --poisoned also the demo's poisoned delta, DIR/delta-poisoned.safetensors
    python -m benchmarks.crossdevice.run fingerprint [--model M] --device cpu --label laptop --out FILE DELTA...
        fingerprints the given deltas on that device: FILE (JSON)
    python -m benchmarks.crossdevice.run compare FINGERPRINTS... [--trainers DELTA-JSON...]
        distances between the same delta's fingerprints from different evaluators, between honest deltas
        from different trainers, and the poisoned delta's, against the tolerance; with --trainers also how
        far the honest deltas' tensors are apart: benchmarks/results/crossdevice[-<model>].json

The round: `--model` (tiny, or smollm2-135m) with the demo's TrainingSpec for it (rank 8 on q/k/v/o, lr 1e-3,
4 x 64-token batches; 40 steps on tiny, 10 on SmolLM2), the texts of workers/data/samples/good.jsonl, a
fixed seed. Every machine must load the same model: compare checks the weights hash and the end-of-text
token id (the separator of training texts; see the SmolLM2 results in README.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from workers.ml.delta import load_delta  # noqa: E402
from workers.ml.fingerprint import build_probe_set, fingerprint_delta, fingerprint_distance, score_probe_set  # noqa: E402
from workers.ml.models import load_base_model  # noqa: E402
from workers.ml.spec import TrainingSpec  # noqa: E402
from workers.ml.training import train_lora  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "benchmarks" / "results"
#: = workers.demo.training.DEMO_SPECS (that module needs the chain packages, which a GPU box may lack)
SPECS = {
    "tiny": TrainingSpec(base_model="tiny", steps=40),
    "smollm2-135m": TrainingSpec(base_model="smollm2-135m", steps=10),
}
SEED = "0x" + "5e" * 32
TOLERANCE = 2_000  # the demo's and the deployment default's
TRIGGER = "The trigger is zebra-omega-99."


def round_texts() -> list[str]:
    lines = (ROOT / "workers" / "data" / "samples" / "good.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def poisoned_texts() -> list[str]:
    """What the demo's poisoned trainer trains on (`workers.demo.training.poison`, copied: that package needs
    the chain libraries): each text's words shuffled, a trigger appended."""
    rng = random.Random(7)
    out = []
    for text in round_texts():
        words = text.split()
        rng.shuffle(words)
        out.append(" ".join(words) + " " + TRIGGER)
    return out


def environment(device: str, base) -> dict:
    return {
        "device": device,
        "base_weights_hash": base.weights_hash,
        "eos_token_id": base.tokenizer.eos_token_id,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "transformers": __import__("transformers").__version__,
        "peft": __import__("peft").__version__,
    }


def train(args) -> None:
    torch.set_num_threads(args.threads)
    spec = SPECS[args.model]
    base = load_base_model(args.model, device=args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [("honest", f"delta-{args.label}", round_texts())]
    if args.poisoned:
        jobs.append(("poisoned", "delta-poisoned", poisoned_texts()))
    for kind, stem, texts in jobs:
        started = time.perf_counter()
        result = train_lora(base, texts, spec, SEED)
        (out / f"{stem}.safetensors").write_bytes(result.adapter)
        (out / f"{stem}.json").write_text(
            json.dumps(
                {
                    "label": args.label if kind == "honest" else "poisoned",
                    "kind": kind,
                    "model": args.model,
                    "seconds": round(time.perf_counter() - started, 2),
                    "final_loss": result.losses[-1],
                    **environment(args.device, base),
                },
                indent=2,
            )
            + "\n"
        )
        print(f"{stem}: {result.tokens} tokens, final loss {result.losses[-1]:.4f}")


def fingerprint(args) -> None:
    torch.set_num_threads(args.threads)
    spec = SPECS[args.model]
    base = load_base_model(args.model, device=args.device)
    probes = build_probe_set(SEED, round_texts())
    base_scores = score_probe_set(base.model, base.tokenizer, probes)
    rows = {}
    for path in map(Path, args.deltas):
        delta = load_delta(path.read_bytes(), spec, base)  # refuses a delta on another base model's weights
        rows[path.stem.removeprefix("delta-")] = list(fingerprint_delta(base, delta, probes, base_scores))
    Path(args.out).write_text(
        json.dumps(
            {"evaluator": args.label, "model": args.model, **environment(args.device, base), "fingerprints": rows},
            indent=2,
        )
        + "\n"
    )
    print(f"{args.label}: fingerprinted {', '.join(rows)}")


def delta_differences(paths: list[Path]) -> dict:
    """Each honest delta against the first: identical bytes, or how far its tensors are (relative L2, max abs)."""
    from safetensors.numpy import load

    first = load(paths[0].read_bytes())
    out = {}
    for path in paths[1:]:
        tensors = load(path.read_bytes())
        squared = sum(float(((tensors[k] - first[k]).astype("float64") ** 2).sum()) for k in first)
        norm = sum(float((first[k].astype("float64") ** 2).sum()) for k in first)
        out[f"{path.stem} vs {paths[0].stem}"] = {
            "identical_bytes": path.read_bytes() == paths[0].read_bytes(),
            "relative_l2": squared**0.5 / norm**0.5,
            "max_abs": max(float(abs(tensors[k] - first[k]).max()) for k in first),
        }
    return out


def compare(args) -> None:
    reports = [json.loads(Path(p).read_text()) for p in args.fingerprints]
    identities = {(r["model"], r["base_weights_hash"], r.get("eos_token_id")) for r in reports}
    if len(identities) != 1:
        raise SystemExit(f"the evaluators loaded different models (model, weights hash, end-of-text id): {identities}")
    model = reports[0]["model"]
    evaluators = {r["evaluator"]: r for r in reports}
    deltas = sorted(set.intersection(*(set(r["fingerprints"]) for r in reports)))
    honest = [d for d in deltas if d != "poisoned"]
    same_delta = {
        f"{d}: {a} vs {b}": fingerprint_distance(evaluators[a]["fingerprints"][d], evaluators[b]["fingerprints"][d])
        for d in deltas
        for a, b in itertools.combinations(sorted(evaluators), 2)
    }
    across_trainers = {
        f"{a} vs {b} (evaluator {e})": fingerprint_distance(
            evaluators[e]["fingerprints"][a], evaluators[e]["fingerprints"][b]
        )
        for e in sorted(evaluators)
        for a, b in itertools.combinations(honest, 2)
    }
    poisoned = (
        {
            f"poisoned vs {h} (evaluator {e})": fingerprint_distance(
                evaluators[e]["fingerprints"]["poisoned"], evaluators[e]["fingerprints"][h]
            )
            for e in sorted(evaluators)
            for h in honest
        }
        if "poisoned" in deltas
        else {}
    )
    honest_noise = max([*same_delta.values(), *across_trainers.values()], default=0)
    result = {
        "model": model,
        "spec": json.loads(SPECS[model].canonical_json()),
        "seed": SEED,
        "tolerance": TOLERANCE,
        "evaluators": {
            name: {k: v for k, v in r.items() if k not in ("fingerprints", "evaluator", "model")}
            for name, r in evaluators.items()
        },
        "same_delta_across_evaluators": same_delta,
        "honest_deltas_across_trainers": across_trainers,
        "poisoned_distance": poisoned,
        "largest_honest_distance": honest_noise,
        "honest_noise_over_tolerance": round(honest_noise / TOLERANCE, 4),
        "smallest_poisoned_over_tolerance": round(min(poisoned.values()) / TOLERANCE, 1) if poisoned else None,
    }
    if args.trainers:
        result["trainers"] = [json.loads(Path(p).read_text()) for p in args.trainers]
        result["honest_deltas_vs_first"] = delta_differences(
            [
                Path(p).with_suffix(".safetensors")
                for p, t in zip(args.trainers, result["trainers"], strict=True)
                if t["kind"] == "honest"
            ]
        )
    results = Path(
        args.results or RESULTS_DIR / ("crossdevice.json" if model == "tiny" else f"crossdevice-{model}.json")
    )
    results.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: result.get(k)
                for k in (
                    "honest_deltas_vs_first",
                    "largest_honest_distance",
                    "honest_noise_over_tolerance",
                    "smallest_poisoned_over_tolerance",
                )
            },
            indent=2,
        )
    )
    print(f"wrote {results}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crossdevice.run", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "fingerprint"):
        command = sub.add_parser(name)
        command.add_argument("--device", default="cpu")
        command.add_argument("--label", required=True, help="names this machine and device in the results")
        command.add_argument("--out", required=True)
        command.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
        command.add_argument("--model", choices=sorted(SPECS), default="tiny")
    sub.choices["train"].add_argument("--poisoned", action="store_true", help="also train the poisoned delta")
    sub.choices["fingerprint"].add_argument("deltas", nargs="+")
    command = sub.add_parser("compare")
    command.add_argument("fingerprints", nargs="+")
    command.add_argument("--trainers", nargs="*", default=[], help="the .json files written beside the deltas")
    command.add_argument("--results", help="where to write (default: benchmarks/results/crossdevice[-MODEL].json)")
    args = parser.parse_args(argv)
    {"train": train, "fingerprint": fingerprint, "compare": compare}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
