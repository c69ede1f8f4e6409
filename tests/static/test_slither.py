"""Static analysis: slither must report no high- or medium-severity finding in our contracts.

A finding judged false carries an inline `slither-disable-next-line` with its justification in the source.
Slither compiles through the same solc-js wrapper brownie uses (`SOLCX_BINARY_PATH`, set by the Makefile).
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = sorted(
    path.relative_to(ROOT).as_posix()
    for path in (ROOT / "contracts").rglob("*.sol")
    if "interfaces" not in path.parts and "libraries" not in path.parts
)


@pytest.fixture(scope="module")
def solc():
    path = Path(os.environ.get("SOLCX_BINARY_PATH", ROOT / ".solcx")) / "solc-v0.8.26"
    assert path.exists(), "solc-js wrapper missing: run `make setup`"
    return str(path)


@pytest.mark.parametrize("contract", CONTRACTS)
def test_no_high_or_medium_findings(contract, solc, tmp_path):
    report = tmp_path / "slither.json"
    subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "slither"),
            contract,
            "--solc",
            solc,
            "--solc-remaps",
            "@openzeppelin/=node_modules/@openzeppelin/",
            "--solc-args",
            "--optimize --evm-version shanghai",
            "--filter-paths",
            "node_modules",
            "--exclude-informational",
            "--exclude-low",
            "--exclude-optimization",
            "--json",
            str(report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(report.read_text())
    assert result["success"], result.get("error")
    findings = [
        f"{finding['impact']} {finding['check']}: {finding['description'].strip()}"
        for finding in result["results"].get("detectors", [])
        if finding["impact"] in ("High", "Medium")
    ]
    assert not findings, "\n".join(findings)
