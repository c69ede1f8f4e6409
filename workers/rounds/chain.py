"""Training rounds from the workers' side: drive `TrainingRounds` and read `ModelRegistry`.

    rounds = TrainingRoundsClient(chain)                 # one account on one deployment
    opened = rounds.open_round(spec.spec_hash())         # anyone, once enough accepted data is pending
    rounds.commit_delta(r, "bafy...delta", bond)         # trainer: salt on disk first, then the commitment
    rounds.reveal_delta(r)                               #   ... after the commit window
    rounds.join_pool(amount); rounds.draw_evaluators(r)  # evaluator pool; anyone draws the panel
    rounds.commit_fingerprints(r, [[16 ints], ...]); rounds.reveal_fingerprints(r)
    rounds.finalize(r); rounds.claim_trainer(r); rounds.claim_evaluator(r, seat); rounds.status(r)

`TrainingRoundsClient` is a `workers.chain.module.ModuleClient`, like `workers.data.chain`'s client: every
write first waits until no transaction of this account is pending (its pending nonce equals its mined nonce),
then reads the chain and raises `InvalidRequest` (one sentence, nothing sent) when the action cannot succeed
now: wrong phase, already done, not a trainer or not on the panel, stake too small. Phases are judged
conservatively from the latest block: a window counts as open only when it is open at `latest` and still
open at `latest + 1`.

The contract stores CIDs in binary form; this module takes and returns strings. Event scans use bounded
block ranges (`workers.chain.module.LOG_RANGE` blocks per eth_getLogs) whose ends the round's own deadlines
fix wherever they can (every window is a uint16 number of blocks). Commitment salts are kept on disk
(`workers.chain.salts`, kinds "delta" and "fingerprints") before the commitment is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from eth_utils import to_checksum_address

from ..chain import InvalidRequest, format_dsh, registry
from ..chain.module import (
    LOG_RANGE,
    CommitResult,
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
from ..protocol.constants import (
    DATA_STATUSES,
    MAX_TRAINERS,
    ROUND_ENDED_STATUSES,
    ROUND_STATUSES,
)
from ..protocol.rounds import (
    RoundFullError,
    check_fingerprint,
    displaced_slot,
    draw_outcome,
    trainer_penalty,
    trainer_reward,
)
from ..protocol.sortition import seed_expired

#: Every window and delay is a uint16 number of blocks: a round's events lie within this of its deadlines.
MAX_WINDOW = 2**16 - 1
#: The salt store's kinds of a trainer's and an evaluator's commitments.
DELTA, FINGERPRINTS = "delta", "fingerprints"
#: (chain id, contract, round) -> block of its RoundOpened event.
_OPENED_BLOCKS: dict[tuple[int, str, int], int] = {}


# ---------------------------------------------------------------- state


@dataclass(frozen=True)
class RoundState:
    """`TrainingRounds.getRound(id)`, with the status by name."""

    id: int
    base_version: int
    train_commit_deadline: int
    train_reveal_deadline: int
    eval_commit_deadline: int
    eval_reveal_deadline: int
    trainer_count: int
    delta_count: int
    status: str
    spec_hash: bytes
    seed: bytes
    panel_seed_block: int
    panel_size: int
    eval_revealed_mask: int
    eval_settled_mask: int
    eval_coherent_mask: int
    accepted_delta_mask: int
    paid_trainer_mask: int
    new_version: int
    #: wei shared by the accepted trainers in proportion to their bonds (`trainer_reward`), and their summed bond
    trainer_reward_pool: int
    accepted_bond: int
    evaluator_payout: int
    coherent_evaluator_weight: int
    #: the round's terms, fixed when it opened: the minimum bond (wei) a trainer locks per committed delta, and
    #: the share of its own bond (bps) an outlier or silent trainer loses (governance changes since then apply
    #: to later rounds only)
    trainer_bond: int
    outlier_slash_bps: int

    @property
    def ended(self) -> bool:
        return self.status in ROUND_ENDED_STATUSES

    @property
    def all_revealed(self) -> bool:
        return self.panel_size > 0 and self.eval_revealed_mask == full_mask(self.panel_size)

    @property
    def seed_hex(self) -> str:
        return "0x" + self.seed.hex()

    def evaluator_revealed(self, seat: int) -> bool:
        return bool(self.eval_revealed_mask >> seat & 1)

    def evaluator_settled(self, seat: int) -> bool:
        return bool(self.eval_settled_mask >> seat & 1)

    def delta_accepted(self, delta: int) -> bool:
        return bool(self.accepted_delta_mask >> delta & 1)

    def trainer_paid(self, slot: int) -> bool:
        return bool(self.paid_trainer_mask >> slot & 1)

    def phase(self, latest: int) -> str:
        """What a transaction sent when `latest` is the newest block can do (module docstring)."""
        if self.status == "Training":
            if latest + 1 <= self.train_commit_deadline:
                return "trainer commit"
            if latest <= self.train_commit_deadline:
                return "trainer reveal opens next block"
            if latest + 1 <= self.train_reveal_deadline:
                return "trainer reveal"
            if latest <= self.panel_seed_block:
                return "awaiting panel seed block"
            # Seen from `latest` a draw lands at `latest + 1` at the earliest.
            return "panel seed expired" if seed_expired(self.panel_seed_block, latest + 1) else "panel ready to draw"
        if self.status == "Evaluating":
            return window_phase(
                latest, self.eval_commit_deadline, self.eval_reveal_deadline, self.all_revealed, "evaluator"
            )
        return {"Finalized": "finalized", "Failed": "failed"}.get(self.status, "unknown")

    def next_change(self, latest: int) -> int | None:
        """The first block at which the phase seen from `latest` changes; None once the round ended."""
        if self.status == "Training":
            for boundary in (self.train_commit_deadline, self.train_reveal_deadline, self.panel_seed_block + 1):
                if latest < boundary:
                    return boundary
            return latest + 1
        if self.status == "Evaluating":
            for boundary in (self.eval_commit_deadline, self.eval_commit_deadline + 1, self.eval_reveal_deadline + 1):
                if latest < boundary:
                    return boundary
            return latest + 1
        return None


class RevealedDelta(NamedTuple):
    """A revealed delta (`deltasOf`): its trainer, CID and the bond its slot locked (wei)."""

    trainer: str
    cid: str
    bond: int


@dataclass(frozen=True)
class TrainerSeat:
    """One committed trainer: its slot and bond (wei), revealed delta (index and CID), judgement and settlement."""

    slot: int
    trainer: str
    bond: int
    delta: int | None
    delta_cid: str | None
    distance: int | None
    accepted: bool | None
    settled: bool
    #: reward paid (settled) or due; the bond share slashed from an outlier or silent trainer
    reward: int
    slashed: int


@dataclass(frozen=True)
class EvaluatorSeat:
    seat: int
    evaluator: str
    weight: int
    committed: bool
    revealed: bool
    coherent: bool | None
    settled: bool
    reward: int | None
    penalty: int | None


@dataclass(frozen=True)
class RoundOutcome:
    """The `RoundFinalized` event: Finalized or Failed, accepted deltas, the new version, the trainers' reward pool
    (wei, shared in proportion to the accepted trainers' bonds)."""

    status: str
    accepted_mask: int
    new_version: int
    trainer_reward_pool: int
    block: int
    tx_hash: str


@dataclass(frozen=True)
class RoundStatus:
    round: RoundState
    phase: str
    block: int
    datasets: list[tuple[int, str]]
    trainers: list[TrainerSeat]
    panel: list[EvaluatorSeat]
    outcome: RoundOutcome | None
    new_version_cid: str | None
    params: dict[str, int] = field(repr=False)


@dataclass(frozen=True)
class OpenResult:
    round_id: int
    dataset_ids: list[int]
    seed: str
    commit_deadline: int
    reveal_deadline: int
    tx_hash: str


@dataclass(frozen=True)
class DrawResult:
    round_id: int
    #: `workers.protocol.rounds.draw_outcome`: "drawn", "failed" (too few revealed deltas: the revealers keep their
    #: bonds) or "expired" (the seed block fell out of the 256-block window: the round failed, every trainer
    #: settled as silent, losing the round's outlier slash of its bond)
    result: str
    panel: list[str]
    commit_deadline: int
    reveal_deadline: int
    seed_block: int
    tx_hash: str


@dataclass(frozen=True)
class SettleResult:
    round_id: int
    account: str
    reward: int
    penalty: int
    tx_hash: str


def check_fingerprints(fingerprints: Sequence[Sequence[int]], deltas: int) -> list[list[int]]:
    """`deltas` fingerprints of K int32 each (`workers.protocol.rounds.check_fingerprint`), as plain lists;
    `InvalidRequest` naming the faulty one otherwise."""
    try:
        rows = [[int(x) for x in row] for row in fingerprints]
    except (TypeError, ValueError):
        raise InvalidRequest("fingerprints must be lists of integers") from None
    if len(rows) != deltas:
        raise InvalidRequest(f"{len(rows)} fingerprints given, the round has {deltas} revealed deltas")
    for index, row in enumerate(rows):
        try:
            check_fingerprint(row)
        except ValueError as exc:
            raise InvalidRequest(f"fingerprint {index}: {exc}") from None
    return rows


class TrainingRoundsClient(ModuleClient):
    """One account acting on the `TrainingRounds` of its chain's deployment (read-only without a signer)."""

    CONTRACT = "TrainingRounds"
    POOL_ROLE = "EVALUATOR"
    VOTE_KIND, COMMIT_FUNCTION, REVEAL_FUNCTION = FINGERPRINTS, "commitFingerprints", "revealFingerprints"

    # The module's own events (the panel's are the base's).
    ROUND_OPENED = ModuleEvent("RoundOpened")
    DELTA_COMMITTED = ModuleEvent("DeltaCommitted")
    DELTA_DISPLACED = ModuleEvent("DeltaDisplaced")
    DELTA_REVEALED = ModuleEvent("DeltaRevealed")
    ROUND_FINALIZED = ModuleEvent("RoundFinalized")
    DELTA_JUDGED = ModuleEvent("DeltaJudged")
    TRAINER_SETTLED = ModuleEvent("TrainerSettled")
    #: DataConsensus's outcome event, read to find the accepted datasets a round can train on.
    DATA_FINALIZED = ModuleEvent("Finalized")

    def __init__(self, chain, salts=None):
        super().__init__(chain, salts)
        self.models = chain.contract("ModelRegistry")
        self.data = chain.contract("DataConsensus")

    # ------------------------------------------------------------ reads

    def round_count(self) -> int:
        return int(self.contract.functions.roundCount().call())

    def round(self, round_id: int) -> RoundState:
        """The round's state (`getRound`'s fields by name); `InvalidRequest` if there is no such round."""
        fields = {
            _snake_case(name): value for name, value in struct_of(self.contract, "getRound", int(round_id)).items()
        }
        status = ROUND_STATUSES[fields["status"]]
        if status == "None":
            raise InvalidRequest(f"there is no training round #{round_id} ({self.round_count()} so far)")
        fields["status"] = status
        fields["spec_hash"], fields["seed"] = bytes(fields["spec_hash"]), bytes(fields["seed"])
        return RoundState(id=int(round_id), **fields)

    def current_round(self) -> RoundState | None:
        count = self.round_count()
        return self.round(count) if count else None

    def dataset_ids(self, round_id: int) -> list[int]:
        return [int(i) for i in self.contract.functions.datasetsOf(int(round_id)).call()]

    def manifest_cid(self, dataset_id: int) -> str:
        return cid_from_chain(self.data.functions.manifestCid(int(dataset_id)).call())

    def deltas(self, round_id: int) -> list[RevealedDelta]:
        """The revealed deltas in delta order."""
        trainers, cids, bonds = self.contract.functions.deltasOf(int(round_id)).call()
        return [
            RevealedDelta(trainer, cid_from_chain(cid), int(bond))
            for trainer, cid, bond in zip(trainers, cids, bonds, strict=True)
        ]

    def opened_block(self, state: RoundState) -> int:
        """The block of the round's `RoundOpened` event (found once per process: its window is a uint16)."""
        key = (self.chain.chain_id, self.contract.address, state.id)
        if key not in _OPENED_BLOCKS:
            start = max(self.deploy_block(), state.train_commit_deadline - MAX_WINDOW)
            end = min(state.train_commit_deadline, self.latest_block())
            logs = self.logs(self.ROUND_OPENED, {"round": state.id}, start, end, first=True, newest_first=True)
            if not logs:
                return start  # not found (a pruned node?): the widest range that can hold the round's events
            _OPENED_BLOCKS[key] = logs[0].block
        return _OPENED_BLOCKS[key]

    def trainer_commits(self, state: RoundState, trainer: str | None = None) -> dict[str, tuple[int, int]]:
        """Trainers holding a slot -> (slot, bond in wei), from `DeltaCommitted` events (commits lie in the commit
        window): a slot is its latest commit's, since a larger bond displaces a full round's smallest one."""
        if state.trainer_count == 0:
            return {}
        start = self.opened_block(state)
        end = min(state.train_commit_deadline, self.latest_block())
        # Every commit of the round, not only `trainer`'s: a later one may have displaced it.
        holders = {
            int(log.args["slot"]): (log.args["trainer"], int(log.args["bond"]))
            for log in self.logs(self.DELTA_COMMITTED, {"round": state.id}, start, end)
        }
        commits = {address: (slot, bond) for slot, (address, bond) in holders.items()}
        if trainer is None:
            return commits
        trainer = to_checksum_address(trainer)
        return {trainer: commits[trainer]} if trainer in commits else {}

    def trainer_displaced(self, state: RoundState, trainer: str | None = None) -> bool:
        """Whether a larger bond displaced `trainer` (default: this account) from a slot of `state`'s round
        (`DeltaDisplaced`; its bond was unlocked in full). It may hold a slot again since: see `trainer_slot`."""
        if state.trainer_count < MAX_TRAINERS:
            return False  # displacement needs a full round
        filters = {"round": state.id, "trainer": to_checksum_address(trainer or self.chain.address)}
        end = min(state.train_commit_deadline, self.latest_block())
        return bool(self.logs(self.DELTA_DISPLACED, filters, self.opened_block(state), end, first=True))

    def slot_for_bond(self, state: RoundState, bond: int) -> int | None:
        """The slot a commit of `bond` wei would displace in `state`'s round (`rounds.displaced_slot`): None while a
        slot is free. `InvalidRequest` (one line) when the round is full and `bond` is not above its smallest."""
        if state.trainer_count < MAX_TRAINERS:
            return None
        bonds = [bond for _, bond in sorted(self.trainer_commits(state).values())]
        try:
            return displaced_slot(bonds, bond)
        except RoundFullError as exc:
            raise InvalidRequest(
                f"round #{state.id} is full: its smallest bond is {format_dsh(exc.smallest)} DSH; "
                "a bond above it takes that slot"
            ) from None

    def trainer_slots(self, state: RoundState, trainer: str | None = None) -> dict[str, int]:
        """Committed trainers -> slot (`trainer_commits` without the bonds)."""
        return {address: slot for address, (slot, _) in self.trainer_commits(state, trainer).items()}

    def trainer_slot(self, state: RoundState, trainer: str | None = None) -> int | None:
        trainer = to_checksum_address(trainer or self.chain.address)
        return self.trainer_slots(state, trainer).get(trainer)

    def trainer_bond(self, state: RoundState, bond: int | None = None) -> int:
        """The bond (wei) this account commits in `state`'s round: `bond`, or when None all of its unlocked TRAINER
        stake (a slot weighs and earns in proportion to its bond, so an honest trainer's capital counts in full
        against a cartel's). `InvalidRequest` (one line, nothing sent) for a bond below the round's minimum
        `trainerBond` or above the account's unlocked TRAINER stake."""
        if bond is None:
            # Less than the minimum unlocked: ask for the minimum, which the stake check refuses with its remedy.
            bond = max(self.free_stake("TRAINER")[0], state.trainer_bond)
        if bond < state.trainer_bond:
            raise InvalidRequest(
                f"a trainer bond of {format_dsh(bond)} DSH is below the minimum of round #{state.id}, "
                f"{format_dsh(state.trainer_bond)} DSH"
            )
        self.require_free_stake("TRAINER", bond, "the trainer bond")
        return bond

    def evaluators_committed(self, state: RoundState, evaluator: str | None = None) -> set[str]:
        """Evaluators with a fingerprint commitment, from the panel's commit events (after the draw, which
        follows the panel seed block, and before the commit deadline)."""
        if state.panel_size == 0:
            return set()
        filters: dict[str, Any] = {"id": state.id}
        if evaluator is not None:
            filters["member"] = to_checksum_address(evaluator)
        end = min(state.eval_commit_deadline, self.latest_block())
        return {log.args["member"] for log in self.logs(self.COMMITTED, filters, state.panel_seed_block, end)}

    def pending_datasets(self) -> list[int]:
        """Accepted DataConsensus submissions not yet taken into a round, oldest first: from `Finalized`
        events with status Accepted, checked with `getSubmission(id).consumed`. The scan runs backwards from
        the newest block and stops once it found `pendingDatasetCount` of them."""
        wanted = int(self.data.functions.pendingDatasetCount().call())
        accepted = DATA_STATUSES.index("Accepted")
        pending: set[int] = set()
        end, floor = self.latest_block(), self.deploy_block()
        while end >= floor and len(pending) < wanted:
            start = max(end - LOG_RANGE + 1, floor)
            for log in self.logs(self.DATA_FINALIZED, {}, start, end, contract=self.data):
                dataset_id = int(log.args["id"])
                if log.args["status"] == accepted and not struct_of(self.data, "getSubmission", dataset_id)["consumed"]:
                    pending.add(dataset_id)
            end = start - 1
        return sorted(pending)

    def lineage(self, version: int) -> list[int]:
        """Versions from the genesis to `version`, oldest first (workers.chain.registry.lineage)."""
        return registry.lineage(self.models, version)

    def version_cid(self, version: int) -> str:
        """The CID the registry records for `version`: its LoRA delta (for the genesis, the base weights)."""
        return cid_from_chain(struct_of(self.models, "getVersion", int(version))["deltaCid"])

    def base_delta_cids(self, version: int) -> list[str]:
        """The delta CIDs that turn the genesis weights into `version`, oldest first (without the genesis
        weights' own CID): what a trainer or evaluator merges onto the base model."""
        return [cid for cid, _ in self.base_deltas(version)]

    def base_deltas(self, version: int) -> list[tuple[str, int]]:
        """(delta CID, round that produced it) of each version from the genesis to `version`, oldest first,
        the genesis itself left out (workers.chain.registry.base_deltas)."""
        return registry.base_deltas(self.models, version)

    def training_inputs(
        self, round_id: int, spec_json: str, base_model: str, spec_json_of: Callable[[bytes], str] | None = None
    ) -> dict:
        """The arguments of `train_delta` (and, with the revealed deltas, `fingerprint_deltas`) for a round.

        `spec_json_of(spec_hash)` gives the spec each lineage delta was trained under (its round's spec);
        without it, `base_delta_specs` is left out (the tasks then assume the round's spec throughout).
        """
        state = self.round(round_id)
        lineage = self.base_deltas(state.base_version)
        inputs = {
            "round_id": state.id,
            "base_model": base_model,
            "base_delta_cids": [cid for cid, _ in lineage],
            "dataset_manifest_cids": [self.manifest_cid(i) for i in self.dataset_ids(state.id)],
            "spec_json": spec_json,
            "round_seed": state.seed_hex,
        }
        if spec_json_of is not None:
            inputs["base_delta_specs"] = [spec_json_of(self.round(r).spec_hash) for _, r in lineage]
        return inputs

    def outcome(self, state: RoundState) -> RoundOutcome | None:
        """The `RoundFinalized` event of an ended round."""
        log = self._finalized_log(state)
        return None if log is None else _round_outcome(log.args, log.block, log.tx_hash)

    def status(self, round_id: int) -> RoundStatus:
        state = self.round(round_id)
        latest = self.latest_block()
        params = self.params()
        datasets = [(i, self.manifest_cid(i)) for i in self.dataset_ids(state.id)]
        commits = self.trainer_commits(state)
        delta_of = {delta.trainer: (index, delta.cid) for index, delta in enumerate(self.deltas(state.id))}
        finalized = self._finalized_log(state) if state.ended else None
        distances: dict[int, int] = {}
        trainer_rewards: dict[str, int] = {}
        evaluator_settlements: dict[str, tuple[int, int]] = {}
        if finalized is not None:
            block = finalized.block
            for log in self.logs(self.DELTA_JUDGED, {"round": state.id}, block, block):
                distances[int(log.args["delta"])] = int(log.args["distance"])
            for log in self.logs(self.TRAINER_SETTLED, {"round": state.id}, block, latest):
                trainer_rewards[log.args["trainer"]] = int(log.args["reward"])
            for log in self.logs(self.SETTLED, {"id": state.id}, block, latest):
                evaluator_settlements[log.args["member"]] = (int(log.args["reward"]), int(log.args["penalty"]))
        trainers = []
        for trainer, (slot, bond) in sorted(commits.items(), key=lambda item: item[1]):
            delta, cid = delta_of.get(trainer, (None, None))
            accepted = None
            if state.status == "Finalized":
                accepted = delta is not None and state.delta_accepted(delta)
            elif state.status == "Failed":
                accepted = False
            due = trainer_reward(bond, state.trainer_reward_pool, state.accepted_bond) if accepted else 0
            reward = trainer_rewards.get(trainer, due)
            # Outliers and silent trainers are settled by finalize (or the failing draw), the rest by claimTrainer.
            settled_by_round = (state.status == "Finalized" and not accepted) or (
                state.status == "Failed" and delta is None
            )
            trainers.append(
                TrainerSeat(
                    slot,
                    trainer,
                    bond,
                    delta,
                    cid,
                    distances.get(delta) if delta is not None else None,
                    accepted,
                    state.trainer_paid(slot) or settled_by_round,
                    reward,
                    trainer_penalty(bond, state.outlier_slash_bps) if settled_by_round else 0,
                )
            )
        panel = []
        if state.panel_size:
            committed = self.evaluators_committed(state)
            for seat, (evaluator, weight) in enumerate(self.panel(state.id)):
                revealed = state.evaluator_revealed(seat)
                coherent = None
                if state.status == "Finalized" and revealed:
                    coherent = bool(state.eval_coherent_mask >> seat & 1)
                settlement = evaluator_settlements.get(evaluator)
                paid = settlement[0] if settlement else None
                penalty_paid = settlement[1] if settlement else None
                if paid is None and coherent:
                    paid = state.evaluator_payout * weight // max(state.coherent_evaluator_weight, 1)
                panel.append(
                    EvaluatorSeat(
                        seat,
                        evaluator,
                        weight,
                        evaluator in committed,
                        revealed,
                        coherent,
                        state.evaluator_settled(seat),
                        paid,
                        penalty_paid,
                    )
                )
        outcome = None if finalized is None else _round_outcome(finalized.args, finalized.block, finalized.tx_hash)
        new_cid = self.version_cid(state.new_version) if state.new_version else None
        return RoundStatus(state, state.phase(latest), latest, datasets, trainers, panel, outcome, new_cid, params)

    # ------------------------------------------------------------ anyone

    def open_round(self, spec_hash: bytes, dataset_ids: Sequence[int] | None = None) -> OpenResult:
        """Opens a round on `dataset_ids` (default: the oldest pending accepted datasets, up to `maxBatch`)."""
        self.settle_inflight()
        if len(spec_hash) != 32:
            raise InvalidRequest("a spec hash is 32 bytes (keccak256 of the canonical TrainingSpec JSON)")
        current = self.current_round()
        if current is not None and not current.ended:
            raise InvalidRequest(
                f"round #{current.id} is still running (phase: {current.phase(self.latest_block())}); "
                "one round runs at a time"
            )
        params = self.params()
        pending = self.pending_datasets()
        if dataset_ids is None:
            dataset_ids = pending[: params["maxBatch"]]
        else:
            dataset_ids = [int(i) for i in dataset_ids]
            missing = [i for i in dataset_ids if i not in pending]
            if missing:
                raise InvalidRequest(f"datasets {missing} are not accepted-and-pending (pending: {pending or 'none'})")
        if not params["minBatch"] <= len(dataset_ids) <= params["maxBatch"]:
            raise InvalidRequest(
                f"a round trains on {params['minBatch']} to {params['maxBatch']} accepted datasets; "
                f"{len(dataset_ids)} {'are' if len(dataset_ids) != 1 else 'is'} pending or given"
            )
        receipt = self.chain.transact(self.contract.functions.openRound(list(dataset_ids), bytes(spec_hash)))
        event = self.receipt_event(receipt, self.ROUND_OPENED)
        return OpenResult(
            int(event["round"]),
            [int(i) for i in event["datasetIds"]],
            "0x" + bytes(event["seed"]).hex(),
            int(event["commitDeadline"]),
            int(event["revealDeadline"]),
            tx_hash(receipt),
        )

    def draw_evaluators(self, round_id: int) -> DrawResult:
        """Draws the evaluator panel once the seed block is mined; fails a round with too few deltas, and expires one
        whose seed block is more than 256 blocks old (every trainer loses the round's outlier slash of its bond:
        draw in time)."""
        self.settle_inflight()
        state = self.round(round_id)
        latest = self.latest_block()
        if state.status != "Training":
            raise InvalidRequest(f"round #{state.id} is past its panel draw (phase: {state.phase(latest)})")
        if latest <= state.panel_seed_block:
            raise InvalidRequest(
                f"the panel of round #{state.id} can be drawn once block {state.panel_seed_block + 1} "
                f"is mined; the chain is at block {latest}"
            )
        receipt = self.chain.transact(self.contract.functions.drawEvaluators(state.id))
        drawn = self.receipt_events(receipt, self.PANEL_DRAWN)
        after = self.round(state.id)
        if drawn:
            args = drawn[0]
            return DrawResult(
                state.id,
                "drawn",
                list(args["members"]),
                int(args["commitDeadline"]),
                int(args["revealDeadline"]),
                after.panel_seed_block,
                tx_hash(receipt),
            )
        result = draw_outcome(
            delta_count=state.delta_count,
            min_accepted=self.params()["minAccepted"],
            seed_block=state.panel_seed_block,
            block=int(receipt["blockNumber"]),
        )
        return DrawResult(state.id, result, [], 0, 0, after.panel_seed_block, tx_hash(receipt))

    def finalize(self, round_id: int) -> RoundOutcome:
        """Aggregates the fingerprints and settles the round once its evaluator reveal window is over (or
        every seat revealed after the commit window)."""
        self.settle_inflight()
        state = self.round(round_id)
        latest = self.latest_block()
        phase = state.phase(latest)
        if state.status != "Evaluating":
            raise InvalidRequest(f"round #{state.id} cannot be finalized: phase {phase}")
        if phase != "ready to finalize":
            raise InvalidRequest(
                f"round #{state.id} can be finalized once block {state.eval_reveal_deadline + 1} is "
                f"mined, or once every seat revealed and block {state.eval_commit_deadline + 1} is "
                f"mined; the chain is at block {latest}"
            )
        receipt = self.chain.transact(self.contract.functions.finalize(state.id))
        return _round_outcome(
            self.receipt_event(receipt, self.ROUND_FINALIZED), int(receipt["blockNumber"]), tx_hash(receipt)
        )

    def claim_evaluator(self, round_id: int, seat: int | None = None) -> SettleResult:
        """Settles an evaluator seat of an ended round (default: this account's); anyone may settle any seat."""
        self.settle_inflight()
        state = self.round(round_id)
        if not state.ended:
            raise InvalidRequest(f"round #{state.id} has not ended (phase: {state.phase(self.latest_block())})")
        if seat is None:
            seat = self.seat_of(state.id)
            if seat is None:
                raise InvalidRequest(f"{self.chain.address} has no seat on the panel of round #{state.id}")
        if not 0 <= seat < state.panel_size:
            raise InvalidRequest(f"round #{state.id} has {state.panel_size} panel seats; there is no seat {seat}")
        if state.evaluator_settled(seat):
            raise InvalidRequest(f"seat {seat} of round #{state.id} is already settled")
        receipt = self.chain.transact(self.contract.functions.claimEvaluator(state.id, seat))
        args = self.receipt_event(receipt, self.SETTLED)
        return SettleResult(state.id, args["member"], int(args["reward"]), int(args["penalty"]), tx_hash(receipt))

    # ------------------------------------------------------------ trainers

    def commit_delta(self, round_id: int, delta_cid: str, bond: int | None = None) -> CommitResult:
        """Commits `delta_cid` with a fresh salt (stored on disk before sending), locking `bond` wei of TRAINER stake
        (default: all of the unlocked TRAINER stake; `trainer_bond` refuses a bond below the round's minimum
        `trainerBond` or above the free stake). In a full round the bond must be above the smallest committed one,
        whose slot it takes (`slot_for_bond` refuses otherwise, nothing sent). A trainer displaced earlier in the
        round commits again with a fresh salt (its old commitment can never be revealed).
        The slot weighs and earns in proportion to its bond: in the judgement's median and majority, in the reward
        pool's split, and in what it loses as an outlier."""
        delta_cid = cid_from_chain(cid_to_chain(delta_cid))  # canonical form; a malformed CID is refused first
        self.settle_inflight()
        account = self.chain.address
        state = self.round(round_id)
        latest = self.latest_block()
        if state.status != "Training" or latest + 1 > state.train_commit_deadline:
            raise InvalidRequest(
                f"the trainers' commit window of round #{state.id} is closed (phase: {state.phase(latest)})"
            )
        if self.trainer_slot(state) is not None:
            raise InvalidRequest(
                f"{account} already committed a delta in round #{state.id}: reveal it from block "
                f"{state.train_commit_deadline + 1}"
            )
        bond = self.trainer_bond(state, bond)
        self.slot_for_bond(state, bond)
        if self.trainer_displaced(state):
            # Its commitment was overwritten and can never be revealed: commit again with a fresh salt.
            self.salts.discard(self.salt_key(DELTA, state.id))
        return self.commit_salted(
            DELTA,
            state.id,
            delta_cid,
            lambda commitment: self.contract.functions.commitDelta(state.id, commitment, bond),
            (state.train_commit_deadline, state.train_reveal_deadline),
        )

    def reveal_delta(self, round_id: int) -> str:
        """Reveals this trainer's committed delta from its stored salt; returns the tx hash."""
        self.settle_inflight()
        account = self.chain.address
        state = self.round(round_id)
        latest = self.latest_block()
        if (
            state.status != "Training"
            or latest <= state.train_commit_deadline
            or latest + 1 > state.train_reveal_deadline
        ):
            raise InvalidRequest(
                f"the trainers' reveal window of round #{state.id} is not open "
                f"(phase: {state.phase(latest)}; it runs from block {state.train_commit_deadline + 1} "
                f"to {state.train_reveal_deadline})"
            )
        if self.trainer_slot(state) is None:
            raise InvalidRequest(f"{account} has no delta commitment in round #{state.id} to reveal")
        if any(delta.trainer == account for delta in self.deltas(state.id)):
            raise InvalidRequest(f"{account} already revealed its delta in round #{state.id}")
        stored = self.revealable_salt(DELTA, state.id, f"delta commitment in round #{state.id}")
        receipt = self.chain.transact(
            self.contract.functions.revealDelta(state.id, cid_to_chain(stored.value), stored.salt)
        )
        return tx_hash(receipt)

    def claim_trainer(self, round_id: int) -> SettleResult:
        """Settles this trainer's seat of an ended round: bond unlocked, plus its reward if accepted (its bond's share
        of the round's reward pool)."""
        self.settle_inflight()
        account = self.chain.address
        state = self.round(round_id)
        if not state.ended:
            raise InvalidRequest(f"round #{state.id} has not ended (phase: {state.phase(self.latest_block())})")
        slot = self.trainer_slot(state)
        if slot is None:
            raise InvalidRequest(f"{account} did not train in round #{state.id}")
        if state.trainer_paid(slot):
            raise InvalidRequest(f"{account}'s seat in round #{state.id} is already settled")
        delta = next((i for i, revealed in enumerate(self.deltas(state.id)) if revealed.trainer == account), None)
        accepted = state.status == "Finalized" and delta is not None and state.delta_accepted(delta)
        released = state.status == "Failed" and delta is not None
        if not (accepted or released):
            why = "it did not reveal" if delta is None else "its delta was rejected"
            raise InvalidRequest(
                f"nothing to claim for {account} in round #{state.id}: {why}, and its bond was settled by finalize"
            )
        receipt = self.chain.transact(self.contract.functions.claimTrainer(state.id))
        args = self.receipt_event(receipt, self.TRAINER_SETTLED)
        return SettleResult(state.id, account, int(args["reward"]), 0, tx_hash(receipt))

    # ------------------------------------------------------------ evaluators

    def commit_fingerprints(self, round_id: int, fingerprints: Sequence[Sequence[int]]) -> CommitResult:
        """Commits one fingerprint of K int32 per revealed delta, with a fresh salt stored on disk first."""
        return self.commit_vote(round_id, fingerprints)

    def reveal_fingerprints(self, round_id: int) -> str:
        """Reveals this evaluator's committed fingerprints from its stored salt; returns the tx hash."""
        return self.reveal_vote(round_id)[1]

    def panel_vote(self, item_id: int) -> PanelVote:
        state = self.round(item_id)
        if state.status != "Evaluating":
            phase = state.phase(self.latest_block())
            raise InvalidRequest(f"round #{state.id} is not being evaluated (phase: {phase})")
        seat = self.seat_of(state.id)
        if seat is None:
            raise InvalidRequest(f"{self.chain.address} is not on the evaluator panel of round #{state.id}")
        return PanelVote(
            f"fingerprints in round #{state.id}",
            seat,
            state.eval_commit_deadline,
            state.eval_reveal_deadline,
            state.evaluator_revealed(seat),
            lambda: bool(self.evaluators_committed(state, self.chain.address)),
            state,
        )

    def checked_vote(self, vote: PanelVote, value: Any) -> list[list[int]]:
        return check_fingerprints(value, vote.item.delta_count)

    # ------------------------------------------------------------ internals

    def commitment_for(self, kind: str, value: Any, salt: bytes, account: str) -> bytes:
        if kind == DELTA:
            return bytes(self.contract.functions.deltaCommitmentFor(cid_to_chain(value), salt, account).call())
        return bytes(self.contract.functions.fingerprintCommitmentFor(value, salt, account).call())

    def _finalized_log(self, state: RoundState):
        """`RoundFinalized` of an ended round: emitted by the draw (too few deltas) or by finalize."""
        if not state.ended:
            return None
        if state.new_version:
            block = int(self.models.functions.getVersion(state.new_version).call()[2])  # registeredBlock
            start, end = block, block
        else:
            start = state.panel_seed_block + 1 if state.panel_size == 0 else state.eval_commit_deadline + 1
            end = self.latest_block()
        logs = self.logs(self.ROUND_FINALIZED, {"round": state.id}, start, end, first=True)
        return logs[0] if logs else None


def _snake_case(name: str) -> str:
    """`getRound`'s field names as `RoundState`'s: "trainCommitDeadline" -> "train_commit_deadline"."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _round_outcome(args: dict, block: int, tx: str) -> RoundOutcome:
    return RoundOutcome(
        ROUND_STATUSES[args["status"]],
        int(args["acceptedMask"]),
        int(args["newVersion"]),
        int(args["trainerRewardPool"]),
        block,
        tx,
    )
