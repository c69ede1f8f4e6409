"""Deepshard benchmarks: verification of training deltas (`benchmarks.verification`), trainer throughput
(`benchmarks.throughput`) and gas (`benchmarks/gas`, written by the contract tests).

The package has an `__init__.py` on purpose: a dependency in the venv installs an unrelated top-level
`benchmarks` package, which would otherwise shadow this folder's namespace package.
"""

from __future__ import annotations

import datetime as _dt
import os as _os
import platform as _platform
from pathlib import Path as _Path

RESULTS_DIR = _Path(__file__).resolve().parent / "results"


def machine_description() -> dict:
    """What the figures were measured on: CPU model, cores, torch threads and library versions (no paths,
    no host names)."""
    import peft
    import torch
    import transformers

    cpu = _platform.processor() or _platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    cpu = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    isa = [name for name in ("avx512f", "avx2", "avx", "sse4_2", "amx_tile", "neon") if name in flags]
    description = {
        "cpu": cpu,
        "cpu_instruction_sets": isa,
        "cores": _os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "os": f"{_platform.system()} {_platform.release()}",
        "python": _platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }
    try:
        description["load_average_at_start"] = [round(x, 2) for x in _os.getloadavg()]
    except OSError:
        pass
    return description


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
