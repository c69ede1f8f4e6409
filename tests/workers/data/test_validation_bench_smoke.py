"""Smoke test of the validation benchmark (benchmarks/validation): 1 MiB, one run, through its entry point.
Checks the report's fields, never a speed."""

from __future__ import annotations

import json

from benchmarks.validation.run import main


def test_the_benchmark_reports_a_ratio(capsys):
    status = main(["--mib", "1", "--repeats", "1", "--no-write", "--max-ratio", "1e9"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["mib"] == 1 and report["records"] > 0
    assert report["validate_cpu_s"] > 0 and report["baseline_cpu_s"] > 0 and report["ratio"] > 0
