"""A training round with real workers: event-to-task latency and the round's wall time by phase.

`python -m benchmarks.rounds.run [--model tiny] [--redis-url redis://127.0.0.1:6379/15]`

What runs: a throwaway anvil, the demo's deployment and data consensus (two datasets accepted), then
`deepshard worker` processes as a user runs them: a keeper (with the watcher in its process, polling every
2 s), three honest trainers and three evaluators, on the embedded store and the given Redis database
(refused unless empty; emptied again at the end). The benchmark plays a fourth, poisoned trainer itself
(the demo's) and mines blocks only once every worker has done its part of a phase, as a real chain would
have moved on by then.

Latency: a thread polls the node every 10 ms and records when each block first appeared; every task the
watcher queues has a deterministic id naming its event's block, and the worker logs when it received it
(prefetch 1, idle pool: received is when it starts). Latency = received - block first seen, over every
event mined after the workers were ready. Baseline, side by side on the same worker and broker: tasks the
benchmark queues itself (`keeper_step` of the ended round, which only reads the chain), received - sent.
Their ratio shows what the watcher's polling adds to the broker's own delay (with a 2 s poll, a median
near 1 s is expected).

Phases: seconds from the keeper's start (the other workers being ready) to the round being opened, the deltas
committed and revealed, the panel drawn, the fingerprints committed, the round finalized and every seat settled.
Writes benchmarks/results/rounds[-<model>].json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import redis as redis_lib

from benchmarks import RESULTS_DIR, machine_description, utc_now
from workers.chain import ROLES, ChainClient, DeployParams, deploy_network
from workers.chain.artifacts import project_root
from workers.chain.localnode import dev_account, dev_signer, start_anvil
from workers.chain.salts import SaltStore
from workers.demo import stake_roles
from workers.demo.consensus import DEMO_DATA_PARAMS, run_data_consensus
from workers.demo.local import DEV_ACCOUNTS, ROUND_EVALUATORS, ROUND_TRAINERS, fund, mine_to
from workers.demo.training import DEMO_ROUND_PARAMS, DEMO_SPECS, PoisonedJobs, enlist, worker_environment
from workers.ml.models import MODEL_NAMES
from workers.rounds.chain import TrainingRoundsClient
from workers.rounds.specs import SpecBook
from workers.rounds.steps import trainer_once
from workers.storage import open_store
from workers.tasks.app import REDIS_URL_ENV, point_app_at
from workers.tasks.rounds import keeper_step
from workers.tasks.runner import send

PHASE_TIMEOUT = 600.0
READY_TIMEOUT = 120.0
BASELINE_SENDS = 20
#: a Celery worker's log line for a received task: "[2026-11-26 14:20:01,123: INFO/MainProcess] Task
#: workers.tasks.rounds.keeper_step[<id>] received"
RECEIVED = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] Task (\S+)\[(\S+)\] received$", re.M
)
#: the watcher's task ids: watch:<chain>:<contract>:<block>:<log index>:<queue>:<task>
WATCH_ID = re.compile(r"^watch:\d+:0x[0-9a-fA-F]{40}:(\d+):\d+:")


class BlockClock(threading.Thread):
    """Records the wall time at which each block number was first seen (polling every 10 ms)."""

    def __init__(self, client: ChainClient):
        super().__init__(daemon=True)
        self.client = client
        self.first_seen: dict[int, float] = {}
        self.failed_polls = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        last = -1
        while not self.stopped.is_set():
            try:
                number = int(self.client.w3.eth.block_number)
            except Exception:  # noqa: BLE001 - a missed poll only delays "first seen"; it is counted, not fatal
                self.failed_polls += 1
                self.stopped.wait(0.01)
                continue
            now = time.time()
            for block in range(last + 1, number + 1):
                self.first_seen.setdefault(block, now)
            last = max(last, number)
            self.stopped.wait(0.01)


class Worker:
    """A `deepshard worker` process in a process group of its own (so its pool children stop with it)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=project_root(),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def received(self) -> dict[str, float]:
        """task id -> epoch seconds at which this worker received it (the log's millisecond, plus half of it)."""
        return {
            task_id: datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp() + 0.0005
            for stamp, _, task_id in RECEIVED.findall(self.log())
        }

    def stop(self) -> None:
        """SIGTERM to the worker's own process group (warm shutdown), SIGKILL to it if it lingers."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # pool children a dead main process left behind
        except ProcessLookupError:
            pass
        self.process.wait()


def wait_for(condition, what: str, workers: list[Worker], timeout: float = PHASE_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        dead = [w.name for w in workers if w.process.poll() is not None]
        if dead or time.monotonic() > deadline:
            tails = "\n".join(f"--- {w.name}\n{w.log()[-2000:]}" for w in workers)
            raise SystemExit(f"timed out waiting for {what} (dead workers: {dead or 'none'})\n{tails}")
        time.sleep(0.05)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    return {
        "count": len(values),
        "median": round(statistics.median(values), 3),
        "p90": round(percentile(values, 0.9), 3),
        "max": round(max(values), 3),
        "min": round(min(values), 3),
    }


def run(model: str, redis_url: str) -> dict:
    redis = redis_lib.Redis.from_url(redis_url)
    if redis.dbsize():
        raise SystemExit(f"{redis_url} holds keys: the benchmark needs an empty database (it empties it at the end)")
    point_app_at(redis_url)  # the baseline's tasks go through the workers' broker
    spec = DEMO_SPECS[model]
    workers: list[Worker] = []
    phases: dict[str, float] = {}
    with start_anvil(accounts=DEV_ACCOUNTS) as node, tempfile.TemporaryDirectory(prefix="deepshard-bench-") as tmp:
        workdir = Path(tmp)
        treasury = ChainClient(node.url, dev_signer(0), deployments_dir=workdir / "deployments")
        deploy_network(treasury, DeployParams(data_consensus=DEMO_DATA_PARAMS, training_rounds=DEMO_ROUND_PARAMS))
        stakers = {role: treasury.with_signer(dev_signer(i)) for i, role in enumerate(ROLES, start=1)}
        fund(treasury, stakers.values())
        salts = SaltStore(workdir / "votes")
        with open(os.devnull, "w") as quiet:
            stake_roles(treasury, stakers, quiet)
        trainer_clients, _ = enlist(treasury, stakers, salts)
        trainer_keys, evaluator_keys = ROUND_TRAINERS, ROUND_EVALUATORS  # the last trainer cheats

        keeper_rounds = TrainingRoundsClient(treasury)
        clock = BlockClock(treasury)
        clock.start()
        try:
            with worker_environment(workdir / "store"), open_store() as store:
                with open(os.devnull, "w") as quiet:
                    run_data_consensus(treasury, stakers, store, workdir, quiet)
                env = {
                    k: v
                    for k, v in os.environ.items()
                    if not k.startswith("DEEPSHARD_") or k == "DEEPSHARD_MODEL_CACHE"
                }
                env.update(
                    {
                        REDIS_URL_ENV: redis_url,
                        "PYTHONUNBUFFERED": "1",
                        "DEEPSHARD_DEPLOYMENTS_DIR": str(workdir / "deployments"),
                        "DEEPSHARD_STORE_DIR": str(workdir / "store"),
                        "DEEPSHARD_VOTES_DIR": str(workdir / "worker-votes"),
                        "DEEPSHARD_MAX_WAIT": "1",
                        "DEEPSHARD_TORCH_THREADS": "1",
                    }
                )

                def start(role: str, index: int, **extra_env: str) -> Worker:
                    key = dev_account(index).key.hex()
                    command = [sys.executable, "-m", "workers.cli", "worker", "--role", role, "--rpc", node.url]
                    return Worker(
                        f"{role}-{index}", command, {**env, "DEEPSHARD_PRIVATE_KEY": key, **extra_env}, workdir
                    )

                started = time.monotonic()
                workers += [start("trainer", i) for i in trainer_keys[:-1]]
                workers += [start("evaluator", i) for i in evaluator_keys]
                for worker in workers:
                    wait_for(
                        lambda worker=worker: " ready." in worker.log(),
                        f"{worker.name} to start",
                        workers,
                        READY_TIMEOUT,
                    )
                ready_block = int(treasury.w3.eth.block_number)
                workers.append(start("keeper", 0, DEEPSHARD_TRAINING_SPEC=spec.canonical_json().decode()))
                phases["workers ready"] = time.monotonic() - started
                t0 = time.monotonic()

                def mark(name: str) -> None:
                    phases[name] = time.monotonic() - t0
                    print(f"  [{phases[name]:6.1f} s] {name}", flush=True)

                wait_for(lambda: keeper_rounds.round_count() == 1, "the keeper to open a round", workers)
                mark("round opened")
                round_id = 1
                cheat = TrainingRoundsClient(trainer_clients[-1], salts)
                specs = SpecBook(None, [spec], use_env=False)
                poisoned = PoisonedJobs(store)
                if trainer_once(cheat, round_id, poisoned, specs, store).action != "committed":
                    raise SystemExit("the poisoned trainer could not commit")
                wait_for(
                    lambda: keeper_rounds.round(round_id).trainer_count == len(trainer_keys),
                    "the trainers to commit",
                    workers,
                )
                mark("trainers committed")
                mine_to(treasury, keeper_rounds.round(round_id).train_commit_deadline + 1)
                trainer_once(cheat, round_id, poisoned, specs, store)
                wait_for(
                    lambda: keeper_rounds.round(round_id).delta_count == len(trainer_keys),
                    "the trainers to reveal",
                    workers,
                )
                mark("trainers revealed")
                mine_to(treasury, keeper_rounds.round(round_id).panel_seed_block + 1)
                wait_for(lambda: keeper_rounds.round(round_id).status == "Evaluating", "the panel draw", workers)
                mark("panel drawn")
                state = keeper_rounds.round(round_id)
                wait_for(
                    lambda: len(keeper_rounds.evaluators_committed(state)) == state.panel_size,
                    "the evaluators to commit",
                    workers,
                )
                mark("evaluators committed")
                mine_to(treasury, state.eval_commit_deadline + 1)
                wait_for(lambda: keeper_rounds.round(round_id).status == "Finalized", "the round to finalize", workers)
                mark("finalized")

                def settled() -> bool:
                    current = keeper_rounds.round(round_id)
                    return (
                        current.paid_trainer_mask.bit_count() == len(trainer_keys) - 1
                        and current.eval_settled_mask == (1 << current.panel_size) - 1
                    )

                wait_for(settled, "every seat to be settled", workers)
                mark("settled")
                status = keeper_rounds.status(round_id)

                # Baseline: the broker's own delay, on the same keeper worker.
                sent: dict[str, float] = {}
                for i in range(BASELINE_SENDS):
                    task_id = f"bench:direct:{i}"
                    sent[task_id] = time.time()
                    send(keeper_step.name, args=(round_id,), queue="keeper", task_id=task_id)
                    time.sleep(0.5)
                keeper = workers[-1]
                wait_for(lambda: all(t in keeper.received() for t in sent), "the direct tasks", workers, 60)
        finally:
            clock.stopped.set()
            clock.join()
            for worker in workers:
                worker.stop()
            redis.flushdb()

        received: dict[str, float] = {}
        for worker in workers:
            received.update(worker.received())
        latencies, unseen = [], 0
        for task_id, at in received.items():
            match = WATCH_ID.match(task_id)
            if match and int(match[1]) > ready_block:
                if int(match[1]) in clock.first_seen:
                    latencies.append(at - clock.first_seen[int(match[1])])
                else:
                    unseen += 1
        direct = [received[t] - sent[t] for t in sent]
    outcome = {seat.trainer: (seat.accepted, seat.distance) for seat in status.trainers}
    watcher, broker = summary(latencies), summary(direct)
    broker_median = statistics.median(direct)
    return {
        "model": model,
        "spec": json.loads(spec.canonical_json()),
        "workers": {
            "keeper": 1,
            "trainer": len(trainer_keys) - 1,
            "evaluator": len(evaluator_keys),
            "poisoned trainer (in the benchmark)": 1,
        },
        "event_to_task_seconds": watcher,
        "direct_send_to_task_seconds": broker,
        "ratio_median_event_vs_direct": (
            round(statistics.median(latencies) / broker_median, 1) if broker_median > 0 else None
        ),
        "events_without_block_time": unseen,
        "block_clock_failed_polls": clock.failed_polls,
        "watcher_poll_interval_seconds": 2.0,
        "phase_seconds_cumulative": {name: round(seconds, 1) for name, seconds in phases.items()},
        "round": {
            "status": status.outcome.status if status.outcome else status.round.status,
            "accepted": sum(1 for accepted, _ in outcome.values() if accepted),
            "rejected_distance": max(d for _, d in outcome.values() if d is not None),
        },
        "method": "latency = worker's 'received' log time - the event's block first seen (10 ms polling); "
        "direct = received - send time of tasks queued by the benchmark on the same worker",
        "machine": machine_description(),
        "date": utc_now(),
    }


def _raise_on_sigterm(signum, frame):
    # Default SIGTERM handling skips `finally` blocks: the workers, anvil and the Redis keys would stay.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rounds.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODEL_NAMES, default="tiny")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/15",
        help="an empty Redis database for the broker (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    result = run(args.model, args.redis_url)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / ("rounds.json" if args.model == "tiny" else f"rounds-{args.model}.json")
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "event_to_task_seconds",
                    "direct_send_to_task_seconds",
                    "ratio_median_event_vs_direct",
                    "phase_seconds_cumulative",
                    "round",
                )
            },
            indent=2,
        )
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
