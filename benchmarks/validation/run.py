"""Dataset validation speed, as a ratio against parsing the same lines with `json.loads` alone.

`python -m benchmarks.validation.run [--mib 16] [--repeats 3] [--max-ratio 15]`

What runs: one JSON Lines file of `--mib` MiB written to a temporary folder, the worst case for the checks
(every record non-ASCII, with tabs and double spaces to normalise). Measured side by side, alternating, in CPU
seconds of this process (`time.process_time`, so other load on the machine counts little):
- the baseline: read the file and `json.loads` every line, nothing else;
- `workers.data.validate`: the format's full pass (bounded strict parsing, field checks, normalisation,
  `comparison_form` duplicate keys, the manifest).
The best of `--repeats` runs of each gives the ratio validate / baseline; the target is `--max-ratio` (exit
status 1 above it). The test suite only asserts that such a file validates (tests/workers/data); speed is
judged here. Writes benchmarks/results/validation.json.

Measured on the 2-core development machine, 16 MiB, best of 2: before issue 10's bounds and comparison form
7.6-8.1, after 8.8-11.6 (about 0.6 CPU s more for the file; the machine was loaded, so the spread is wide).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from workers.data import validate
from workers.data.records import MiB

RESULTS = Path(__file__).resolve().parents[1] / "results" / "validation.json"


def write_dataset(path: Path, mib: int) -> int:
    """Writes the worst-case dataset (module docstring) of at most `mib` MiB; returns its record count."""
    line = json.dumps(
        {"text": "Caf\u00e9  with\tmilk, " + "word " * 30 + "{}", "source": "https://example.org/x", "lang": "en"},
        ensure_ascii=False,
    )
    count = (mib * MiB - 1024) // (len(line.encode()) + 8)
    path.write_bytes("".join(line.replace("{}", str(i)) + "\n" for i in range(count)).encode())
    return count


def baseline(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if json.loads(line) is not None)


def cpu_seconds(action) -> float:
    started = time.process_time()
    action()
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=16, help="dataset size in MiB (default 16, the format's limit)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, best kept (default 3)")
    parser.add_argument("--max-ratio", type=float, default=15.0, help="target: validate / baseline (default 15)")
    parser.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/validation.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dataset.jsonl"
        records = write_dataset(path, args.mib)
        base_runs, validate_runs = [], []
        for _ in range(args.repeats):
            base_runs.append(cpu_seconds(lambda: baseline(path)))
            report = None

            def run() -> None:
                nonlocal report
                report = validate(path)

            validate_runs.append(cpu_seconds(run))
            if report is None or not report.ok or report.manifest.records != records:
                print("error: the benchmark dataset did not validate", file=sys.stderr)
                return 2
    ratio = min(validate_runs) / min(base_runs)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mib": args.mib,
        "records": records,
        "baseline_cpu_s": round(min(base_runs), 3),
        "validate_cpu_s": round(min(validate_runs), 3),
        "ratio": round(ratio, 2),
        "max_ratio": args.max_ratio,
    }
    print(json.dumps(result))
    if not args.no_write:
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ratio <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
