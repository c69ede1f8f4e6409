"""The step runner (`workers.tasks.runner`) under faults, on real Celery workers (the test app with stand-in ML
tasks), real Redis (database 14) and an anvil whose automine is switched off so that a transaction stays pending:

  * a worker's pool process SIGKILLed while its commit is pending: the task is delivered again, waits for
    the pending transaction (the account's pending nonce is ahead of its mined one) and sends nothing more;
  * the whole worker SIGKILLed while its reveal is pending and started again: Redis redelivers the
    unacknowledged task, which again sends nothing more;
  * a dead broker or a dead chain node: the step fails with one clear error and is retried with backoff;
  * ML jobs are sent once and looked up, wake-ups are deduplicated.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from netkit import celery_worker_command, wait_for

from workers.chain import NodeUnavailable
from workers.chain.localnode import free_port
from workers.ml.spec import TrainingSpec
from workers.rounds.specs import SpecBook
from workers.rounds.steps import JobFailed
from workers.tasks import runner
from workers.tasks.app import app
from workers.tasks.errors import QueueUnavailable, TaskInputError
from workers.tasks.rounds import FINGERPRINT_TASK, TRAIN_TASK, CeleryJobs, trainer_step
from workers.tasks.runner import account_queue, configure_worker, schedule, send

SPEC = TrainingSpec(base_model="tiny", steps=4)


def worker_env(net, trainer, **extra) -> dict[str, str]:
    return {
        "DEEPSHARD_PRIVATE_KEY": net.keys[trainer.chain.address],
        "DEEPSHARD_RPC_URL": net.url,
        "DEEPSHARD_DEPLOYMENTS_DIR": str(net.deployments),
        "DEEPSHARD_VOTES_DIR": str(net.votes_dir),
        "DEEPSHARD_STORE_DIR": str(net.store_dir),
        "DEEPSHARD_MAX_WAIT": "1",
        "DEEPSHARD_TEST_STANDIN_ML": "1",
        **extra,
    }


def automine(net, on: bool) -> None:
    net.admin.w3.provider.make_request("evm_setAutomine", [on])


def pending(trainer) -> int:
    return trainer.inflight()


def test_killed_worker_never_sends_a_transaction_twice(net, spawn, redis_clean):
    net.accept_datasets(1)
    keeper = net.rounds()
    SpecBook(redis_clean, use_env=False).publish(SPEC)
    round_id = keeper.open_round(SPEC.spec_hash()).round_id
    trainer = net.trainer()
    queues = f"trainer,{account_queue('trainer', trainer.chain.address)}"
    env = worker_env(net, trainer, DEEPSHARD_TEST_VISIBILITY_TIMEOUT="3")
    start_nonce = trainer.chain.w3.eth.get_transaction_count(trainer.chain.address)

    automine(net, False)
    try:
        worker = spawn(celery_worker_command(queues, pool="prefork"), env, ready=" ready.", name="trainer")
        send(trainer_step.name, args=(round_id,), queue=account_queue("trainer", trainer.chain.address))
        # Training (stand-in) then the commit: its transaction is sent and waits to be mined.
        wait_for(lambda: pending(trainer) == 1, "the commit to be sent", logs=[worker])
        (child,) = worker.children()
        os.kill(child, signal.SIGKILL)  # the pool process dies mid-task, before its receipt
        wait_for(
            lambda: "WorkerLostError" in worker.log() or "exited with 'signal 9" in worker.log(),
            "the worker to notice its lost process",
            logs=[worker],
        )
        time.sleep(1.5)  # the redelivered step is waiting on the pending commit now
        assert pending(trainer) == 1
        net.mine()
        wait_for(
            lambda: f"trainer step on round {round_id}: waiting (committed" in worker.log(),
            "the redelivered step to see the commit landed",
            logs=[worker],
        )
        assert trainer.chain.w3.eth.get_transaction_count(trainer.chain.address) == start_nonce + 1
        assert keeper.round(round_id).trainer_count == 1

        # Now the reveal: the whole worker is killed while it is pending, then started again.
        net.mine_to(keeper.round(round_id).train_commit_deadline + 1)
        send(trainer_step.name, args=(round_id,), queue=account_queue("trainer", trainer.chain.address))
        wait_for(lambda: pending(trainer) == 1, "the reveal to be sent", logs=[worker])
        worker.kill()
        again = spawn(celery_worker_command(queues, pool="prefork"), env, ready=" ready.", name="trainer-again")
        wait_for(
            lambda: "workers.tasks.rounds.trainer_step[" in again.log(),
            "the unacknowledged step to come back",
            timeout=30,
            logs=[again],
        )
        time.sleep(1.0)
        assert pending(trainer) == 1
        net.mine()
        wait_for(
            lambda: f"trainer step on round {round_id}: waiting (revealed" in again.log(),
            "the redelivered step to see the reveal landed",
            logs=[again],
        )
    finally:
        automine(net, True)
    assert trainer.chain.w3.eth.get_transaction_count(trainer.chain.address) == start_nonce + 2
    assert [d.trainer for d in keeper.deltas(round_id)] == [trainer.chain.address]
    assert "Traceback" not in again.log()


@pytest.fixture
def in_process_trainer(net, monkeypatch):
    """trainer_step run eagerly in this process, as a trainer of `net` (nothing is left behind)."""
    trainer = net.trainer()
    monkeypatch.setenv("DEEPSHARD_DEPLOYMENTS_DIR", str(net.deployments))
    monkeypatch.setenv("DEEPSHARD_RPC_URL", net.url)
    configure_worker(trainer.chain.signer)
    attempts = []
    real_client = runner.ChainClient

    def counting_client(*args, **kwargs):
        attempts.append(time.monotonic())
        return real_client(*args, **kwargs)

    monkeypatch.setattr(runner, "ChainClient", counting_client)
    yield trainer, attempts
    configure_worker(None)


def test_dead_broker_is_reported_and_retried(in_process_trainer, monkeypatch):
    trainer, attempts = in_process_trainer
    dead = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setattr(app.conf, "broker_url", dead)
    result = trainer_step.apply(args=(1,))
    assert result.state == "FAILURE" and isinstance(result.result, QueueUnavailable)
    assert str(result.result).startswith(f"Redis at {dead} does not answer (")
    assert len(attempts) == 1 + trainer_step.max_retries
    assert trainer_step.retry_backoff == 2 and trainer_step.retry_jitter and trainer_step.retry_backoff_max == 300


def test_dead_chain_node_is_reported_and_retried(in_process_trainer, monkeypatch, redis_clean):  # broker alive
    _, attempts = in_process_trainer
    monkeypatch.setenv("DEEPSHARD_RPC_URL", f"http://127.0.0.1:{free_port()}")
    result = trainer_step.apply(args=(1,))
    assert result.state == "FAILURE" and isinstance(result.result, NodeUnavailable)
    assert "no Ethereum node answers at http://127.0.0.1:" in str(result.result)
    assert len(attempts) == 1 + trainer_step.max_retries


@pytest.mark.filterwarnings("ignore:Call to deprecated setex")  # celery's Redis backend, not ours
def test_ml_jobs_are_sent_once_looked_up_and_their_failures_reported(redis_clean):
    account = "0x" + "Ab" * 20
    jobs = CeleryJobs(redis_clean, 31337, "0x" + "11" * 20, account)
    inputs = {
        "round_id": 7,
        "base_model": "tiny",
        "base_delta_cids": [],
        "dataset_manifest_cids": [],
        "spec_json": "{}",
        "round_seed": "0x" + "00" * 32,
    }
    queue = account_queue("trainer", account)
    job_id = jobs.job_id(TRAIN_TASK, 7)
    assert jobs.train(inputs) is None and jobs.train(inputs) is None  # sent once, then awaited
    assert [json.loads(raw)["headers"]["id"] for raw in redis_clean.lrange(queue, 0, -1)] == [job_id]
    app.backend.mark_as_done(job_id, {"delta_cid": "bafkdelta"})
    assert jobs.train(inputs) == {"delta_cid": "bafkdelta"}

    failed = jobs.job_id(FINGERPRINT_TASK, 7)
    app.backend.mark_as_failure(failed, TaskInputError("delta 3 rejected: not safetensors"))
    with pytest.raises(JobFailed, match="fingerprint_deltas .* failed: .*not safetensors"):
        jobs.fingerprint(inputs, ["bafkdelta"])
    assert redis_clean.llen(account_queue("evaluator", account)) == 0  # a failed job is reported, not resent


def test_wake_ups_are_deduplicated(redis_clean):
    key, queue = "deepshard:test:trainer:next", "trainer.0xTest"
    first = schedule(trainer_step, redis_clean, key, 5, 30.0, queue)
    assert schedule(trainer_step, redis_clean, key, 5, 40.0, queue) == first  # the earlier wake-up suffices
    earlier = schedule(trainer_step, redis_clean, key, 5, 5.0, queue)
    assert earlier != first and json.loads(redis_clean.get(key))["id"] == earlier
    assert redis_clean.llen(queue) == 2


def test_a_wake_up_that_finds_its_item_busy_queues_the_next_one(in_process_trainer, redis_clean):
    # The wake-up recorded for an item runs while another step holds the item's lock: it must queue a new
    # wake-up, not take its own (already consumed) record for one, or the item's chain of steps would stop.
    trainer, _ = in_process_trainer
    chain = trainer.chain
    lock_key, next_key = runner.step_keys(chain.chain_id, "trainer", chain.address, "round", 1)
    redis_clean.set(lock_key, "another-step", ex=60)
    redis_clean.set(next_key, json.dumps({"eta": time.time(), "id": "this-wake-up"}), ex=60)
    result = trainer_step.apply(args=(1,), task_id="this-wake-up")
    assert result.state == "SUCCESS" and result.result["action"] == "busy"
    following = json.loads(redis_clean.get(next_key))["id"]
    queue = account_queue("trainer", chain.address)
    assert following != "this-wake-up"
    assert [json.loads(raw)["headers"]["id"] for raw in redis_clean.lrange(queue, 0, -1)] == [following]
