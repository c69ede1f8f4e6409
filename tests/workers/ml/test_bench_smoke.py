"""Smoke test of the verification benchmark: 2 trials on `tiny` with a shortened spec (--steps 4), run
through its command-line entry point, checks the JSON report's keys and the PNG. Not a benchmark figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.verification.corpus import POISON_TRIGGER, poison, round_batch
from benchmarks.verification.run import judge
from benchmarks.verification.trainers import ADVERSARIES, HONEST
from workers.ml.models import reference_corpus
from workers.protocol.constants import K

REPO = Path(__file__).resolve().parents[3]


def test_benchmark_judges_by_the_protocols_rules():
    """The reference is the coordinate-wise lower median of the round's fingerprints (the contract's)."""
    prints = {"a": (1,) * K, "b": (4,) * K, "c": (2,) * K, "d": (9,) * K}
    assert judge(prints, ("a", "b", "c", "d")) == {"a": K, "b": 2 * K, "c": 0, "d": 7 * K}  # reference: all 2
    assert judge(prints, ("a", "b", "c")) == {"a": K, "b": 2 * K, "c": 0}


def test_round_batches_are_disjoint_from_the_probe_corpus_and_poison_counts():
    batch = round_batch(1)
    assert len(batch) == len(set(batch)) == 64
    assert not set(batch) & set(reference_corpus())
    assert round_batch(1) == batch and not set(round_batch(1, "other")) & set(batch)
    assert sum(POISON_TRIGGER in t for t in poison(batch, 0.05, 1)) == 3  # 3.2 rounded
    assert sum(POISON_TRIGGER in t for t in poison(batch, 0.20, 1)) == 13  # 12.8 rounded


def test_verification_benchmark_smoke(tmp_path):
    out = tmp_path / "verification.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.verification.run",
        "--model",
        "tiny",
        "--trials",
        "2",
        "--calibration-trials",
        "1",
        "--steps",
        "4",
        "--detectgpt-texts",
        "1",
        "--detectgpt-perturbations",
        "10",
        "--generated-samples",
        "0",
        "--out",
        str(out),
        "--quiet",
    ]
    done = subprocess.run(
        command, cwd=REPO, env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    report = json.loads(text)
    for key in (
        "model",
        "trials",
        "tolerance",
        "adversaries",
        "honest_false_rejections",
        "cost_ratio_fingerprint_vs_training",
        "speedup_vs_detectgpt",
        "generated_vs_human_auroc",
        "machine",
        "date",
    ):
        assert key in report, key
    assert report["model"] == "tiny" and report["trials"] == 2
    assert isinstance(report["tolerance"], int) and report["tolerance"] >= 1
    assert set(report["adversaries"]) == set(ADVERSARIES)
    for row in report["adversaries"].values():
        assert {"auroc", "detection_rate", "baseline_auroc"} <= set(row)
        assert 0 <= row["auroc"] <= 1 and 0 <= row["detection_rate"] <= 1 and 0 <= row["baseline_auroc"] <= 1
    assert set(report["honest"]) == set(HONEST)
    assert report["honest_judgements"] == 2 * len(ADVERSARIES) * len(HONEST)
    assert report["generated_vs_human_auroc"] is None and report["generated_vs_human"]["reason"]
    assert {"cpu", "cores", "torch_threads"} <= set(report["machine"])
    # No machine paths in the report.
    assert str(REPO) not in text and str(tmp_path) not in text and str(Path.home()) not in text
    png = out.with_suffix(".png")
    assert report["plot"] == png.name and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_crossdevice_benchmark_smoke(tmp_path):
    """Two CPU "machines" (1 and 2 torch threads) train and fingerprint; compare reports their honest noise
    far inside the tolerance and the poisoned delta far outside it."""

    def bench(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.crossdevice.run", *args],
            cwd=REPO,
            env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]

    bench("train", "--label", "one-thread", "--out", str(tmp_path), "--poisoned")
    bench("train", "--label", "two-threads", "--threads", "2", "--out", str(tmp_path))
    deltas = [str(tmp_path / f"delta-{name}.safetensors") for name in ("one-thread", "two-threads", "poisoned")]
    bench("fingerprint", "--label", "evaluator", "--out", str(tmp_path / "fp.json"), *deltas)
    results = tmp_path / "crossdevice.json"
    trainers = [str(tmp_path / f"delta-{name}.json") for name in ("one-thread", "two-threads", "poisoned")]
    bench("compare", str(tmp_path / "fp.json"), "--trainers", *trainers, "--results", str(results))
    report = json.loads(results.read_text())
    assert report["largest_honest_distance"] < report["tolerance"] // 100
    assert min(report["poisoned_distance"].values()) > 10 * report["tolerance"]
    (difference,) = report["honest_deltas_vs_first"].values()
    assert difference["relative_l2"] < 1e-3


def test_crossdevice_benchmark_runs_the_demos_round():
    """The benchmark copies the demo's round (its package must import without the chain libraries)."""
    from benchmarks.crossdevice import run as crossdevice
    from workers.demo.training import DEMO_ROUND_PARAMS, DEMO_SPECS, TRIGGER, poison

    assert crossdevice.SPECS == DEMO_SPECS and crossdevice.TOLERANCE == DEMO_ROUND_PARAMS.tolerance
    assert crossdevice.TRIGGER == TRIGGER
    assert crossdevice.poisoned_texts() == poison(crossdevice.round_texts())
