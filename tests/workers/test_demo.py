"""`python -m workers.demo` end to end: it runs, lists every role, and stops its anvil."""

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
    pid = int(re.search(r"\(pid (\d+)\)", out).group(1))
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the demo left its anvil running"
    assert "anvil stopped" in out
