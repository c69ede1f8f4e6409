"""The informant data consensus from the workers' side: pin and fetch datasets, and drive `DataConsensus`.

    pinned = pin_dataset("data.jsonl", store)            # validate, normalise, pin file + manifest
    report = score_dataset(store, pinned.manifest_cid)   # fetch (verified), signals, CuratorPolicy scores
    consensus = DataConsensusClient(chain)               # one account on one deployment
    sid = consensus.submit("data.jsonl", bond, store).submission_id
    consensus.draw(sid); consensus.vote(sid, [80, 75, 70, 85, 70]); consensus.reveal(sid)
    consensus.finalize(sid); consensus.claim(sid); consensus.status(sid)

Every method reads the chain first and raises `InvalidRequest` (a `ChainError`, one sentence) when the
action cannot succeed now: wrong phase, already done, not on the panel, stake too small. Nothing is
sent then, and `ChainClient.transact` estimates gas before sending as a second guard.

Phases are judged conservatively from the latest block: a transaction sent now is checked (gas estimate)
against the state at `latest` and lands in a later block, so a window counts as open only when both
agree: opened by `latest`, not yet closed at `latest + 1`. Between two windows that leaves one block in
which neither action is offered ("reveal opens next block").

Votes: the salt of a commitment is the only way to reveal it, so it is written to disk before the
commit is sent (`VoteStore`: one JSON file per submission and curator, created atomically, never
overwritten, mode 0600, under `$DEEPSHARD_VOTES_DIR`, default `<data dir>/deepshard/votes`). A vote
interrupted between the file and the transaction is resumed with the same salt and scores, so the
commitment is the same and at most one can land.

The contract stores the manifest CID in binary form (`Cid.to_bytes()`); people and stores use the
base32 string (`cid_to_chain` / `cid_from_chain`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from eth_utils import to_checksum_address
from web3 import Web3
from web3.logs import DISCARD

from ..chain import ChainClient, ChainError, InvalidRequest
from ..chain.roles import ROLES, parse_role
from ..chain.units import format_dsh
from ..chain.writeonce import write_once
from ..storage import ContentStore
from ..storage.cids import Cid, parse_cid
from .dataset import DataError, InvalidDataset, normalise_file, validate
from .manifest import DatasetManifest, ManifestError
from .quality import CRITERIA, CuratorPolicy, MinHashIndex, compute_signals, read_texts
from .records import DEFAULT_LIMITS, Limits, Source

VOTES_DIR_ENV = "DEEPSHARD_VOTES_DIR"

MAX_SCORE = 100
#: `IDataConsensus.Status`, in enum order.
STATUSES = ("None", "AwaitingPanel", "Voting", "Accepted", "Rejected", "NoQuorum")
FINAL_STATUSES = ("Accepted", "Rejected", "NoQuorum")
INFORMANT = parse_role("INFORMANT")
CURATOR = parse_role("CURATOR")


# ---------------------------------------------------------------- CIDs

def cid_to_chain(cid: str | Cid) -> bytes:
    """'bafk...' -> the binary CID `DataConsensus.submit` takes."""
    return parse_cid(cid).to_bytes()


def cid_from_chain(raw: bytes) -> str:
    """The binary CID stored on-chain -> its string form."""
    return str(Cid.from_bytes(bytes(raw)))


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
        raise DatasetUnusable(f"manifest {manifest_cid} claims {manifest.size_bytes:,} bytes, over the "
                              f"{limits.max_file_bytes:,}-byte limit")
    data = store.get(manifest.cid)
    report = validate(data, limits)
    if not report.ok:
        raise DatasetUnusable(f"dataset {manifest.cid} is not valid: {report.summary()}")
    # Equal manifests and an equal sha256 of the raw bytes mean the bytes are already normalised.
    described = report.manifest.with_cid(manifest.cid)
    if described != manifest or hashlib.sha256(data).hexdigest() != manifest.sha256 or len(data) != manifest.size_bytes:
        raise DatasetUnusable(f"dataset {manifest.cid} does not match manifest {manifest_cid} "
                              "(not normalised, or other records, size or hash than claimed)")
    return FetchedDataset(str(parse_cid(manifest_cid)), manifest, data)


def corpus_index_of(store: ContentStore, corpus_cids: Iterable[str], limits: Limits = DEFAULT_LIMITS
                    ) -> MinHashIndex | None:
    """A MinHash index over the records of already-accepted datasets (manifest CIDs); None without any."""
    texts: list[str] = []
    labels: list[str] = []
    for cid in corpus_cids:
        records, _ = read_texts(fetch_dataset(store, cid, limits).data, limits)
        texts += [record.text for record in records]
        labels += [f"{cid}:{record.line}" for record in records]
    return MinHashIndex.from_texts(texts, labels=labels) if labels else None


def score_fetched(dataset: FetchedDataset, corpus: MinHashIndex | None = None, *,
                  policy: CuratorPolicy = CuratorPolicy(), limits: Limits = DEFAULT_LIMITS) -> dict:
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


def score_dataset(store: ContentStore, manifest_cid: str, corpus_cids: Iterable[str] = (), *,
                  policy: CuratorPolicy = CuratorPolicy(), limits: Limits = DEFAULT_LIMITS) -> dict:
    """`score_fetched` of a pinned dataset, with `corpus_cids` (manifest CIDs of already-accepted datasets)
    as the corpus whose near-copies lower the novelty."""
    corpus_cids = list(corpus_cids)
    report = score_fetched(fetch_dataset(store, manifest_cid, limits), corpus_index_of(store, corpus_cids, limits),
                           policy=policy, limits=limits)
    return {**report, "corpus_cids": corpus_cids}


# ---------------------------------------------------------------- stored votes

class VoteNotFound(ChainError):
    """No stored salt for a commitment: the vote cannot be revealed from this machine."""


def default_votes_dir() -> Path:
    """$DEEPSHARD_VOTES_DIR, else <per-user data dir>/deepshard/votes (data dir: $XDG_DATA_HOME or ~/.local/share)."""
    configured = os.environ.get(VOTES_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "deepshard" / "votes"


@dataclass(frozen=True)
class StoredVote:
    chain_id: int
    contract: str
    submission_id: int
    curator: str
    scores: tuple[int, ...]
    salt: bytes
    commitment: bytes

    def to_json(self) -> bytes:
        value = {**dataclasses.asdict(self), "scores": list(self.scores),
                 "salt": "0x" + self.salt.hex(), "commitment": "0x" + self.commitment.hex()}
        return json.dumps(value, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes, path: Path) -> StoredVote:
        try:
            value = json.loads(data)
            return cls(int(value["chain_id"]), to_checksum_address(value["contract"]), int(value["submission_id"]),
                       to_checksum_address(value["curator"]), tuple(int(s) for s in value["scores"]),
                       bytes.fromhex(value["salt"].removeprefix("0x")),
                       bytes.fromhex(value["commitment"].removeprefix("0x")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise VoteNotFound(f"stored vote {path} is unreadable ({exc}): it cannot be revealed") from None


class VoteStore:
    """Salts and scores of committed votes, one file each: <root>/<chain id>/<contract>/<id>-<curator>.json."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_votes_dir()

    def path(self, chain_id: int, contract: str, submission_id: int, curator: str) -> Path:
        return self.root / str(int(chain_id)) / to_checksum_address(contract) / \
            f"{int(submission_id)}-{to_checksum_address(curator)}.json"

    def load(self, chain_id: int, contract: str, submission_id: int, curator: str) -> StoredVote | None:
        path = self.path(chain_id, contract, submission_id, curator)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VoteNotFound(f"cannot read stored vote {path}: {exc.strerror}") from None
        vote = StoredVote.from_json(data, path)
        if (vote.chain_id, vote.contract, vote.submission_id, vote.curator) != \
                (int(chain_id), to_checksum_address(contract), int(submission_id), to_checksum_address(curator)):
            raise VoteNotFound(f"stored vote {path} belongs to another vote (chain, contract, submission or curator)")
        return vote

    def save(self, vote: StoredVote) -> StoredVote:
        """Writes `vote` durably unless a vote is already stored there (`write_once`); returns the stored one
        (either)."""
        path = self.path(vote.chain_id, vote.contract, vote.submission_id, vote.curator)
        try:
            written = write_once(path, vote.to_json())
        except OSError as exc:
            raise InvalidRequest(f"cannot store the vote's salt in {path.parent} ({exc.strerror}): "
                                 f"not committing, since the vote could never be revealed") from None
        return vote if written else self.load(vote.chain_id, vote.contract, vote.submission_id, vote.curator)


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
        return self.status in FINAL_STATUSES

    @property
    def all_revealed(self) -> bool:
        return self.panel_size > 0 and self.revealed_mask == (1 << self.panel_size) - 1

    def revealed(self, seat: int) -> bool:
        return bool(self.revealed_mask >> seat & 1)

    def settled(self, seat: int) -> bool:
        return bool(self.settled_mask >> seat & 1)

    def phase(self, latest: int) -> str:
        """What a transaction sent when `latest` is the newest block can do (module docstring): draw,
        commit, reveal, finalize, wait a block, or nothing more (the outcome)."""
        if self.status == "AwaitingPanel":
            return "awaiting seed block" if latest <= self.seed_block else "panel ready to draw"
        if self.status == "Voting":
            if latest + 1 <= self.commit_deadline:
                return "commit"
            if latest <= self.commit_deadline:
                return "reveal opens next block"
            if self.all_revealed or latest > self.reveal_deadline:
                return "ready to finalize"
            if latest + 1 <= self.reveal_deadline:
                return "reveal"
            return "finalize opens next block"
        return {"Accepted": "accepted", "Rejected": "rejected", "NoQuorum": "no quorum"}.get(self.status, "unknown")


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
    #: set when the seed block fell out of the 256-block window and a later one was chosen instead
    reseeded_to: int | None
    tx_hash: str


@dataclass(frozen=True)
class VoteResult:
    scores: list[int]
    vote_path: Path
    reveal_from: int
    reveal_deadline: int
    tx_hash: str


@dataclass(frozen=True)
class RevealResult:
    scores: list[int]
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
        raise InvalidRequest(f"scores must be {len(CRITERIA)} integers separated by commas, got {text!r}") from None
    if len(scores) != len(CRITERIA) or not all(0 <= s <= MAX_SCORE for s in scores):
        raise InvalidRequest(f"scores must be {len(CRITERIA)} integers from 0 to {MAX_SCORE} "
                             f"({', '.join(CRITERIA)}), got {text!r}")
    return scores


def _tx(receipt: Any) -> str:
    return Web3.to_hex(receipt["transactionHash"])


class DataConsensusClient:
    """One account acting on the `DataConsensus` of its chain's deployment (read-only without a signer)."""

    def __init__(self, chain: ChainClient, votes: VoteStore | None = None):
        self.chain = chain
        self.contract = chain.contract("DataConsensus")
        self.registry = chain.contract("StakeRegistry")
        self.votes = votes if votes is not None else VoteStore()

    # ------------------------------------------------------------ reads

    def latest_block(self) -> int:
        return int(self.chain.w3.eth.block_number)

    def submission(self, submission_id: int) -> Submission:
        """The submission's state; `InvalidRequest` if there is no such submission."""
        values = self.contract.functions.getSubmission(int(submission_id)).call()
        (informant, bond, seed_block, commit_deadline, reveal_deadline, revealed_mask, settled_mask, panel_size,
         status, informant_reward, panel_weight, revealed_weight, value, consumed, coherent_weight,
         curator_payout, _consensus) = values
        if status == 0:
            raise InvalidRequest(f"there is no submission #{submission_id} "
                                 f"({self.contract.functions.submissionCount().call()} so far)")
        return Submission(int(submission_id), informant, bond, seed_block, commit_deadline, reveal_deadline,
                          revealed_mask, settled_mask, panel_size, STATUSES[status], informant_reward, panel_weight,
                          revealed_weight, value, consumed, coherent_weight, curator_payout)

    def manifest_cid(self, submission_id: int) -> str:
        return cid_from_chain(self.contract.functions.manifestCid(int(submission_id)).call())

    def stored_vote(self, submission_id: int) -> StoredVote | None:
        """This account's vote on `submission_id` kept on disk, if any."""
        return self.votes.load(*self._vote_key(submission_id))

    def seat_of(self, submission_id: int, curator: str | None = None) -> int | None:
        """The seat of `curator` (default: this account) on the panel, or None."""
        seat, on_panel = self.contract.functions.seatOf(int(submission_id), curator or self.chain.address).call()
        return int(seat) if on_panel else None

    def committed(self, submission: Submission, curator: str | None = None) -> set[str]:
        """Curators (all, or just `curator`) with a commitment on `submission`, from `Committed` events.

        The ballot itself is private; commits can only happen after the panel draw, which follows the seed
        block, and before the commit deadline, which bounds the log search.
        """
        if submission.status == "AwaitingPanel":
            return set()
        filters = {"id": submission.id}
        if curator is not None:
            filters["member"] = to_checksum_address(curator)
        logs = self.contract.events.Committed.get_logs(
            argument_filters=filters, from_block=submission.seed_block,
            to_block=min(submission.commit_deadline, self.latest_block()))
        return {event["args"]["member"] for event in logs}

    def outcome(self, submission: Submission) -> Outcome | None:
        """The `Finalized` event of a finalized submission (after its commit deadline)."""
        if not submission.finalized:
            return None
        logs = self.contract.events.Finalized.get_logs(
            argument_filters={"id": submission.id}, from_block=submission.commit_deadline, to_block="latest")
        if not logs:
            return None
        event = logs[0]
        return _outcome(event["args"], Web3.to_hex(event["transactionHash"]))

    def status(self, submission_id: int) -> SubmissionStatus:
        submission = self.submission(submission_id)
        latest = self.latest_block()
        panel = []
        if submission.panel_size:
            members, weights = self.contract.functions.panelOf(submission.id).call()
            committed = self.committed(submission)
            panel = [Seat(seat, member, weight, member in committed, submission.revealed(seat),
                          submission.settled(seat))
                     for seat, (member, weight) in enumerate(zip(members, weights))]
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

    def submit(self, source: Source, bond: int, store: ContentStore, limits: Limits = DEFAULT_LIMITS
               ) -> SubmitResult:
        """Validates and pins the dataset, then submits its manifest CID with `bond` (wei) locked.

        Raises before sending anything if the bond cannot be locked (`InvalidRequest`), the dataset is
        invalid (`InvalidDataset`), pinning fails (`StorageError`), or this account already has an open
        submission of the same dataset.
        """
        account = self.chain.address
        params = self._params()
        if bond < params["minBond"]:
            raise InvalidRequest(f"a bond of {format_dsh(bond)} DSH is below the minimum of "
                                 f"{format_dsh(params['minBond'])} DSH")
        self._require_free_stake(account, INFORMANT, bond, "the bond")
        pinned = pin_dataset(source, store, limits)
        cid = cid_to_chain(pinned.manifest_cid)
        open_id = self._open_submission(account, cid)
        if open_id is not None:
            raise InvalidRequest(f"this dataset (manifest {pinned.manifest_cid}) is already submitted by "
                                 f"{account} as #{open_id}, still open: see `deepshard data status {open_id}`")
        receipt = self.chain.transact(self.contract.functions.submit(cid, bond))
        event = self._event(receipt, "Submitted")
        return SubmitResult(int(event["id"]), pinned, bond, int(event["seedBlock"]), _tx(receipt))

    def _open_submission(self, informant: str, cid: bytes) -> int | None:
        start = int(self.chain.deployment()["deployBlock"])
        logs = self.contract.events.Submitted.get_logs(
            argument_filters={"informant": informant}, from_block=start, to_block="latest")
        for event in logs:
            if bytes(event["args"]["manifestCid"]) == cid:
                submission = self.submission(event["args"]["id"])
                if not submission.finalized:
                    return submission.id
        return None

    # ------------------------------------------------------------ anyone

    def draw(self, submission_id: int) -> DrawResult:
        """Draws the panel once the seed block is mined."""
        submission = self.submission(submission_id)
        latest = self.latest_block()
        if submission.status != "AwaitingPanel":
            raise InvalidRequest(f"submission #{submission.id} already has its panel "
                                 f"(phase: {submission.phase(latest)})")
        if latest <= submission.seed_block:
            raise InvalidRequest(f"the panel of #{submission.id} can be drawn once block "
                                 f"{submission.seed_block + 1} is mined (its seed block must be mined first); "
                                 f"the chain is at block {latest}")
        receipt = self.chain.transact(self.contract.functions.drawPanel(submission.id))
        drawn = self.contract.events.PanelDrawn().process_receipt(receipt, errors=DISCARD)
        if not drawn:
            reseeded = self._event(receipt, "PanelReseeded")
            return DrawResult([], 0, 0, int(reseeded["seedBlock"]), _tx(receipt))
        args = drawn[0]["args"]
        return DrawResult(list(args["members"]), int(args["commitDeadline"]), int(args["revealDeadline"]), None,
                          _tx(receipt))

    def finalize(self, submission_id: int) -> Outcome:
        """Closes the vote once the reveal window is over (or every seat revealed after the commit window)."""
        submission = self.submission(submission_id)
        latest = self.latest_block()
        phase = submission.phase(latest)
        if submission.status != "Voting":
            raise InvalidRequest(f"submission #{submission.id} cannot be finalized: phase {phase}")
        if phase != "ready to finalize":
            raise InvalidRequest(f"submission #{submission.id} can be finalized once block "
                                 f"{submission.reveal_deadline + 1} is mined, or once every seat revealed and block "
                                 f"{submission.commit_deadline + 1} is mined; the chain is at block {latest}")
        receipt = self.chain.transact(self.contract.functions.finalize(submission.id))
        return _outcome(self._event(receipt, "Finalized"), _tx(receipt))

    # ------------------------------------------------------------ curators

    def join_pool(self, amount: int) -> int:
        """Locks `amount` (wei) more CURATOR stake as pool bond; returns the new bond."""
        account = self.chain.address
        bond = self.contract.functions.poolMembers(account).call()[2]
        minimum = self._params()["minPoolBond"]
        if bond + amount < minimum:
            raise InvalidRequest(f"the pool bond would be {format_dsh(bond + amount)} DSH, below the minimum of "
                                 f"{format_dsh(minimum)} DSH")
        self._require_free_stake(account, CURATOR, amount, "the pool bond")
        receipt = self.chain.transact(self.contract.functions.joinPool(amount))
        return int(self._event(receipt, "PoolJoined")["bond"])

    def vote(self, submission_id: int, scores: Sequence[int]) -> VoteResult:
        """Commits `scores` with a fresh random salt, stored on disk before the commit is sent."""
        scores = parse_scores(scores)
        account = self.chain.address
        submission = self._voting_seat(submission_id)
        if self.latest_block() + 1 > submission.commit_deadline:
            raise InvalidRequest(f"the commit window of #{submission.id} closed at block {submission.commit_deadline}")
        if self.committed(submission, account):
            raise InvalidRequest(f"{account} already committed a vote on #{submission.id}: reveal it with "
                                 f"`deepshard data reveal {submission.id}` from block {submission.commit_deadline + 1}")
        key = self._vote_key(submission.id)
        stored = self.votes.load(*key)
        if stored is None:
            salt = secrets.token_bytes(32)
            commitment = bytes(self.contract.functions.commitmentFor(scores, salt, account).call())
            stored = self.votes.save(StoredVote(*key, tuple(scores), salt, commitment))
        if list(stored.scores) != scores:
            # An earlier vote stopped between storing its salt and committing; its transaction may still land.
            raise InvalidRequest(f"a vote with other scores {list(stored.scores)} is already stored for "
                                 f"#{submission.id} in {self.votes.path(*key)} (an interrupted earlier vote): vote "
                                 "those scores again to finish it, or delete the file if its commit can no longer land")
        self._check_commitment(stored)
        receipt = self.chain.transact(self.contract.functions.commit(submission.id, stored.commitment))
        return VoteResult(scores, self.votes.path(*key), submission.commit_deadline + 1, submission.reveal_deadline,
                          _tx(receipt))

    def reveal(self, submission_id: int) -> RevealResult:
        """Reveals this account's committed vote from its stored salt."""
        account = self.chain.address
        submission = self._voting_seat(submission_id)
        seat = self.seat_of(submission.id, account)
        latest = self.latest_block()
        if latest <= submission.commit_deadline:
            raise InvalidRequest(f"the reveal window of #{submission.id} opens once block "
                                 f"{submission.commit_deadline + 1} is mined; the chain is at block {latest}")
        if latest + 1 > submission.reveal_deadline:
            raise InvalidRequest(f"the reveal window of #{submission.id} closed at block {submission.reveal_deadline}")
        if submission.revealed(seat):
            raise InvalidRequest(f"{account} already revealed its vote on #{submission.id}")
        if not self.committed(submission, account):
            raise InvalidRequest(f"{account} has no commitment on #{submission.id} to reveal")
        key = self._vote_key(submission.id)
        stored = self.votes.load(*key)
        if stored is None:
            raise VoteNotFound(f"no stored salt for {account}'s vote on #{submission.id} (expected "
                               f"{self.votes.path(*key)}; set {VOTES_DIR_ENV} to the folder used when voting)")
        self._check_commitment(stored)
        receipt = self.chain.transact(self.contract.functions.reveal(submission.id, list(stored.scores), stored.salt))
        return RevealResult(list(stored.scores), _tx(receipt))

    def claim(self, submission_id: int) -> ClaimResult:
        """Settles this account's seat and, for the informant, claims its reward; whatever is due."""
        account = self.chain.address
        submission = self.submission(submission_id)
        if not submission.finalized:
            raise InvalidRequest(f"submission #{submission.id} is not finalized yet "
                                 f"(phase: {submission.phase(self.latest_block())})")
        seat = self.seat_of(submission.id, account)
        owes_seat = seat is not None and not submission.settled(seat)
        owes_reward = submission.informant == account and submission.informant_reward > 0
        if not (owes_seat or owes_reward):
            reasons = []
            if seat is not None:
                reasons.append(f"seat {seat} is already settled")
            if submission.informant == account:
                reasons.append("the informant reward is already claimed" if submission.status == "Accepted"
                               else f"a {submission.status} submission pays its informant no reward")
            raise InvalidRequest(f"nothing to claim on #{submission.id} for {account}: "
                                 + ("; ".join(reasons) or "not its informant and not on its panel"))
        result = ClaimResult()
        if owes_seat:
            receipt = self.chain.transact(self.contract.functions.claim(submission.id, seat))
            settled = self._event(receipt, "Settled")
            result = dataclasses.replace(result, seat_reward=int(settled["reward"]),
                                         seat_penalty=int(settled["penalty"]),
                                         tx_hashes=result.tx_hashes + (_tx(receipt),))
        if owes_reward:
            receipt = self.chain.transact(self.contract.functions.claimInformantReward(submission.id))
            claimed = self._event(receipt, "InformantRewardClaimed")
            result = dataclasses.replace(result, informant_reward=int(claimed["amount"]),
                                         tx_hashes=result.tx_hashes + (_tx(receipt),))
        return result

    # ------------------------------------------------------------ internals

    def _params(self) -> dict[str, int]:
        names = [component["name"] for component in
                 self.contract.get_function_by_name("getParams").abi["outputs"][0]["components"]]
        return dict(zip(names, self.contract.functions.getParams().call()))

    def _require_free_stake(self, account: str, role: int, amount: int, what: str) -> None:
        staked = self.registry.functions.stakeOf(account, role).call()
        free = staked - self.registry.functions.lockedOf(account, role).call()
        if free < amount:
            name = ROLES[role]
            raise InvalidRequest(f"{what} of {format_dsh(amount)} DSH exceeds the unlocked {name} stake of {account} "
                                 f"({format_dsh(free)} of {format_dsh(staked)} DSH): stake more with "
                                 f"`deepshard stake {name} AMOUNT`")
        if self.chain.w3.eth.get_balance(account) == 0:
            raise InvalidRequest(f"{account} has no ETH to pay for gas")

    def _vote_key(self, submission_id: int) -> tuple[int, str, int, str]:
        return self.chain.chain_id, self.contract.address, int(submission_id), self.chain.address

    def _voting_seat(self, submission_id: int) -> Submission:
        submission = self.submission(submission_id)
        if submission.status != "Voting":
            raise InvalidRequest(f"submission #{submission.id} is not being voted on "
                                 f"(phase: {submission.phase(self.latest_block())})")
        if self.seat_of(submission.id) is None:
            raise InvalidRequest(f"{self.chain.address} is not on the panel of #{submission.id}")
        return submission

    def _check_commitment(self, stored: StoredVote) -> None:
        # A damaged or foreign file must fail here, not as a CommitmentMismatch revert after the window.
        expected = bytes(self.contract.functions.commitmentFor(list(stored.scores), stored.salt, stored.curator).call())
        if expected != stored.commitment:
            path = self.votes.path(stored.chain_id, stored.contract, stored.submission_id, stored.curator)
            raise VoteNotFound(f"stored vote {path} is inconsistent (its salt and scores do not give its commitment)")

    def _event(self, receipt: Any, name: str) -> dict:
        events = getattr(self.contract.events, name)().process_receipt(receipt, errors=DISCARD)
        if not events:
            raise ChainError(f"transaction {_tx(receipt)} emitted no {name} event")
        return dict(events[0]["args"])


def _outcome(args: Any, tx_hash: str | None) -> Outcome:
    return Outcome(STATUSES[args["status"]], list(args["consensus"]), int(args["value"]), int(args["threshold"]),
                   int(args["nextThreshold"]), tx_hash)
