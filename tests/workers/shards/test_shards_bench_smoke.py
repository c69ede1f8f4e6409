"""Smoke test of the shard benchmark: one trial on `tiny`, one holder, through its command-line entry point; checks
the report's figures are there and consistent. Not a benchmark figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_shard_benchmark_smoke(tmp_path):
    out = tmp_path / "shards.json"
    command = [sys.executable, "-m", "benchmarks.shards.run", "--model", "tiny", "--trials", "1"]
    command += ["--replication", "1", "--nodes", "1", "--stage-shards", "1", "--out", str(out)]
    done = subprocess.run(
        command, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["model"] == "tiny" and report["setup"]["shards"] == 3
    assert report["assembly"]["weights_hash_matches_registry"] and report["assembly"]["faults"] == 0
    assert report["encryption"]["ratio_median"] > 0 and len(report["encryption"]["repetitions"]) == 1
    assert report["storage"]["pinned_replica_bytes"] == report["setup"]["plaintext_bytes"] + 3 * 16
