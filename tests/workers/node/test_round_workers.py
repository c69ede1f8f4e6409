"""End to end: a training round on a local anvil with real Redis (database 14), real `deepshard worker`
processes and the `tiny` model (the real `train_delta` and `fingerprint_deltas`).

A keeper worker (with the watcher in its process), three honest trainer workers and three evaluator workers
run on their own; the test only mines blocks when every worker has done its part of a phase, and plays the
poisoned trainer itself (the demo's: it trains on scrambled text with a trigger phrase, through the same step
code).
The keeper opens the round as soon as it sees accepted data, the trainers train, commit and reveal, the
keeper draws the panel, the evaluators fingerprint, commit and reveal, the keeper finalizes and settles, and
the trainers claim. The poisoned trainer is slashed, the honest ones are paid in proportion to their bonds (one
trainer worker bonds 1,500 DSH from $DEEPSHARD_TRAINER_BOND, the others all of their stake, the round's
minimum), and the new version's weights load and differ from the parent's.
"""

from __future__ import annotations

import json
import sys
import time

from netkit import DSH, deploy_net, wait_for

from benchmarks.rounds.run import RECEIVED, WATCH_ID
from workers import cli
from workers.chain import TrainingRoundsParams
from workers.demo.training import PoisonedJobs
from workers.ml.spec import TrainingSpec
from workers.protocol.rounds import trainer_reward
from workers.rounds.specs import SpecBook
from workers.rounds.steps import trainer_once
from workers.storage import open_store

SPEC = TrainingSpec(
    base_model="tiny", lora_rank=4, lora_alpha=8.0, learning_rate=3e-3, steps=10, batch_size=4, sequence_length=64
)
PARAMS = TrainingRoundsParams(
    train_commit_window=60,
    train_reveal_window=30,
    eval_commit_window=60,
    eval_reveal_window=30,
    seed_delay=2,
    min_batch=1,
    max_batch=4,
    min_accepted=2,
    tolerance=2_000,
    evaluator_tolerance=2_000,
    trainer_bond=1_000 * DSH,
    min_pool_bond=1_000 * DSH,
    round_reward=5_000 * DSH,
)
# A bound on a hang, not a speed target: a loaded 2-core machine trains a tiny delta in up to ~4 minutes.
PHASE_TIMEOUT = 600


def test_a_round_on_tiny_with_real_workers(net_anvil, tmp_path, spawn, redis_clean, capsys, monkeypatch, request):
    started = time.monotonic()
    phases: dict[str, float] = {}

    def mark(name: str) -> None:
        phases[name] = time.monotonic() - started

    net = deploy_net(net_anvil.url, tmp_path, PARAMS)
    net.accept_datasets(2)
    keeper_rounds = net.rounds()
    # The first worker bonds 1,500 DSH of its 2,000 (its setting); the others stake the minimum and, left to their
    # default, bond all of it.
    honest = [net.account(role="TRAINER", staked=2_000 if i == 0 else 1_000) for i in range(3)]
    evaluators = [net.evaluator() for _ in range(3)]
    poisoned = net.trainer()
    keeper = net.account(dsh=0)
    mark("setup")

    def env(client) -> dict[str, str]:
        return {
            "DEEPSHARD_PRIVATE_KEY": net.keys[client.address],
            "DEEPSHARD_DEPLOYMENTS_DIR": str(net.deployments),
            "DEEPSHARD_STORE_DIR": str(net.store_dir),
            "DEEPSHARD_VOTES_DIR": str(tmp_path / "worker-votes"),
            "DEEPSHARD_MAX_WAIT": "1",
            "DEEPSHARD_TORCH_THREADS": "1",
        }

    def worker(role: str, client, **extra):
        command = [sys.executable, "-m", "workers.cli", "worker", "--role", role, "--rpc", net.url]
        return spawn(command, {**env(client), **extra}, name=f"{role}-{client.address[:8]}")

    bonds = [1_500 * DSH, PARAMS.trainer_bond, PARAMS.trainer_bond]
    procs = [worker("trainer", honest[0], DEEPSHARD_TRAINER_BOND="1,500")]
    procs += [worker("trainer", c) for c in honest[1:]] + [worker("evaluator", e.chain) for e in evaluators]
    for proc in procs:
        wait_for(lambda proc=proc: " ready." in proc.log(), f"{proc.name} to start", timeout=90, logs=[proc])
    keeper_proc = worker("keeper", keeper, DEEPSHARD_TRAINING_SPEC=SPEC.canonical_json().decode())
    procs.append(keeper_proc)
    mark("workers ready")

    # The keeper sees the accepted datasets (the watcher replays from the deployment block) and opens a round.
    wait_for(lambda: keeper_rounds.round_count() == 1, "the keeper to open a round", PHASE_TIMEOUT, procs)
    round_id = 1
    mark("round opened")
    specs = SpecBook(redis_clean, use_env=False)
    poisoned_store = open_store(store_dir=net.store_dir)
    request.addfinalizer(poisoned_store.close)
    poisoned_jobs = PoisonedJobs(poisoned_store)
    assert specs.resolve(keeper_rounds.round(round_id).spec_hash) == SPEC  # published by the keeper
    assert trainer_once(poisoned, round_id, poisoned_jobs, specs, poisoned_store).action == "committed"
    wait_for(
        lambda: keeper_rounds.round(round_id).trainer_count == 4, "the honest trainers to commit", PHASE_TIMEOUT, procs
    )
    mark("trainers committed")

    net.mine_to(keeper_rounds.round(round_id).train_commit_deadline + 1)
    assert trainer_once(poisoned, round_id, poisoned_jobs, specs, poisoned_store).action == "revealed"
    wait_for(
        lambda: keeper_rounds.round(round_id).delta_count == 4, "the honest trainers to reveal", PHASE_TIMEOUT, procs
    )
    deltas = keeper_rounds.deltas(round_id)
    honest_cids = {d.cid for d in deltas if d.trainer != poisoned.chain.address}
    assert {d.trainer: d.bond for d in deltas} == {
        **{c.address: bond for c, bond in zip(honest, bonds, strict=True)},
        poisoned.chain.address: PARAMS.trainer_bond,
    }
    assert len(honest_cids) == 1  # deterministic training: three honest trainers, one adapter
    mark("trainers revealed")

    net.mine_to(keeper_rounds.round(round_id).panel_seed_block + 1)
    wait_for(
        lambda: keeper_rounds.round(round_id).status == "Evaluating",
        "the keeper to draw the panel",
        PHASE_TIMEOUT,
        procs,
    )
    state = keeper_rounds.round(round_id)
    wait_for(
        lambda: len(keeper_rounds.evaluators_committed(state)) == state.panel_size,
        "the evaluators to fingerprint and commit",
        PHASE_TIMEOUT,
        procs,
    )
    mark("evaluators committed")

    net.mine_to(state.eval_commit_deadline + 1)
    wait_for(
        lambda: keeper_rounds.round(round_id).status == "Finalized",
        "the evaluators to reveal and the keeper to finalize",
        PHASE_TIMEOUT,
        procs,
    )
    mark("finalized")

    def settled() -> bool:
        current = keeper_rounds.round(round_id)
        return current.paid_trainer_mask.bit_count() == 3 and current.eval_settled_mask == (1 << current.panel_size) - 1

    wait_for(settled, "the trainers to claim and the keeper to settle the panel", PHASE_TIMEOUT, procs)
    mark("settled")

    status = keeper_rounds.status(round_id)
    by_trainer = {seat.trainer: seat for seat in status.trainers}
    cheat = by_trainer[poisoned.chain.address]
    assert cheat.accepted is False and cheat.distance > PARAMS.tolerance and cheat.slashed == PARAMS.trainer_bond
    assert poisoned.registry.functions.stakeOf(poisoned.chain.address, 2).call() == 1_000 * DSH - PARAMS.trainer_bond
    evaluators_share = PARAMS.round_reward * PARAMS.evaluator_share_bps // 10_000
    pool = PARAMS.trainer_bond + PARAMS.round_reward - evaluators_share  # the poisoned bond, slashed whole
    token = keeper_rounds.chain.contract("DeepshardToken")
    for i, (client, bond) in enumerate(zip(honest, bonds, strict=True)):
        seat = by_trainer[client.address]
        assert seat.accepted and seat.distance == 0 and seat.settled and seat.bond == bond
        reward = trainer_reward(bond, pool, sum(bonds))
        assert seat.reward == reward
        staked = 2_000 * DSH if i == 0 else 1_000 * DSH
        assert token.functions.balanceOf(client.address).call() == 5_000 * DSH - staked + reward
    assert all(seat.coherent and seat.reward > 0 and seat.settled for seat in status.panel)
    assert status.outcome.new_version == 2 and status.new_version_cid in honest_cids
    assert trainer_once(poisoned, round_id, poisoned_jobs, specs, poisoned_store).action == "done"

    # The new version's weights load and differ from the parent's.
    from workers.ml.delta import load_delta
    from workers.ml.merge import merge_deltas
    from workers.ml.models import load_base_model, weights_hash

    parent = load_base_model("tiny")
    with open_store(store_dir=net.store_dir) as store:
        delta = load_delta(store.get(status.new_version_cid), SPEC, parent)
    child = merge_deltas(parent, [delta])
    assert weights_hash(child.model) != weights_hash(parent.model)
    assert keeper_rounds.base_delta_cids(2) == [status.new_version_cid]

    monkeypatch.setenv("DEEPSHARD_DEPLOYMENTS_DIR", str(net.deployments))
    capsys.readouterr()
    assert cli.main(["round", "status", str(round_id), "--json", "--rpc", net.url]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["outcome"]["new_version"] == 2
    for proc in procs:
        assert "Traceback" not in proc.log(), proc.log()[-3000:]
    # benchmarks/rounds times tasks from these log lines and the watcher's task ids.
    received = [task_id for _, _, task_id in RECEIVED.findall(keeper_proc.log())]
    assert any(WATCH_ID.match(task_id) for task_id in received), keeper_proc.log()[-3000:]
    mark("checked")
    with capsys.disabled():
        print(
            "\nround wall time by phase (s, cumulative): "
            + ", ".join(f"{name} {seconds:.1f}" for name, seconds in phases.items())
        )
