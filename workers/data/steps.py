"""One step of a role in the data consensus, decided from the chain's state: what the Celery tasks run.

    curate_once(consensus, store, submission_id)   curator: score and commit, reveal, finalize, claim its seat
    keeper_once(consensus, submission_id)          keeper: draw the panel, finalize, settle the silent seats

Each reads the chain and does at most the one action the phase calls for (every write checks again, see
`workers.data.chain`), so running a step twice, or on two workers at once, sends nothing twice. A step returns
what it did (`workers.chain.module.Step`) and the block from which there is something to do again
(`wake_at_block`), or None when nothing is left.

The curator scores the dataset with `CuratorPolicy`; content the informant failed to provide or that lies about
itself scores zero: abstaining would cost the curator its no-reveal penalty and spare the informant. The keeper
needs no stake (only ETH for gas): it takes the actions anyone may take, and tolerates losing the race for
them to someone else (`raced`).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..chain.module import Step, raced
from ..protocol.constants import CRITERIA
from ..storage import ContentStore, InvalidCid, NotFound, UnsupportedContent
from .chain import (
    DEFAULT_POLICY,
    DataConsensusClient,
    DatasetUnusable,
    SettleResult,
    corpus_index_of,
    fetch_dataset,
    score_fetched,
)
from .quality import CuratorPolicy

#: Content problems that are the informant's fault: the dataset scores zero on every criterion.
UNUSABLE_CONTENT = (DatasetUnusable, NotFound, InvalidCid, UnsupportedContent)


def policy_scores(
    store: ContentStore, manifest_cid: str, corpus_cids: Iterable[str] = (), policy: CuratorPolicy = DEFAULT_POLICY
) -> tuple[list[int], str]:
    """The five scores `policy` gives the dataset, and why; zeros if its content is missing or lies.

    Only the submission's own content can score zero: a corpus dataset that cannot be fetched is this
    worker's problem, and raises.
    """
    try:
        dataset = fetch_dataset(store, manifest_cid)
    except UNUSABLE_CONTENT as exc:
        return [0] * CRITERIA, f"unusable content: {exc}"
    report = score_fetched(dataset, corpus_index_of(store, corpus_cids), policy=policy)
    signals = report["signals"]
    return report["vote"], (
        f"{signals['records']} records, gibberish {signals['gibberish_rate']:.0%}, "
        f"near-duplicates {signals['near_duplicate_rate_internal']:.0%}"
    )


# ---------------------------------------------------------------- curator


def curate_once(
    consensus: DataConsensusClient,
    store: ContentStore,
    submission_id: int,
    corpus_cids: Iterable[str] = (),
    policy: CuratorPolicy = DEFAULT_POLICY,
) -> Step:
    """The next step of this account's seat on `submission_id`: score and commit, reveal, finalize (anyone may;
    it frees the pool bond sooner) and claim. `data["scores"]` holds the scores committed or revealed."""
    account = consensus.chain.address
    consensus.settle_inflight()  # a transaction sent by an interrupted earlier step lands before anything is read
    submission = consensus.submission(submission_id)
    latest = consensus.latest_block()
    phase = submission.phase(latest)

    def step(action: str, detail: str, wake: int | None = None, **data) -> Step:
        return Step("curator", submission.id, action, detail, wake, None, data)

    if submission.status == "AwaitingPanel":
        return step("waiting", "the panel is not drawn yet", submission.draw_block(latest))
    seat = consensus.seat_of(submission.id, account)
    if seat is None:
        return step("done", f"{account} is not on the panel")

    if phase in ("commit", "reveal opens next block"):
        if phase != "commit" or consensus.committed(submission, account):
            return step("waiting", "the reveal window is not open yet", submission.commit_deadline + 1)
        stored = consensus.stored_vote(submission.id)
        if stored is not None:
            # An interrupted earlier vote: finish it with its salt and scores (its commit may still land).
            scores, why = list(stored.value), "resumed the stored vote"
        else:
            scores, why = policy_scores(store, consensus.manifest_cid(submission.id), corpus_cids, policy)
        consensus.vote(submission.id, scores)
        return step("committed", why, submission.commit_deadline + 1, scores=scores)

    if phase in ("reveal", "finalize opens next block"):
        if phase == "reveal" and not submission.revealed(seat) and consensus.committed(submission, account):
            revealed = consensus.reveal(submission.id)
            return step(
                "revealed", "revealed the committed scores", submission.reveal_deadline + 1, scores=revealed.scores
            )
        # Revealed already, or missed the commit: the seat is settled (penalty or not) once finalized.
        return step("waiting", "the vote is not closed yet", submission.reveal_deadline + 1)

    if phase == "ready to finalize":
        raced(lambda: consensus.finalize(submission.id), lambda: consensus.submission(submission.id).finalized)
        submission = consensus.submission(submission.id)
        phase = submission.phase(consensus.latest_block())

    if submission.settled(seat):
        return step("done", f"{phase}; seat {seat} is settled")
    claimed = _settle_seat(consensus, submission.id, seat)  # anyone may: whoever lands first settles it
    if claimed is None:
        return step("done", f"{phase}; seat {seat} was settled by someone else")
    return step(
        "claimed",
        f"{phase}; seat {seat} settled: reward {claimed.reward} wei, penalty {claimed.penalty} wei",
        reward=claimed.reward,
        penalty=claimed.penalty,
    )


# ---------------------------------------------------------------- keeper


def keeper_once(consensus: DataConsensusClient, submission_id: int) -> Step:
    """The next permissionless action on `submission_id` when it is due: draw its panel at the first block after
    its seed block (the watcher queues this step on `Submitted`, and it wakes at that block), finalize after the
    reveal window or once every seat revealed, then settle the seats that never revealed. Drawing at once is what
    keeps the informant from choosing its panel: a panel not drawn within 256 blocks of its seed block expires
    the submission, and costs the informant its expiry slash (`DataConsensus.drawPanel`)."""
    consensus.settle_inflight()
    submission = consensus.submission(submission_id)
    latest = consensus.latest_block()
    phase = submission.phase(latest)

    def step(action: str, detail: str, wake: int | None = None, **data) -> Step:
        return Step("keeper", submission.id, action, detail, wake, None, data)

    # While the vote runs, the keeper's next action is finalize after the reveal window: the watcher brings its
    # step earlier when a seat reveals, since every seat revealed allows it at once.
    if submission.status == "AwaitingPanel":
        if phase != "panel ready to draw":
            return step("waiting", phase, submission.draw_block(latest))
        drawn = raced(
            lambda: consensus.draw(submission.id), lambda: consensus.submission(submission.id).status != "AwaitingPanel"
        )
        if drawn is None:
            after = consensus.submission(submission.id)
            return step("waiting", "the panel was drawn by someone else", after.reveal_deadline + 1)
        if drawn.expired_slash is not None:
            return step(
                "done",
                f"seed block too old: #{submission.id} expired undrawn, {drawn.expired_slash} wei of the bond slashed",
                None,
                expired_slash=drawn.expired_slash,
            )
        return step(
            "drawn",
            f"{len(drawn.panel)} curators drawn; commit until block {drawn.commit_deadline}",
            drawn.reveal_deadline + 1,
            panel=drawn.panel,
        )

    if submission.status == "Voting":
        if phase != "ready to finalize":
            return step("waiting", phase, submission.reveal_deadline + 1)
        outcome = raced(
            lambda: consensus.finalize(submission.id), lambda: consensus.submission(submission.id).finalized
        )
        if outcome is None:
            return step("waiting", "finalized by someone else", consensus.latest_block())
        return step(
            "finalized",
            f"#{submission.id} {outcome.status}: value {outcome.value:,}, threshold {outcome.threshold_before:,}",
            consensus.latest_block(),
            status=outcome.status,
        )

    settled = []
    for seat in submission.silent_seats:
        result = _settle_seat(consensus, submission.id, seat)
        if result is not None:
            settled.append({"seat": seat, "curator": result.curator, "penalty": result.penalty})
    if settled:
        return step(
            "settled",
            f"settled {len(settled)} silent seats of #{submission.id}",
            consensus.latest_block(),
            seats=settled,
        )
    return step("done", f"{phase}; no silent seat is left to settle")


def _settle_seat(consensus: DataConsensusClient, submission_id: int, seat: int) -> SettleResult | None:
    """Settles a seat, unless someone else settles it first (then None)."""
    return raced(
        lambda: consensus.settle_seat(submission_id, seat), lambda: consensus.submission(submission_id).settled(seat)
    )
