"""Data-consensus role tasks: the curator's and the keeper's steps, run from chain events by the watcher.

    curate(submission_id)               queue curator.<account>: score and commit, reveal, finalize, claim its seat
    keeper_step(submission_id)          queue keeper: draw the panel, finalize, settle the silent seats

Each task runs one step of `workers.data.steps` through the step runner (`workers.tasks.runner`: the worker's
key, one step per submission at a time, deduplicated wake-ups, retries with backoff), which queues it again for
when the next phase opens, until nothing is left. The curator reads datasets from the store of
`$DEEPSHARD_IPFS_API` / `$DEEPSHARD_STORE_DIR` and keeps its salts in `$DEEPSHARD_VOTES_DIR`.
"""

from __future__ import annotations

from ..data.chain import DataConsensusClient
from ..data.steps import curate_once
from ..data.steps import keeper_once as data_keeper_once
from ..storage import open_store
from .app import app
from .runner import STEP_RETRY, StepTask, run_step


@app.task(bind=True, base=StepTask, name="workers.tasks.consensus.curate", **STEP_RETRY)
def curate(self, submission_id: int) -> dict:
    """One step of this worker's curator on `submission_id`; queues the next one when it is due."""

    def step(chain, client):
        with open_store() as store:
            return curate_once(DataConsensusClient(chain), store, submission_id)

    return run_step(self, "curator", "submission", submission_id, step)


@app.task(bind=True, base=StepTask, name="workers.tasks.consensus.keeper_step", **STEP_RETRY)
def keeper_step(self, submission_id: int) -> dict:
    """One keeper step on `submission_id` (draw, finalize, settle silent seats); queues the next one when due."""
    return run_step(
        self,
        "keeper",
        "submission",
        submission_id,
        lambda chain, client: data_keeper_once(DataConsensusClient(chain), submission_id),
    )
