"""TEST ONLY Celery app for the step runner's tests: `celery -A tests.workers.tasks.worker_app worker`.

It is the project's app (`workers.tasks.app`) with two test knobs:
  * DEEPSHARD_TEST_STANDIN_ML=1: `train_delta` and `fingerprint_deltas` are instant stand-ins instead of the
    real ML tasks (which are then not imported; the delta is pinned sealed in the configured store like the real
    one's): an honest trainer's delta CID depends only on the round seed,
    a poisoned one's (DEEPSHARD_TEST_POISON=1) differs; fingerprints put honest deltas on one point and every
    other delta far away. DEEPSHARD_TEST_TRAIN_SECONDS makes training take that long.
  * DEEPSHARD_TEST_VISIBILITY_TIMEOUT: seconds after which Redis redelivers a message that a killed worker
    never acknowledged (the app's default is an hour), swept every second.

Tasks of its own for the delivery tests: `tests.delivery.long_job(runs_key, gate_key=None)` records each run in the
Redis list `runs_key`, then waits (up to `GATE_TIMEOUT` seconds) until the key `gate_key` exists, if one is given;
`tests.delivery.fail(runs_key)` records its run, then raises ValueError; `tests.delivery.crash(runs_key)` records its
run, then SIGKILLs its own process.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

# netkit imports its siblings as top-level modules (`services`), as pytest's conftest does.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.workers.netkit import HONEST, POISONED  # noqa: E402
from workers.storage import cid_of_bytes, open_store
from workers.storage.sealed import add_sealed
from workers.tasks.app import app
from workers.tasks.runner import broker_redis

if os.environ.get("DEEPSHARD_TEST_VISIBILITY_TIMEOUT"):
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "visibility_timeout": float(os.environ["DEEPSHARD_TEST_VISIBILITY_TIMEOUT"]),
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }


#: A generous bound on how long a gated job waits for its gate (it only ends a wait that went wrong).
GATE_TIMEOUT = 300.0


@app.task(name="tests.delivery.long_job")
def long_job(runs_key: str, gate_key: str | None = None) -> int:
    client = broker_redis()
    client.rpush(runs_key, os.getpid())
    deadline = time.monotonic() + GATE_TIMEOUT
    while gate_key is not None and not client.exists(gate_key):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gate {gate_key} was not opened within {GATE_TIMEOUT:g} s")
        time.sleep(0.1)
    return os.getpid()


@app.task(name="tests.delivery.fail")
def fail(runs_key: str) -> None:
    broker_redis().rpush(runs_key, os.getpid())
    raise ValueError("tests.delivery.fail fails on purpose")


@app.task(name="tests.delivery.crash")
def crash(runs_key: str) -> None:
    broker_redis().rpush(runs_key, os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)


def honest_delta_cid(round_seed: str) -> str:
    return str(cid_of_bytes(f"stand-in delta for {round_seed}".encode()))


if os.environ.get("DEEPSHARD_TEST_STANDIN_ML") == "1":
    app.conf.include = [m for m in app.conf.include if m not in ("workers.tasks.training", "workers.tasks.evaluation")]

    @app.task(name="workers.tasks.training.train_delta")
    def train_delta(
        round_id, base_model, base_delta_cids, dataset_manifest_cids, spec_json, round_seed, base_delta_specs=None
    ):
        time.sleep(float(os.environ.get("DEEPSHARD_TEST_TRAIN_SECONDS", "0")))
        kind = "poisoned" if os.environ.get("DEEPSHARD_TEST_POISON") == "1" else "stand-in"
        with open_store() as store:  # sealed, as the real task pins it
            sealed = add_sealed(store, f"{kind} delta for {round_seed}".encode())
        return {"delta_cid": sealed.cid, "sealed_cid": sealed.sealed_cid, "key": sealed.key.hex(), "manifest": {}}

    @app.task(name="workers.tasks.evaluation.fingerprint_deltas")
    def fingerprint_deltas(
        round_id,
        base_model,
        base_delta_cids,
        dataset_manifest_cids,
        spec_json,
        round_seed,
        delta_cids,
        base_delta_specs=None,
    ):
        honest = honest_delta_cid(round_seed)
        rows = [list(HONEST) if cid == honest else list(POISONED) for cid in delta_cids]
        return {"fingerprints": rows, "errors": [None] * len(rows), "seconds": 0.0}
