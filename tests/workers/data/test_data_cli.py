"""`deepshard data ...`: exit codes and output of validate, normalise and signals."""

import json
import subprocess
import sys

import pytest

from workers.cli import main
from workers.data import SAMPLES_DIR, DatasetManifest, normalise

GOOD, JUNK, MALFORMED = (SAMPLES_DIR / f"{name}.jsonl" for name in ("good", "junk", "malformed"))


def run(capsys, *argv):
    status = main(["data", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    return status, out, err


def test_validate_valid_file_prints_one_line(capsys):
    status, out, err = run(capsys, "validate", GOOD)
    assert status == 0 and err == ""
    assert out.count("\n") == 1 and out.startswith(f"{GOOD}: valid: 52 records")


def test_validate_invalid_file_lists_lines(capsys):
    status, out, err = run(capsys, "validate", MALFORMED)
    assert status == 1 and err == ""
    lines = out.splitlines()
    assert lines[-1] == f"{MALFORMED}: invalid: 9 problems"
    assert [line.split(":")[1] for line in lines[:-1]] == ["2", "3", "4", "5", "6", "7", "8", "9", "11"]
    assert lines[0].endswith("not valid UTF-8 (byte 0xe9 at byte 14 of the line)")
    assert lines[7].endswith("duplicate of line 1 (the same text after normalisation)")


def test_validate_limits_from_the_command_line(capsys, tmp_path):
    status, out, _ = run(capsys, "validate", GOOD, "--max-records", "10")
    assert status == 1 and f"{GOOD}:11: more than 10 records" in out
    status, out, _ = run(capsys, "validate", GOOD, "--max-record-bytes", "100")
    assert status == 1 and "record is over the size limit of 100 bytes" in out
    with pytest.raises(SystemExit) as caught:
        main(["data", "validate", str(GOOD), "--max-records", "0"])
    assert caught.value.code == 2


def test_validate_unreadable_file(capsys, tmp_path):
    status, out, err = run(capsys, "validate", tmp_path / "missing.jsonl")
    assert status == 2 and out == "" and err.startswith("error: cannot use ") and "missing.jsonl" in err
    status, _, err = run(capsys, "validate", tmp_path)
    assert status == 2 and err.startswith("error: ")


def test_normalise_writes_output_and_manifest(capsys, tmp_path):
    out_file, manifest_file = tmp_path / "good.norm.jsonl", tmp_path / "manifest.json"
    status, out, _ = run(capsys, "normalise", GOOD, "-o", out_file, "--manifest", manifest_file)
    assert status == 0 and out.startswith(f"{out_file}: 52 records")
    assert out_file.read_bytes() == normalise(GOOD)
    manifest = DatasetManifest.from_json(manifest_file.read_bytes())
    assert manifest.records == 52 and manifest.size_bytes == out_file.stat().st_size


def test_normalise_invalid_file(capsys, tmp_path):
    status, out, _ = run(capsys, "normalize", MALFORMED, "-o", tmp_path / "out.jsonl")
    assert status == 1 and "invalid: 9 problems" in out and not (tmp_path / "out.jsonl").exists()


def test_signals_prints_json(capsys):
    status, out, _ = run(capsys, "signals", JUNK, "--corpus", GOOD)
    assert status == 0
    report = json.loads(out)
    assert report["signals"]["corpus_records"] == 52 and report["signals"]["near_duplicate_rate_corpus"] > 0
    assert report["vote"] == [
        report["scores"][k] for k in ("novelty", "reproducibility", "alignment", "truthfulness", "objectivity")
    ]
    status, out, _ = run(capsys, "signals", GOOD)
    assert json.loads(out)["vote"] == [100, 100, 100, 95, 100]


def test_signals_missing_corpus(capsys, tmp_path):
    status, _, err = run(capsys, "signals", GOOD, "--corpus", tmp_path / "nope")
    assert status == 2 and "nope" in err


def test_module_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", "data", "validate", str(MALFORMED)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "invalid: 9 problems" in done.stdout
