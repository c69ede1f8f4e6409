"""The informant data consensus from the workers' side: pin and fetch datasets, and drive `DataConsensus`.

    pinned = pin_dataset("data.jsonl", store)            # validate, normalise, pin file + manifest
    report = score_dataset(store, pinned.manifest_cid)   # fetch (verified), signals, CuratorPolicy scores
    consensus = DataConsensusClient(chain)               # one account on one deployment
    sid = consensus.submit("data.jsonl", bond, store).submission_id
    consensus.draw(sid); consensus.vote(sid, [80, 75, 70, 85, 70]); consensus.reveal(sid)
    consensus.finalize(sid); consensus.claim(sid); consensus.settle_seat(sid, seat); consensus.status(sid)

`DataConsensusClient` is a `workers.chain.module.ModuleClient`: every write first waits until this account
has no pending transaction, then reads the chain and raises `InvalidRequest` (a `ChainError`, one sentence)
when the action cannot succeed now: wrong phase, already done, not on the panel, stake too small. Nothing
is sent then, and `ChainClient.transact` estimates gas before sending as a second guard. Phases are judged
conservatively from the latest block: between two windows that leaves one block in which neither action is
offered ("reveal opens next block").

Votes: the salt of a commitment is the only way to reveal it, so it is written to disk before the commit is
sent (`workers.chain.salts`, kind "vote": one file per submission and curator, never overwritten, mode 0600,
under `$DEEPSHARD_VOTES_DIR`). A vote interrupted between the file and the transaction is resumed with the
same salt and scores, so the commitment is the same and at most one can land.

The contract stores the manifest CID in binary form; people and stores use the base32 string
(`workers.chain.module.cid_to_chain` / `cid_from_chain`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from ..chain import InvalidRequest
from ..chain.module import (
    CommitResult,
    Log,
    ModuleClient,
    ModuleEvent,
    PanelVote,
    cid_from_chain,
    cid_to_chain,
    full_mask,
    struct_of,
    tx_hash,
    window_phase,
)
from ..chain.units import format_dsh
from ..protocol.constants import CRITERIA, CRITERIA_NAMES, DATA_FINAL_STATUSES, DATA_STATUSES, MAX_SCORE
from ..storage import ContentStore
from ..storage.cids import parse_cid
from .dataset import DataError, InvalidDataset, normalise_file, validate
from .manifest import DatasetManifest, ManifestError
from .quality import CuratorPolicy, MinHashIndex, compute_signals, read_texts
from .records import DEFAULT_LIMITS, Limits, Source

#: The salt store's kind of a curator's commitment.
VOTE = "vote"
#: The baseline curator policy, the default of every scoring function.
DEFAULT_POLICY = CuratorPolicy()


# ---------------------------------------------------------------- pinning and fetching


def describe_invalid(exc: InvalidDataset, listed: int = 3) -> str:
    """One line: 'invalid dataset (2 problems): line 3: not valid JSON (column 9); line 5: ...'."""
    count = exc.report.problem_count
    problems = "; ".join(str(problem) for problem in exc.report.problems[:listed])
    more = "; ..." if count > listed else ""
    return f"invalid dataset ({count} problem{'s' if count != 1 else ''}): {problems}{more}"


class DatasetUnusable(DataError):
    """Content fetched by CID is not a dataset its manifest describes (wrong hash, size, form or records)."""


@dataclass(frozen=True)
class PinnedDataset:
    """A dataset in the store: its manifest (naming the normalised file's CID) and the manifest's CID."""

    manifest: DatasetManifest
    manifest_cid: str

    def to_dict(self) -> dict:
        return {"manifest_cid": self.manifest_cid, "manifest": self.manifest.to_dict()}


@dataclass(frozen=True)
class FetchedDataset:
    manifest_cid: str
    manifest: DatasetManifest
    data: bytes


def pin_dataset(source: Source, store: ContentStore, limits: Limits = DEFAULT_LIMITS) -> PinnedDataset:
    """Validates and normalises `source` (a path or bytes), pins the normalised file, then its manifest.

    Raises `InvalidDataset` before anything is pinned. Idempotent: the same data gives the same bytes,
    hence the same CIDs, and pinning what is already pinned changes nothing.
    """
    with tempfile.TemporaryDirectory(prefix="deepshard-pin-") as workdir:
        normalised = Path(workdir) / "dataset.jsonl"
        manifest = normalise_file(source, normalised, limits)
        manifest = manifest.with_cid(store.add_file(normalised))
    return PinnedDataset(manifest, store.add_bytes(manifest.canonical_json()))


def fetch_dataset(store: ContentStore, manifest_cid: str, limits: Limits = DEFAULT_LIMITS) -> FetchedDataset:
    """The manifest and the dataset it names, both verified against their CIDs, and the dataset checked
    against the manifest: valid, normalised, and the same records, tokens, size and sha256.

    `DatasetUnusable` when the content is not what it claims (the informant's fault: score it as junk);
    `StorageError` when the store cannot produce it.
    """
    raw = store.get(manifest_cid)
    try:
        manifest = DatasetManifest.from_json(raw)
    except ManifestError as exc:
        raise DatasetUnusable(f"{manifest_cid} is not a dataset manifest: {exc}") from None
    if manifest.cid is None:
        raise DatasetUnusable(f"manifest {manifest_cid} names no dataset CID")
    if manifest.size_bytes > limits.max_file_bytes:
        raise DatasetUnusable(
            f"manifest {manifest_cid} claims {manifest.size_bytes:,} bytes, over the "
            f"{limits.max_file_bytes:,}-byte limit"
        )
    data = store.get(manifest.cid)
    report = validate(data, limits)
    if not report.ok or report.manifest is None:
        raise DatasetUnusable(f"dataset {manifest.cid} is not valid: {report.summary()}")
    # Equal manifests and an equal sha256 of the raw bytes mean the bytes are already normalised.
    described = report.manifest.with_cid(manifest.cid)
    if described != manifest or hashlib.sha256(data).hexdigest() != manifest.sha256 or len(data) != manifest.size_bytes:
        raise DatasetUnusable(
            f"dataset {manifest.cid} does not match manifest {manifest_cid} "
            "(not normalised, or other records, size or hash than claimed)"
        )
    return FetchedDataset(str(parse_cid(manifest_cid)), manifest, data)


def corpus_index_of(
    store: ContentStore, corpus_cids: Iterable[str], limits: Limits = DEFAULT_LIMITS
) -> MinHashIndex | None:
    """A MinHash index over the records of already-accepted datasets (manifest CIDs); None without any."""
    texts: list[str] = []
    labels: list[str] = []
    for cid in corpus_cids:
        records, _ = read_texts(fetch_dataset(store, cid, limits).data, limits)
        texts += [record.text for record in records]
        labels += [f"{cid}:{record.line}" for record in records]
    return MinHashIndex.from_texts(texts, labels=labels) if labels else None


def score_fetched(
    dataset: FetchedDataset,
    corpus: MinHashIndex | None = None,
    *,
    policy: CuratorPolicy = DEFAULT_POLICY,
    limits: Limits = DEFAULT_LIMITS,
) -> dict:
    """Quality signals and `policy` scores of a fetched dataset, as plain JSON; `vote` is the scores in the
    order `DataConsensus` takes them."""
    signals = compute_signals(dataset.data, corpus=corpus, limits=limits)
    scores = policy.score(signals)
    return {
        "manifest_cid": dataset.manifest_cid,
        "manifest": dataset.manifest.to_dict(),
        "signals": signals.to_dict(),
        "scores": dataclasses.asdict(scores),
        "vote": scores.as_list(),
    }


def score_dataset(
    store: ContentStore,
    manifest_cid: str,
    corpus_cids: Iterable[str] = (),
    *,
    policy: CuratorPolicy = DEFAULT_POLICY,
    limits: Limits = DEFAULT_LIMITS,
) -> dict:
    """`score_fetched` of a pinned dataset, with `corpus_cids` (manifest CIDs of already-accepted datasets)
    as the corpus whose near-copies lower the novelty."""
    corpus_cids = list(corpus_cids)
    report = score_fetched(
        fetch_dataset(store, manifest_cid, limits),
        corpus_index_of(store, corpus_cids, limits),
        policy=policy,
        limits=limits,
    )
    return {**report, "corpus_cids": corpus_cids}


# ---------------------------------------------------------------- on-chain state


@dataclass(frozen=True)
class Submission:
    """`DataConsensus.getSubmission(id)`, with the status by name."""

    id: int
    informant: str
    bond: int
    seed_block: int
    commit_deadline: int
    reveal_deadline: int
    revealed_mask: int
    settled_mask: int
    panel_size: int
    status: str
    informant_reward: int
    panel_weight: int
    revealed_weight: int
    value: int
    consumed: bool
    coherent_weight: int
    curator_payout: int

    @property
    def finalized(self) -> bool:
        return self.status in DATA_FINAL_STATUSES

    @property
    def all_revealed(self) -> bool:
        return self.panel_size > 0 and self.revealed_mask == full_mask(self.panel_size)

    @property
    def silent_seats(self) -> list[int]:
        """Seats that did not reveal and are not settled yet: after finalize, the keeper settles them."""
        return [seat for seat in range(self.panel_size) if not self.revealed(seat) and not self.settled(seat)]

    def revealed(self, seat: int) -> bool:
        return bool(self.revealed_mask >> seat & 1)

    def settled(self, seat: int) -> bool:
        return bool(self.settled_mask >> seat & 1)

    def phase(self, latest: int) -> str:
        """What a transaction sent when `latest` is the newest block can do (`window_phase`): draw, commit,
        reveal, finalize, wait a block, or nothing more (the outcome)."""
        if self.status == "AwaitingPanel":
            return "awaiting seed block" if latest <= self.seed_block else "panel ready to draw"
        if self.status == "Voting":
            return window_phase(latest, self.commit_deadline, self.reveal_deadline, self.all_revealed)
        return {
            "Accepted": "accepted",
            "Rejected": "rejected",
            "NoQuorum": "no quorum",
            "Expired": "expired undrawn",
        }.get(self.status, "unknown")

    def draw_block(self, latest: int) -> int:
        """The first block, seen from `latest`, at which a panel awaiting its draw can be drawn."""
        return max(self.seed_block + 1, latest + 1)


@dataclass(frozen=True)
class Seat:
    seat: int
    curator: str
    weight: int
    committed: bool
    revealed: bool
    settled: bool


@dataclass(frozen=True)
class Outcome:
    """The `Finalized` event of a submission."""

    status: str
    consensus: list[int]
    value: int
    threshold_before: int
    threshold_after: int
    tx_hash: str | None = None


@dataclass(frozen=True)
class SubmissionStatus:
    submission: Submission
    manifest_cid: str
    phase: str
    block: int
    panel: list[Seat]
    threshold: int
    outcome: Outcome | None


@dataclass(frozen=True)
class SubmitResult:
    submission_id: int
    pinned: PinnedDataset
    bond: int
    seed_block: int
    tx_hash: str


@dataclass(frozen=True)
class DrawResult:
    panel: list[str]
    commit_deadline: int
    reveal_deadline: int
    #: set when the seed block had fallen out of the 256-block window: the submission expired undrawn and this
    #: much of the informant's bond (wei) was slashed
    expired_slash: int | None
    tx_hash: str


@dataclass(frozen=True)
class RevealResult:
    scores: list[int]
    tx_hash: str


@dataclass(frozen=True)
class SettleResult:
    """One seat settled by `claim(id, seat)`: its curator, what it was paid or lost (wei)."""

    seat: int
    curator: str
    reward: int
    penalty: int
    tx_hash: str


@dataclass(frozen=True)
class ClaimResult:
    seat_reward: int = 0
    seat_penalty: int = 0
    informant_reward: int = 0
    tx_hashes: tuple[str, ...] = ()


def parse_scores(text: str | Sequence[int]) -> list[int]:
    """'80,75,70,85,70' (or a list) -> five integers 0..100; `InvalidRequest` otherwise."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        scores = [int(str(part).strip()) for part in parts]
    except ValueError:
        raise InvalidRequest(f"scores must be {CRITERIA} integers separated by commas, got {text!r}") from None
    if len(scores) != CRITERIA or not all(0 <= s <= MAX_SCORE for s in scores):
        raise InvalidRequest(
            f"scores must be {CRITERIA} integers from 0 to {MAX_SCORE} ({', '.join(CRITERIA_NAMES)}), got {text!r}"
        )
    return scores


class DataConsensusClient(ModuleClient):
    """One account acting on the `DataConsensus` of its chain's deployment (read-only without a signer)."""

    CONTRACT = "DataConsensus"
    POOL_ROLE = "CURATOR"
    VOTE_KIND, COMMIT_FUNCTION, REVEAL_FUNCTION = VOTE, "commit", "reveal"

    # The module's own events (the panel's are the base's).
    SUBMITTED = ModuleEvent("Submitted")
    SUBMISSION_EXPIRED = ModuleEvent("SubmissionExpired")
    FINALIZED = ModuleEvent("Finalized")
    INFORMANT_REWARD_CLAIMED = ModuleEvent("InformantRewardClaimed")

    # ------------------------------------------------------------ reads

    def submission_count(self) -> int:
        return int(self.contract.functions.submissionCount().call())

    def submission(self, submission_id: int) -> Submission:
        """The submission's state; `InvalidRequest` if there is no such submission."""
        values = struct_of(self.contract, "getSubmission", int(submission_id))
        if values["status"] == 0:
            raise InvalidRequest(f"there is no submission #{submission_id} ({self.submission_count()} so far)")
        return Submission(
            int(submission_id),
            values["informant"],
            values["bond"],
            values["seedBlock"],
            values["commitDeadline"],
            values["revealDeadline"],
            values["revealedMask"],
            values["settledMask"],
            values["panelSize"],
            DATA_STATUSES[values["status"]],
            values["informantReward"],
            values["panelWeight"],
            values["revealedWeight"],
            values["value"],
            values["consumed"],
            values["coherentWeight"],
            values["curatorPayout"],
        )

    def unfinished(self) -> list[Submission]:
        """Submissions with work left for someone, oldest first: awaiting a panel, being voted on, or finalized with
        a seat not settled. Reads every submission once (one call each): for a worker catching up when it starts."""
        found = []
        for submission_id in range(1, self.submission_count() + 1):
            submission = self.submission(submission_id)
            if not submission.finalized or submission.settled_mask != full_mask(submission.panel_size):
                found.append(submission)
        return found

    def manifest_cid(self, submission_id: int) -> str:
        return cid_from_chain(self.contract.functions.manifestCid(int(submission_id)).call())

    def stored_vote(self, submission_id: int):
        """This account's vote on `submission_id` kept on disk (a `workers.chain.salts.Salt`), if any."""
        return self.stored_salt(VOTE, submission_id)

    def committed(self, submission: Submission, curator: str | None = None) -> set[str]:
        """Curators (all, or just `curator`) with a commitment on `submission`, from `Committed` events.

        The ballot itself is private; commits can only happen after the panel draw, which follows the seed
        block, and before the commit deadline, which bounds the log search.
        """
        if submission.status == "AwaitingPanel":
            return set()
        filters: dict[str, Any] = {"id": submission.id}
        if curator is not None:
            filters["member"] = to_checksum_address(curator)
        end = min(submission.commit_deadline, self.latest_block())
        return {log.args["member"] for log in self.logs(self.COMMITTED, filters, submission.seed_block, end)}

    def outcome(self, submission: Submission) -> Outcome | None:
        """The `Finalized` event of a finalized submission (after its commit deadline)."""
        if not submission.finalized:
            return None
        logs = self.logs(
            self.FINALIZED, {"id": submission.id}, submission.commit_deadline + 1, self.latest_block(), first=True
        )
        return _outcome(logs[0].args, logs[0].tx_hash) if logs else None

    def status(self, submission_id: int) -> SubmissionStatus:
        submission = self.submission(submission_id)
        latest = self.latest_block()
        panel = []
        if submission.panel_size:
            committed = self.committed(submission)
            panel = [
                Seat(seat, member, weight, member in committed, submission.revealed(seat), submission.settled(seat))
                for seat, (member, weight) in enumerate(self.panel(submission.id))
            ]
        return SubmissionStatus(
            submission=submission,
            manifest_cid=self.manifest_cid(submission.id),
            phase=submission.phase(latest),
            block=latest,
            panel=panel,
            threshold=self.contract.functions.threshold().call(),
            outcome=self.outcome(submission),
        )

    # ------------------------------------------------------------ informant

    def submit(self, source: Source, bond: int, store: ContentStore, limits: Limits = DEFAULT_LIMITS) -> SubmitResult:
        """Validates and pins the dataset, then submits its manifest CID with `bond` (wei) locked.

        Raises before sending anything if the bond cannot be locked (`InvalidRequest`), the dataset is
        invalid (`InvalidDataset`), pinning fails (`StorageError`), or this account already has an open
        submission of the same dataset.
        """
        self.settle_inflight()
        account = self.chain.address
        params = self.params()
        if bond < params["minBond"]:
            raise InvalidRequest(
                f"a bond of {format_dsh(bond)} DSH is below the minimum of {format_dsh(params['minBond'])} DSH"
            )
        self.require_free_stake("INFORMANT", bond, "the bond")
        pinned = pin_dataset(source, store, limits)
        cid = cid_to_chain(pinned.manifest_cid)
        open_id = self._open_submission(account, cid)
        if open_id is not None:
            raise InvalidRequest(
                f"this dataset (manifest {pinned.manifest_cid}) is already submitted by "
                f"{account} as #{open_id}, still open: see `deepshard data status {open_id}`"
            )
        receipt = self.chain.transact(self.contract.functions.submit(cid, bond))
        event = self.receipt_event(receipt, self.SUBMITTED)
        return SubmitResult(int(event["id"]), pinned, bond, int(event["seedBlock"]), tx_hash(receipt))

    def _open_submission(self, informant: str, cid: bytes) -> int | None:
        logs: list[Log] = self.logs(self.SUBMITTED, {"informant": informant}, self.deploy_block(), self.latest_block())
        for log in logs:
            if bytes(log.args["manifestCid"]) == cid:
                submission = self.submission(log.args["id"])
                if not submission.finalized:
                    return submission.id
        return None

    # ------------------------------------------------------------ anyone

    def draw(self, submission_id: int) -> DrawResult:
        """Draws the panel once the seed block is mined; past the 256-block horizon the submission expires instead
        (the informant loses its expiry slash)."""
        self.settle_inflight()
        submission = self.submission(submission_id)
        latest = self.latest_block()
        if submission.status != "AwaitingPanel":
            raise InvalidRequest(
                f"submission #{submission.id} already has its panel (phase: {submission.phase(latest)})"
            )
        if latest <= submission.seed_block:
            raise InvalidRequest(
                f"the panel of #{submission.id} can be drawn once block "
                f"{submission.seed_block + 1} is mined (its seed block must be mined first); "
                f"the chain is at block {latest}"
            )
        receipt = self.chain.transact(self.contract.functions.drawPanel(submission.id))
        drawn = self.receipt_events(receipt, self.PANEL_DRAWN)
        if not drawn:
            expired = self.receipt_event(receipt, self.SUBMISSION_EXPIRED)
            return DrawResult([], 0, 0, int(expired["slashed"]), tx_hash(receipt))
        args = drawn[0]
        return DrawResult(
            list(args["members"]), int(args["commitDeadline"]), int(args["revealDeadline"]), None, tx_hash(receipt)
        )

    def finalize(self, submission_id: int) -> Outcome:
        """Closes the vote once the reveal window is over (or every seat revealed after the commit window)."""
        self.settle_inflight()
        submission = self.submission(submission_id)
        latest = self.latest_block()
        phase = submission.phase(latest)
        if submission.status != "Voting":
            raise InvalidRequest(f"submission #{submission.id} cannot be finalized: phase {phase}")
        if phase != "ready to finalize":
            raise InvalidRequest(
                f"submission #{submission.id} can be finalized once block "
                f"{submission.reveal_deadline + 1} is mined, or once every seat revealed and block "
                f"{submission.commit_deadline + 1} is mined; the chain is at block {latest}"
            )
        receipt = self.chain.transact(self.contract.functions.finalize(submission.id))
        return _outcome(self.receipt_event(receipt, self.FINALIZED), tx_hash(receipt))

    def settle_seat(self, submission_id: int, seat: int) -> SettleResult:
        """Settles seat `seat` of a finalized submission (anyone may: a curator claims its reward, a keeper
        applies a silent seat's penalty)."""
        self.settle_inflight()
        submission = self.submission(submission_id)
        if not submission.finalized:
            raise InvalidRequest(
                f"submission #{submission.id} is not finalized yet (phase: {submission.phase(self.latest_block())})"
            )
        if not 0 <= seat < submission.panel_size:
            raise InvalidRequest(
                f"submission #{submission.id} has {submission.panel_size} panel seats; there is no seat {seat}"
            )
        if submission.settled(seat):
            raise InvalidRequest(f"seat {seat} of #{submission.id} is already settled")
        receipt = self.chain.transact(self.contract.functions.claim(submission.id, seat))
        settled = self.receipt_event(receipt, self.SETTLED)
        return SettleResult(seat, settled["member"], int(settled["reward"]), int(settled["penalty"]), tx_hash(receipt))

    # ------------------------------------------------------------ curators

    def commitment_for(self, kind: str, value: Any, salt: bytes, account: str) -> bytes:
        return bytes(self.contract.functions.commitmentFor(list(value), salt, account).call())

    def vote(self, submission_id: int, scores: Sequence[int]) -> CommitResult:
        """Commits `scores` (five, 0..100) with a fresh random salt, stored on disk before the commit is sent."""
        return self.commit_vote(submission_id, scores)

    def reveal(self, submission_id: int) -> RevealResult:
        """Reveals this account's committed vote from its stored salt."""
        stored, tx = self.reveal_vote(submission_id)
        return RevealResult(list(stored.value), tx)

    def panel_vote(self, item_id: int) -> PanelVote:
        submission = self.submission(item_id)
        if submission.status != "Voting":
            raise InvalidRequest(
                f"submission #{submission.id} is not being voted on (phase: {submission.phase(self.latest_block())})"
            )
        seat = self.seat_of(submission.id)
        if seat is None:
            raise InvalidRequest(f"{self.chain.address} is not on the panel of #{submission.id}")
        return PanelVote(
            f"vote on #{submission.id}",
            seat,
            submission.commit_deadline,
            submission.reveal_deadline,
            submission.revealed(seat),
            lambda: bool(self.committed(submission, self.chain.address)),
            submission,
        )

    def checked_vote(self, vote: PanelVote, value: Any) -> list[int]:
        return parse_scores(value)

    def claim(self, submission_id: int) -> ClaimResult:
        """Settles this account's seat and, for the informant, claims its reward; whatever is due."""
        self.settle_inflight()
        account = self.chain.address
        submission = self.submission(submission_id)
        if not submission.finalized:
            raise InvalidRequest(
                f"submission #{submission.id} is not finalized yet (phase: {submission.phase(self.latest_block())})"
            )
        seat = self.seat_of(submission.id, account)
        owed_seat = seat if seat is not None and not submission.settled(seat) else None
        owes_reward = submission.informant == account and submission.informant_reward > 0
        if owed_seat is None and not owes_reward:
            reasons = []
            if seat is not None:
                reasons.append(f"seat {seat} is already settled")
            if submission.informant == account:
                reasons.append(
                    "the informant reward is already claimed"
                    if submission.status == "Accepted"
                    else f"a {submission.status} submission pays its informant no reward"
                )
            raise InvalidRequest(
                f"nothing to claim on #{submission.id} for {account}: "
                + ("; ".join(reasons) or "not its informant and not on its panel")
            )
        result = ClaimResult()
        if owed_seat is not None:
            settled = self.settle_seat(submission.id, owed_seat)
            result = dataclasses.replace(
                result,
                seat_reward=settled.reward,
                seat_penalty=settled.penalty,
                tx_hashes=result.tx_hashes + (settled.tx_hash,),
            )
        if owes_reward:
            receipt = self.chain.transact(self.contract.functions.claimInformantReward(submission.id))
            claimed = self.receipt_event(receipt, self.INFORMANT_REWARD_CLAIMED)
            result = dataclasses.replace(
                result, informant_reward=int(claimed["amount"]), tx_hashes=result.tx_hashes + (tx_hash(receipt),)
            )
        return result

    # ------------------------------------------------------------ internals


def _outcome(args: Any, tx: str | None) -> Outcome:
    return Outcome(
        DATA_STATUSES[args["status"]],
        list(args["consensus"]),
        int(args["value"]),
        int(args["threshold"]),
        int(args["nextThreshold"]),
        tx,
    )
