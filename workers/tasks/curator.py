"""The curator worker (queue `curator`): votes on a submission automatically, from the quality signals.

    curate.delay(submission_id)     # on a worker whose environment holds the curator's key

`curate_once` does whatever the submission's phase calls for, after reading the chain: score the
dataset with `CuratorPolicy` and commit (salt on disk first), reveal, finalize and claim the seat. Each
step is checked on-chain before anything is sent, so running it twice, or on two workers, sends
nothing twice. The `curate` task runs one step and queues itself again for when the next phase opens,
until the seat is settled. Content the informant failed to provide or that lies about itself scores
zero: abstaining would cost the curator its no-reveal penalty and spare the informant.

The signer comes from the worker's environment ($DEEPSHARD_PRIVATE_KEY or $DEEPSHARD_KEYSTORE with
$DEEPSHARD_KEYSTORE_PASSWORD), never from the task's arguments; the chain from $DEEPSHARD_RPC_URL, the
store from $DEEPSHARD_IPFS_API / $DEEPSHARD_STORE_DIR, the salts' folder from $DEEPSHARD_VOTES_DIR.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable

from ..chain import ChainClient, ReceiptTimeout, load_signer
from ..data.chain import DataConsensusClient, DatasetUnusable, corpus_index_of, fetch_dataset, score_fetched
from ..data.quality import CRITERIA, CuratorPolicy
from ..storage import ContentStore, InvalidCid, NotFound, UnsupportedContent, open_store
from .app import app
from .base import RETRY_POLICY, TRANSIENT_ERRORS
from .waiting import BlockWait

#: Waits between a curator's steps: 2 s to $DEEPSHARD_CURATOR_MAX_WAIT (else 300 s).
WAIT = BlockWait("DEEPSHARD_CURATOR_MAX_WAIT", min_wait=2.0)
#: Content problems that are the informant's fault: the dataset scores zero on every criterion.
UNUSABLE_CONTENT = (DatasetUnusable, NotFound, InvalidCid, UnsupportedContent)


@dataclass(frozen=True)
class CurationStep:
    """What one `curate_once` did: `action` is committed, revealed, claimed, waiting or done."""

    submission_id: int
    action: str
    detail: str
    scores: list[int] | None = None
    #: the block from which there is something to do again; None when the seat needs nothing more
    wake_at_block: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def policy_scores(store: ContentStore, manifest_cid: str, corpus_cids: Iterable[str] = (),
                  policy: CuratorPolicy = CuratorPolicy()) -> tuple[list[int], str]:
    """The five scores `policy` gives the dataset, and why; zeros if its content is missing or lies.

    Only the submission's own content can score zero: a corpus dataset that cannot be fetched is this
    worker's problem, and raises.
    """
    try:
        dataset = fetch_dataset(store, manifest_cid)
    except UNUSABLE_CONTENT as exc:
        return [0] * len(CRITERIA), f"unusable content: {exc}"
    report = score_fetched(dataset, corpus_index_of(store, corpus_cids), policy=policy)
    signals = report["signals"]
    return report["vote"], (f"{signals['records']} records, gibberish {signals['gibberish_rate']:.0%}, "
                            f"near-duplicates {signals['near_duplicate_rate_internal']:.0%}")


def curate_once(consensus: DataConsensusClient, store: ContentStore, submission_id: int,
                corpus_cids: Iterable[str] = (), policy: CuratorPolicy = CuratorPolicy()) -> CurationStep:
    """Does the next step of this account's seat on `submission_id`, if any is due."""
    account = consensus.chain.address
    submission = consensus.submission(submission_id)
    latest = consensus.latest_block()
    phase = submission.phase(latest)

    def step(action: str, detail: str, wake: int | None = None, scores: list[int] | None = None) -> CurationStep:
        return CurationStep(submission.id, action, detail, scores, wake)

    if submission.status == "AwaitingPanel":
        return step("waiting", "the panel is not drawn yet", max(submission.seed_block + 1, latest + 1))
    seat = consensus.seat_of(submission.id, account)
    if seat is None:
        return step("done", f"{account} is not on the panel")

    if phase in ("commit", "reveal opens next block"):
        if phase != "commit" or consensus.committed(submission, account):
            return step("waiting", "the reveal window is not open yet", submission.commit_deadline + 1)
        stored = consensus.stored_vote(submission.id)
        if stored is not None:
            # An interrupted earlier vote: finish it with its salt and scores (its commit may still land).
            scores, why = list(stored.scores), "resumed the stored vote"
        else:
            scores, why = policy_scores(store, consensus.manifest_cid(submission.id), corpus_cids, policy)
        consensus.vote(submission.id, scores)
        return step("committed", why, submission.commit_deadline + 1, scores)

    if phase in ("reveal", "finalize opens next block"):
        if phase == "reveal" and not submission.revealed(seat) and consensus.committed(submission, account):
            revealed = consensus.reveal(submission.id)
            return step("revealed", "revealed the committed scores", submission.reveal_deadline + 1, revealed.scores)
        # Revealed already, or missed the commit: the seat is settled (penalty or not) once finalized.
        return step("waiting", "the vote is not closed yet", submission.reveal_deadline + 1)

    if phase == "ready to finalize":
        # Anyone may finalize; doing it here frees this curator's pool bond without waiting for a keeper.
        consensus.finalize(submission.id)
        submission = consensus.submission(submission.id)
        phase = submission.phase(consensus.latest_block())

    if submission.settled(seat):
        return step("done", f"{phase}; seat {seat} is settled")
    claimed = consensus.claim(submission.id)
    return step("claimed", f"{phase}; seat {seat} settled: reward {claimed.seat_reward} wei, "
                           f"penalty {claimed.seat_penalty} wei")


# A receipt timeout is transient too: the next run sees whether the transaction landed before resending.
@app.task(bind=True, name="workers.tasks.curator.curate",
          **{**RETRY_POLICY, "autoretry_for": (*TRANSIENT_ERRORS, ReceiptTimeout)})
def curate(self, submission_id: int, corpus_cids: list[str] | None = None) -> dict:
    """One step of this worker's curator on `submission_id`; queues the next one when it is due."""
    chain = ChainClient(signer=load_signer())  # $DEEPSHARD_RPC_URL, else the local node
    with open_store() as store:
        step = curate_once(DataConsensusClient(chain), store, submission_id, corpus_cids or [])
    if step.wake_at_block is not None:
        # A new message, not a retry: waiting for a phase must not use up the retries kept for errors.
        self.apply_async((submission_id, corpus_cids), countdown=WAIT.seconds_until(chain, step.wake_at_block))
    return step.to_dict()
