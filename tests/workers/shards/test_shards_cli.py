"""The `workers.shards` package from outside: its exports resolve and the CLI starts without torch (`deepshard weights
fetch` itself runs against a chain: test_shards_purchase.py)."""

from __future__ import annotations

import subprocess
import sys
import types


def test_the_package_exports_resolve_and_the_cli_stays_light():
    import workers.shards

    for name in workers.shards.__all__:
        assert not isinstance(getattr(workers.shards, name), types.ModuleType), name
    check = "import sys, workers.cli; sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], check=False).returncode == 0
