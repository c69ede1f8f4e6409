"""The verification benchmark: do curvature fingerprints accept honest trainers and catch dishonest ones,
and how does the peer loss check compare?  `python -m benchmarks.verification.run --model tiny [--trials 20]`

A trial is one round: a fresh round seed, its batch (`corpus.round_batch`), the round spec (`specs.py`),
three honest trainers and nine adversaries (`trainers.py`). Each adversary is judged in its own round of
four deltas, the three honest ones plus itself, exactly as TrainingRounds judges: the reference is the
coordinate-wise lower median of the deltas' fingerprints and a delta is accepted iff its L1 distance to
the reference is <= the tolerance.

Tolerance rule, fixed before any adversary was run: `TOLERANCE_MULTIPLE` (3) times the largest honest
distance to the reference seen in separate calibration rounds (their own round seeds, the three honest
trainers only), rounded up. The adversaries never influence it.

Per adversary: `auroc` of the distance to the reference (adversary vs. the honest trainers that are not
bit-identical to the evaluator's own run, i.e. `honest_noise_1e-3` and `honest_threads_2`, in the same
rounds), `detection_rate` at the tolerance, and `baseline_auroc` of the loss check (`baseline.py`).
Also: honest trainers rejected in any round, the cost of a fingerprint over the cost of training the
delta, the fingerprint against perturbation DetectGPT, and the generated-vs-human AUROC (`generated.py`).
Writes benchmarks/results/verification.json (verification-<model>.json for other models) and a PNG.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# The `honest_threads_2` trainer runs torch at 2 threads on a box other jobs share: with OpenMP's default
# spinning barriers that run is ~15x slower than at 1 thread (measured); passive waiting makes it as fast.
# Only read when the OpenMP runtime starts, i.e. before torch is first imported; it does not change results.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from benchmarks import RESULTS_DIR, machine_description, utc_now
from benchmarks.verification.baseline import LOSS_BLOCKS, batch_loss, detectgpt_versus_fingerprint, loss_blocks
from benchmarks.verification.corpus import POISON_PAYLOAD, POISON_TRIGGER, RECORDS_PER_BATCH, round_batch
from benchmarks.verification.generated import generated_vs_human
from benchmarks.verification.plot import plot_benchmark
from benchmarks.verification.specs import round_spec
from benchmarks.verification.trainers import (
    ADVERSARIES,
    HARDWARE_NOISE,
    HONEST,
    adversary_deltas,
    honest_trainers,
    other_thread_count,
)
from workers.ml.delta import LoraDelta
from workers.ml.fingerprint import auroc, build_probe_set, fingerprint_from_scores, score_probe_set
from workers.ml.merge import merge_deltas
from workers.ml.models import MODEL_NAMES, load_base_model, reference_corpus
from workers.ml.seeds import derive_seed
from workers.protocol.rounds import fingerprint_distance, reference_of

TOLERANCE_MULTIPLE = 3
# Honest trainers whose delta is not bit-identical to the evaluator's own rerun: the AUROC's negatives.
NOISY_HONEST = ("honest_noise_1e-3", "honest_threads_2")
BENCH_ROOT_SEED = 0  # trial i's round seed is sha256-derived from this root, the label and i
TARGETS = {
    "auroc": 0.99,
    "honest_false_rejections": 0,
    "cost_ratio_fingerprint_vs_training": 0.05,
    "speedup_vs_detectgpt": 50,
}


def trial_seed(kind: str, index: int) -> str:
    return "0x" + derive_seed(BENCH_ROOT_SEED, f"bench-{kind}", index).hex()


@dataclass
class RoundOutcome:
    seed: str
    prints: dict[str, tuple[int, ...]]
    improvements: dict[str, float]  # loss check: base loss - tuned loss on the round's batch (nats/token)
    base_loss: float
    training_wall_seconds: float
    training_loop_seconds: float
    training_tokens: int
    base_score_seconds: float
    fingerprint_seconds: float  # merge + probe scoring of the honest delta (base scores shared)
    honest_delta: LoraDelta = field(repr=False)
    probes: object = field(repr=False)


def run_round(base, spec, seed: str, adversaries: bool) -> RoundOutcome:
    batch = round_batch(seed)
    honest = honest_trainers(base, batch, spec, seed)
    deltas = dict(honest.deltas)
    if adversaries:
        deltas.update(adversary_deltas(base, batch, spec, seed, honest.result.delta))
    probes = build_probe_set(seed, batch)
    started = time.perf_counter()
    base_scores = score_probe_set(base.model, base.tokenizer, probes)
    base_score_seconds = time.perf_counter() - started
    blocks = loss_blocks(base, batch, spec, seed)
    base_loss = batch_loss(base.model, blocks)
    prints, improvements, fingerprint_seconds = {}, {}, 0.0
    for name, delta in deltas.items():
        started = time.perf_counter()
        tuned = merge_deltas(base, [delta])  # the body of fingerprint_delta, merged once for both checks
        prints[name] = fingerprint_from_scores(base_scores, score_probe_set(tuned.model, tuned.tokenizer, probes))
        if name == "honest":
            fingerprint_seconds = time.perf_counter() - started
        improvements[name] = base_loss - batch_loss(tuned.model, blocks)
        del tuned
    return RoundOutcome(
        seed=seed,
        prints=prints,
        improvements=improvements,
        base_loss=base_loss,
        training_wall_seconds=honest.wall_seconds,
        training_loop_seconds=honest.result.seconds,
        training_tokens=honest.result.tokens,
        base_score_seconds=base_score_seconds,
        fingerprint_seconds=fingerprint_seconds,
        honest_delta=honest.result.delta,
        probes=probes,
    )


def judge(prints: dict[str, tuple[int, ...]], trainers: tuple[str, ...]) -> dict[str, int]:
    """Each trainer's L1 distance to the round's reference, by the protocol's rules (`workers.protocol.rounds`);
    with one evaluator, each delta's fingerprint is its consensus."""
    reference = reference_of([prints[name] for name in trainers])
    return {name: fingerprint_distance(prints[name], reference) for name in trainers}


def loss_deviations(improvements: dict[str, float], trainers: tuple[str, ...]) -> dict[str, float]:
    """The two-sided loss check: each delta's distance to the round's lower-median loss improvement."""
    centre = sorted(improvements[name] for name in trainers)[(len(trainers) - 1) // 2]
    return {name: abs(improvements[name] - centre) for name in trainers}


def _log(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def _stats(values: list[float], digits: int = 4) -> dict:
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def run(
    model: str,
    trials: int,
    calibration_trials: int,
    steps: int | None,
    detectgpt_texts: int | None,
    detectgpt_perturbations: int,
    generated_samples: int,
    quiet: bool = False,
    device: str | None = None,
) -> tuple[dict, dict]:
    """Run the benchmark; returns (the JSON report, plot data)."""
    started_all = time.perf_counter()
    machine = machine_description()
    machine["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
    base = load_base_model(model, device=device)  # None: CUDA when present, else CPU
    machine["device"] = str(base.device) if base.device.type != "cuda" else machine["device"]
    spec = round_spec(model, steps)
    corpus = set(reference_corpus())

    # 1. Calibration: honest-only rounds with their own seeds fix the tolerance.
    calibration = []
    for index in range(calibration_trials):
        outcome = run_round(base, spec, trial_seed("calibration", index), adversaries=False)
        distances = judge(outcome.prints, HONEST)
        calibration.append(
            {
                "round_seed": outcome.seed,
                "distances": distances,
                "loss_deviations": loss_deviations(outcome.improvements, HONEST),
            }
        )
        _log(
            f"calibration {index + 1}/{calibration_trials}: {distances} ({time.perf_counter() - started_all:.0f} s)",
            quiet,
        )
    calibration_max = max(d for c in calibration for d in c["distances"].values())
    tolerance = max(1, math.ceil(TOLERANCE_MULTIPLE * calibration_max))
    # The same rule for the two-sided loss check, on its own scale (nats/token).
    loss_tolerance = TOLERANCE_MULTIPLE * max(d for c in calibration for d in c["loss_deviations"].values())
    _log(f"tolerance = {TOLERANCE_MULTIPLE} x {calibration_max} -> {tolerance}", quiet)

    # 2. Trials: every adversary judged in a round with the three honest trainers.
    outcomes: list[RoundOutcome] = []
    judged: list[dict[str, dict[str, int]]] = []  # per trial: adversary -> {trainer: distance}
    for index in range(trials):
        outcome = run_round(base, spec, trial_seed("trial", index), adversaries=True)
        assert not set(round_batch(outcome.seed)) & corpus
        outcomes.append(outcome)
        judged.append({adv: judge(outcome.prints, HONEST + (adv,)) for adv in ADVERSARIES})
        _log(
            f"trial {index + 1}/{trials}: "
            + ", ".join(f"{a}={judged[-1][a][a]}" for a in ADVERSARIES)
            + f" | honest max {max(judged[-1][a][h] for a in ADVERSARIES for h in HONEST)}"
            f" ({time.perf_counter() - started_all:.0f} s)",
            quiet,
        )

    adversaries = {}
    for adv in ADVERSARIES:
        positives = [j[adv][adv] for j in judged]
        negatives = [j[adv][h] for j in judged for h in NOISY_HONEST]
        improve_adv = [o.improvements[adv] for o in outcomes]
        improve_honest = [o.improvements[h] for o in outcomes for h in NOISY_HONEST]
        two_sided_adv, two_sided_honest = [], []
        for o in outcomes:
            deviations = loss_deviations(o.improvements, HONEST + (adv,))
            two_sided_adv.append(deviations[adv])
            two_sided_honest.extend(deviations[h] for h in NOISY_HONEST)
        adversaries[adv] = {
            "auroc": round(auroc(positives, negatives), 4),
            "detection_rate": round(sum(d > tolerance for d in positives) / len(positives), 4),
            "baseline_auroc": round(auroc([-x for x in improve_adv], [-x for x in improve_honest]), 4),
            "baseline_detection_rate": round(sum(x <= 0 for x in improve_adv) / len(improve_adv), 4),
            "baseline_detection_rate_best_threshold": round(
                sum(x < min(improve_honest) for x in improve_adv) / len(improve_adv), 4
            ),
            "baseline_two_sided_auroc": round(auroc(two_sided_adv, two_sided_honest), 4),
            "baseline_two_sided_detection_rate": round(
                sum(d > loss_tolerance for d in two_sided_adv) / len(two_sided_adv), 4
            ),
            "distance": _stats(positives, 0),
            "honest_distance_in_these_rounds": _stats(negatives, 0),
            "loss_improvement": _stats(improve_adv),
        }
    honest = {}
    false_rejections = judgements = 0
    for h in HONEST:
        distances = [j[adv][h] for j in judged for adv in ADVERSARIES]
        rejected = sum(d > tolerance for d in distances)
        false_rejections += rejected
        judgements += len(distances)
        loss_rejected = sum(
            loss_deviations(o.improvements, HONEST + (adv,))[h] > loss_tolerance
            for o in outcomes
            for adv in ADVERSARIES
        )
        honest[h] = {
            "distance": _stats(distances, 0),
            "rejected": rejected,
            "judgements": len(distances),
            "loss_improvement": _stats([o.improvements[h] for o in outcomes]),
            "baseline_two_sided_rejected": loss_rejected,
        }

    # 3. Cost of one fingerprint against training that delta (medians over the trials).
    train_wall = statistics.median(o.training_wall_seconds for o in outcomes)
    train_loop = statistics.median(o.training_loop_seconds for o in outcomes)
    fp_single = statistics.median(o.base_score_seconds + o.fingerprint_seconds for o in outcomes)
    fp_shared = statistics.median(o.fingerprint_seconds for o in outcomes)
    tokens = outcomes[0].training_tokens
    cost_ratio = fp_single / train_wall
    cost = {
        "training_seconds": round(train_wall, 3),
        "training_loop_seconds": round(train_loop, 3),
        "training_tokens": tokens,
        "fingerprint_seconds": round(fp_single, 3),
        "fingerprint_seconds_base_scores_shared": round(fp_shared, 3),
        "ratio_base_scores_shared": round(fp_shared / train_wall, 4),
        "training_tokens_for_5pct": int(math.ceil(tokens * cost_ratio / 0.05)),
        "note": (
            "medians over trials; fingerprint = base + base+delta probe scoring and the merge; training = the "
            "train_lora call; the fingerprint's cost is fixed per delta while training grows with the round's "
            "tokens, so the ratio falls as 1/steps (`training_tokens_for_5pct` is where it reaches 5%)"
        ),
    }
    _log(f"cost: fingerprint {fp_single:.2f} s vs training {train_wall:.2f} s -> {cost_ratio:.3f}", quiet)

    # 4. Fingerprint vs perturbation DetectGPT on trial 0's probes and honest delta.
    texts = detectgpt_texts if detectgpt_texts is not None else (None if model == "tiny" else 4)
    detectgpt = detectgpt_versus_fingerprint(
        base, outcomes[0].honest_delta, outcomes[0].probes, perturbations=detectgpt_perturbations, max_texts=texts
    )
    _log(
        f"detectgpt: {detectgpt['detectgpt_seconds']} s vs {detectgpt['fingerprint_seconds']} s "
        f"-> x{detectgpt['speedup']} ({time.perf_counter() - started_all:.0f} s)",
        quiet,
    )

    # 5. Generated (SmolLM2) vs human text with the curvature score.
    generated = generated_vs_human(generated_samples, base, device=base.device)
    _log(f"generated vs human: {generated.get('auroc')} ({time.perf_counter() - started_all:.0f} s)", quiet)

    report = {
        "model": model,
        "trials": trials,
        "calibration_trials": calibration_trials,
        "tolerance": tolerance,
        "tolerance_rule": (
            f"{TOLERANCE_MULTIPLE} x the largest honest L1 distance to the reference over the "
            f"calibration rounds ({calibration_max}), rounded up; fixed before any adversary ran"
        ),
        "adversaries": adversaries,
        "baseline": {
            "baseline_auroc": "one-sided loss check: suspicion = -(loss on the round's batch before - after), "
            "pooled over trials (what live networks score)",
            "baseline_detection_rate": "share of the adversary's deltas that do not lower the batch loss at all",
            "baseline_detection_rate_best_threshold": (
                "share below the lowest honest improvement of these "
                "trials: an oracle threshold, the best the one-sided "
                "check could do without rejecting an honest trainer"
            ),
            "baseline_two_sided_auroc": (
                "|improvement - the round's lower-median improvement|, the loss check "
                "given the fingerprint's reference structure"
            ),
            "baseline_two_sided_detection_rate": f"at {TOLERANCE_MULTIPLE} x the largest honest deviation in "
            f"the calibration rounds = {loss_tolerance:.3g} nats/token",
        },
        "honest_false_rejections": false_rejections,
        "honest_judgements": judgements,
        "honest": honest,
        "cost_ratio_fingerprint_vs_training": round(cost_ratio, 4),
        "cost": cost,
        "speedup_vs_detectgpt": detectgpt["speedup"],
        "detectgpt": detectgpt,
        "generated_vs_human_auroc": generated.get("auroc"),
        "generated_vs_human": generated,
        "targets": TARGETS,
        "round": {
            "spec": spec.to_dict(),
            "spec_hash": spec.spec_hash_hex(),
            "records_per_batch": RECORDS_PER_BATCH,
            "honest_trainers": list(HONEST),
            "auroc_negatives": list(NOISY_HONEST),
            "hardware_noise": HARDWARE_NOISE,
            "other_thread_count": other_thread_count(),
            "reference": "coordinate-wise lower median over the round's 4 deltas (3 honest + 1 adversary)",
            "loss_check_blocks": f"up to {LOSS_BLOCKS} of the round's packed training blocks",
            "poison_trigger": POISON_TRIGGER,
            "poison_payload": POISON_PAYLOAD,
            "honest_base_loss": _stats([o.base_loss for o in outcomes]),
        },
        "calibration": calibration,
        "per_trial": [
            {
                "round_seed": o.seed,
                "adversary_distance": {adv: j[adv][adv] for adv in ADVERSARIES},
                "honest_max_distance": {h: max(j[adv][h] for adv in ADVERSARIES) for h in HONEST},
                "loss_improvement": {k: round(v, 5) for k, v in o.improvements.items()},
            }
            for o, j in zip(outcomes, judged, strict=True)
        ],
        "machine": machine,
        "date": utc_now(),
        "run_seconds": round(time.perf_counter() - started_all, 1),
    }
    plot = {
        "distances": {
            **{h: [j[adv][h] for j in judged for adv in ADVERSARIES] for h in HONEST},
            **{adv: [j[adv][adv] for j in judged] for adv in ADVERSARIES},
        },
        "relative_prints": {
            name: [tuple(a - b for a, b in zip(o.prints[name], o.prints["honest"], strict=True)) for o in outcomes]
            for name in HONEST + ADVERSARIES
        },
        "tolerance": tolerance,
    }
    return report, plot


def default_output(model: str) -> Path:
    return RESULTS_DIR / ("verification.json" if model == "tiny" else f"verification-{model}.json")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.verification.run", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", choices=MODEL_NAMES)
    parser.add_argument("--trials", type=int, default=20, help="evaluation rounds (default 20)")
    parser.add_argument(
        "--calibration-trials",
        type=int,
        default=None,
        help="honest-only rounds that fix the tolerance (default 10 on tiny, 3 otherwise)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON path (default benchmarks/results/verification[-MODEL].json); the PNG goes beside it",
    )
    parser.add_argument("--steps", type=int, default=None, help="override the spec's steps (smoke tests only)")
    parser.add_argument(
        "--detectgpt-texts",
        type=int,
        default=None,
        help="probe texts DetectGPT is timed on, scaled to all (default all on tiny, 4 otherwise)",
    )
    parser.add_argument("--detectgpt-perturbations", type=int, default=100)
    parser.add_argument(
        "--generated-samples",
        type=int,
        default=40,
        help="SmolLM2 samples (and human texts) for generated_vs_human_auroc; 0 skips it",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when present, else CPU)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be >= 1")
    calibration = args.calibration_trials
    if calibration is None:
        calibration = 10 if args.model == "tiny" else 3

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        report, plot = run(
            args.model,
            args.trials,
            max(1, calibration),
            args.steps,
            args.detectgpt_texts,
            args.detectgpt_perturbations,
            args.generated_samples,
            args.quiet,
            args.device,
        )
    finally:
        torch.set_num_threads(previous_threads)
    out = args.out or default_output(args.model)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    report["plot"] = png.name
    if args.steps:
        report["note"] = f"spec steps overridden to {args.steps} (smoke run, not a benchmark figure)"
    plot_benchmark(
        png,
        f"Deepshard verification benchmark: {args.model}, {args.trials} trials",
        plot["distances"],
        plot["tolerance"],
        plot["relative_prints"],
        HONEST,
    )
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if not args.quiet:
        print(summary_table(report))
    return report


def summary_table(report: dict) -> str:
    lines = [
        f"model {report['model']}, {report['trials']} trials, tolerance {report['tolerance']}",
        f"{'adversary':<18} {'auroc':>7} {'detect':>7} {'baseline':>9} {'2-sided':>8} {'median L1':>10}",
    ]
    for name, row in report["adversaries"].items():
        lines.append(
            f"{name:<18} {row['auroc']:>7.4f} {row['detection_rate']:>7.2f} {row['baseline_auroc']:>9.4f} "
            f"{row['baseline_two_sided_auroc']:>8.4f} {row['distance']['median']:>10.0f}"
        )
    lines.append(f"honest false rejections: {report['honest_false_rejections']} / {report['honest_judgements']}")
    lines.append(f"cost ratio fingerprint/training: {report['cost_ratio_fingerprint_vs_training']}")
    lines.append(f"speedup vs DetectGPT: {report['speedup_vs_detectgpt']}")
    lines.append(f"generated vs human AUROC: {report['generated_vs_human_auroc']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
