"""`python -m workers.demo` end to end: it runs, lists every role, runs the data consensus (junk rejected and
slashed), and stops its anvil."""

import os
import re
import subprocess
import sys

from workers.chain import ROLES
from workers.chain.artifacts import project_root


def test_demo_runs_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPSHARD_")}
    result = subprocess.run(
        [sys.executable, "-m", "workers.demo"],
        cwd=project_root(), env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    stakes = out.split("\nStakes\n")[1].split("\nTotals per role\n")[0]
    for role in ROLES:
        assert re.search(rf"^{role}\s+0x[0-9a-fA-F]{{4}}…[0-9a-fA-F]{{4}}\s+[\d,.]+\s", stakes, re.M), role
    assert "permit" in stakes and "approve" in stakes

    consensus = out.split("\nData consensus")[1].split("\nBalances that moved")[0]
    for dataset in ("good.jsonl", "more-facts.jsonl"):
        assert re.search(rf"^#\d+\s+{re.escape(dataset)}\s+0x\S+\s+accepted\s.*\s200 back\s", consensus, re.M), dataset
    junk = re.search(r"^#\d+\s+junk\.jsonl\s+(0x\S+)\s+rejected\s.*\s100 slashed, 100 back\s", consensus, re.M)
    assert junk, consensus
    balances = out.split("\nBalances that moved")[1]
    assert re.search(rf"^{re.escape(junk[1])}\s+INFORMANT\s.*\s250\s+150\s+-100$", balances, re.M), balances
    pid = int(re.search(r"\(pid (\d+)\)", out).group(1))
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the demo left its anvil running"
    assert "anvil stopped" in out
