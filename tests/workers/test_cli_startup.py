"""The CLI starts light: `--help` and the commands that need no chain or model never import web3, Celery, torch
or transformers (each costs seconds of start-up). Checked by the modules loaded, not by a clock."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workers.chain.artifacts import project_root
from workers.data import SAMPLES_DIR

HEAVY = ("web3", "celery", "torch", "transformers", "requests")


def loaded_after(argv: list[str]) -> dict:
    script = (
        "import contextlib, io, json, sys\n"
        "from workers.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "    try:\n"
        f"        status = main({argv!r})\n"
        "    except SystemExit as exit:\n"
        "        status = exit.code\n"
        f"print(json.dumps({{'status': status, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, cwd=project_root(), capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["stake", "--help"],
        ["devnet", "--help"],
        ["data", "validate", "--help"],
        ["data", "validate", str((SAMPLES_DIR / "good.jsonl").relative_to(project_root()))],
        ["data", "normalise", "--help"],
    ],
    ids=" ".join,
)
def test_commands_without_a_chain_or_a_model_load_none_of_the_heavy_libraries(argv):
    result = loaded_after(argv)
    assert result["status"] == 0
    assert result["heavy"] == []
