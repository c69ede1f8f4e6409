"""Training-round role tasks: trainer, evaluator and keeper steps, run from chain events by the watcher.

    trainer_step(round_id)     queue trainer.<account>: train (train_delta), commit, reveal, claim
    evaluator_step(round_id)   queue evaluator.<account>: fingerprint (fingerprint_deltas), commit, reveal, settle
    keeper_step(round_id=None) queue keeper: draw the panel, finalize, settle seats, open the next round

Each task runs one step of `workers.rounds.steps` through the step runner (`workers.tasks.runner`: the worker's
key, one step per round at a time, deduplicated wake-ups, retries with backoff), which queues it again for when
the next phase opens (or, while an ML job runs, a few seconds later), until nothing is left.

ML jobs are called by name, never imported: `workers.tasks.training.train_delta` on the trainer's own queue and
`workers.tasks.evaluation.fingerprint_deltas` on the evaluator's. A job has a deterministic task id (job name,
chain, contract, round, account): a step looks its result up and sends it only when the result backend has
never heard of it (or, after `JOB_RESEND_AFTER` seconds without news, once more: the message was lost). So a
step killed and redelivered finds the job it started instead of training twice.
"""

from __future__ import annotations

import os
import time

import redis as redis_lib
from celery.utils.log import get_task_logger

from ..rounds.chain import TrainingRoundsClient
from ..rounds.specs import SpecBook
from ..rounds.steps import JobFailed, evaluator_once, keeper_once, trainer_once
from .app import app
from .runner import STEP_RETRY, StepTask, account_queue, run_step, send

logger = get_task_logger(__name__)

TRAIN_TASK = "workers.tasks.training.train_delta"
FINGERPRINT_TASK = "workers.tasks.evaluation.fingerprint_deltas"
#: Seconds without news of a sent ML job before it is sent again.
JOB_RESEND_AFTER = float(os.environ.get("DEEPSHARD_JOB_RESEND_AFTER", 3600))
JOB_MARKER_TTL = 7 * 24 * 3600


class CeleryJobs:
    """`Jobs` for the steps: the ML tasks by name, on this account's own queue, with deterministic ids."""

    def __init__(self, redis_client: redis_lib.Redis, chain_id: int, contract: str, account: str):
        self.redis = redis_client
        self.chain_id, self.contract, self.account = chain_id, contract, account

    def job_id(self, name: str, round_id: int) -> str:
        return f"{name.rsplit('.', 1)[-1]}:{self.chain_id}:{self.contract}:{round_id}:{self.account}"

    def train(self, inputs: dict) -> dict | None:
        return self._job(TRAIN_TASK, inputs, account_queue("trainer", self.account), inputs["round_id"])

    def fingerprint(self, inputs: dict, delta_cids: list[str]) -> dict | None:
        return self._job(
            FINGERPRINT_TASK,
            {**inputs, "delta_cids": list(delta_cids)},
            account_queue("evaluator", self.account),
            inputs["round_id"],
        )

    def _job(self, name: str, kwargs: dict, queue: str, round_id: int) -> dict | None:
        job_id = self.job_id(name, round_id)
        result = app.AsyncResult(job_id)
        state = result.state
        if state == "SUCCESS":
            return result.result
        if state in ("FAILURE", "REVOKED"):
            raise JobFailed(f"{name} (task {job_id}) failed: {result.result!r}")
        marker = f"deepshard:job:{job_id}"
        sent_at = self.redis.get(marker)
        if state == "PENDING" and (sent_at is None or time.time() - float(sent_at) > JOB_RESEND_AFTER):
            # Sent first, recorded after: a crash in between sends it twice (same id, same result), never not at all.
            send(name, kwargs=kwargs, queue=queue, task_id=job_id)
            self.redis.set(marker, str(time.time()), ex=JOB_MARKER_TTL)
            logger.info("sent %s for round %s as task %s on queue %s", name, round_id, job_id, queue)
        return None


def _round_step(task, role: str, round_id: int | None, once) -> dict:
    """`run_step` of a round role: `once(rounds, specs, jobs)` with this worker's round client, the specs
    published in Redis (or configured) and its ML jobs."""

    def step(chain, client):
        rounds = TrainingRoundsClient(chain)
        jobs = CeleryJobs(client, chain.chain_id, rounds.contract.address, chain.address)
        return once(rounds, SpecBook(client), jobs)

    return run_step(task, role, "round", round_id, step)


@app.task(bind=True, base=StepTask, name="workers.tasks.rounds.trainer_step", throws=(JobFailed,), **STEP_RETRY)
def trainer_step(self, round_id: int) -> dict:
    """One step of this worker's trainer in `round_id`; queues the next one when it is due."""
    return _round_step(
        self, "trainer", round_id, lambda rounds, specs, jobs: trainer_once(rounds, round_id, jobs, specs)
    )


@app.task(bind=True, base=StepTask, name="workers.tasks.rounds.evaluator_step", throws=(JobFailed,), **STEP_RETRY)
def evaluator_step(self, round_id: int) -> dict:
    """One step of this worker's evaluator in `round_id`; queues the next one when it is due."""
    return _round_step(
        self, "evaluator", round_id, lambda rounds, specs, jobs: evaluator_once(rounds, round_id, jobs, specs)
    )


@app.task(bind=True, base=StepTask, name="workers.tasks.rounds.keeper_step", **STEP_RETRY)
def keeper_step(self, round_id: int | None = None) -> dict:
    """Advances `round_id` (default: the current round) when due, settles it, opens the next round."""
    return _round_step(self, "keeper", round_id, lambda rounds, specs, jobs: keeper_once(rounds, round_id, specs))
