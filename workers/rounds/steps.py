"""One step of a role in a training round, decided from the chain's state: what the Celery tasks run.

    trainer_once(rounds, round_id, jobs, specs)   train (through `jobs`), commit with a bond ($DEEPSHARD_TRAINER_BOND,
                                                  default all the unlocked TRAINER stake), publish the delta, reveal,
                                                  draw the panel if the keeper has not, claim
    evaluator_once(rounds, round_id, jobs, specs) fingerprint the revealed deltas, commit, reveal, settle
    keeper_once(rounds, round_id, specs)          draw the panel, finalize, settle the panel's seats, open rounds

Each reads the chain and does at most the one action the phase calls for (every write checks again, see
`workers.rounds.chain`), so running a step twice, or on two workers at once, sends nothing twice. A step
returns what it did and when there is something to do again: a block (`wake_at_block`), or a few seconds
(`poll_after`) while an ML job runs. The ML work is behind `jobs` (`Jobs`): `train` and `fingerprint`
return the job's result, or None while it is still running, so a step never blocks on it.

A trainer's delta stays out of readable storage until its commit window has closed: the training job pins it
sealed (`workers.storage.sealed`) and returns its plaintext CID, which the step commits; in the reveal window the
step opens the sealed delta, checks it against the committed CID, pins it, and only then reveals (see README.md,
"Sealed deltas").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

from ..chain import InvalidRequest, TransactionReverted, format_dsh, parse_dsh
from ..chain.module import Step, raced
from ..config import env_number
from ..protocol.constants import INT32_MAX, K
from ..storage import ContentStore, FileTooLarge, IntegrityError, InvalidCid, NotFound, UnsupportedContent, open_store
from ..storage.sealed import Sealed, SealRejected, publish_sealed
from .chain import DELTA, FINGERPRINTS, RoundState, SettleResult, TrainingRoundsClient, check_fingerprints
from .specs import SpecBook

#: Seconds between checks on a running ML job.
JOB_POLL = 2.0
#: The bond an honest trainer commits per round, in DSH ("1500", "1,500.5"); unset: all its unlocked TRAINER stake.
TRAINER_BOND_ENV = "DEEPSHARD_TRAINER_BOND"


def configured_trainer_bond() -> int | None:
    """`$DEEPSHARD_TRAINER_BOND` in wei, None when unset (commit all of the unlocked TRAINER stake). A bond weighs
    and earns in proportion to its size, and an outlier loses its slash rate of it. `InvalidRequest` (one line)
    for a value that is not a positive DSH amount."""
    return env_number(TRAINER_BOND_ENV, 0, _dsh_wei, unit="DSH (e.g. 1500)", error=InvalidRequest) or None


def _dsh_wei(text: str) -> int:
    """`parse_dsh` for `env_number`, which words the refusal itself from a ValueError."""
    try:
        return parse_dsh(text)
    except InvalidRequest:
        raise ValueError(text) from None


class Jobs(Protocol):
    def train(self, inputs: dict) -> dict | None:
        """`train_delta(**inputs)`'s result ({"delta_cid", "sealed_cid", "key", ...}), or None while it runs."""

    def fingerprint(self, inputs: dict, delta_cids: list[str]) -> dict | None:
        """`fingerprint_deltas(**inputs, delta_cids=...)`'s result ({"fingerprints": [[K ints], ...]}), or None."""


class JobFailed(Exception):
    """An ML job ended in failure: the step cannot go on without it (one message, rebuilt by Celery)."""


class DeltaUnpublishable(JobFailed):
    """The committed delta cannot be published from its training job's result: the sealed delta is missing, does
    not open under its key, or opens to another CID than the committed one. Nothing is revealed."""


def _inputs(rounds: TrainingRoundsClient, state: RoundState, specs: SpecBook) -> dict:
    spec = specs.resolve(state.spec_hash)
    return rounds.training_inputs(
        state.id,
        spec.canonical_json().decode(),
        spec.base_model,
        lambda spec_hash: specs.resolve(spec_hash).canonical_json().decode(),
    )


#: What an evaluator reports for a delta it cannot fingerprint (missing, malformed, rejected by `load_delta`):
#: every coordinate as far as int32 goes, so the delta lands far from the reference and is rejected.
UNUSABLE_FINGERPRINT = [INT32_MAX] * K


def fingerprints_of(result: dict, deltas: int) -> tuple[list[list[int]], list[str]]:
    """The fingerprints of a `fingerprint_deltas` result, `UNUSABLE_FINGERPRINT` for each delta it could not
    fingerprint, and the reasons given for those."""
    rows = list(result.get("fingerprints") or [])
    errors = list(result.get("errors") or [None] * len(rows))
    reasons = [
        f"delta {i}: {errors[i] if i < len(errors) and errors[i] else 'no fingerprint'}"
        for i, row in enumerate(rows)
        if row is None
    ]
    rows = [list(UNUSABLE_FINGERPRINT) if row is None else row for row in rows]
    return check_fingerprints(rows, deltas), reasons


# ---------------------------------------------------------------- trainer


def trainer_once(
    rounds: TrainingRoundsClient,
    round_id: int,
    jobs: Jobs,
    specs: SpecBook,
    store: ContentStore | None = None,
    bond: int | None = None,
) -> Step:
    """The next step of this account as a trainer in `round_id`. `store`: where the training job pinned the sealed
    delta and where the plaintext is published before the reveal (default: `open_store()`, the configured one).
    `bond`: wei to commit (default `configured_trainer_bond()`, else all the unlocked TRAINER stake); a bond below the
    round's minimum or above the free TRAINER stake ends the step before training ("done", the reason in one line),
    as does a full round whose smallest committed bond is not below `bond` (a larger bond takes that slot). A trainer
    displaced by a larger bond says so and stops for the round, unless its bond is now above the smallest: then it
    commits its trained delta again with a fresh salt."""
    account = rounds.chain.address
    rounds.settle_inflight()  # a transaction sent by an interrupted earlier step lands before anything is read
    state = rounds.round(round_id)
    latest = rounds.latest_block()
    phase = state.phase(latest)

    def step(action: str, detail: str, wake: int | None = None, poll: float | None = None, **data) -> Step:
        return Step("trainer", state.id, action, detail, wake, poll, data)

    slot = rounds.trainer_slot(state)
    if state.status == "Training":
        if phase == "trainer commit":
            if slot is not None:
                return step("waiting", "committed; the reveal window is not open yet", state.train_commit_deadline + 1)
            if bond is None:
                bond = configured_trainer_bond()  # a malformed setting raises: it is the operator's to fix
            try:
                bond = rounds.trainer_bond(state, bond)
            except InvalidRequest as exc:
                return step("done", f"cannot train: {exc}")
            stored = rounds.stored_salt(DELTA, state.id)
            # A stored commitment without a slot: an interrupted commit, or one a larger bond displaced.
            displaced = stored is not None and rounds.trainer_displaced(state)
            try:
                rounds.slot_for_bond(state, bond)  # a full round takes only a bond above its smallest
            except InvalidRequest as exc:
                if displaced:
                    return step("done", f"{account} was displaced by a larger bond (its bond is unlocked); {exc}")
                return step("done", str(exc))
            if stored is not None:
                # Displaced: commit the trained delta again (commit_delta draws a fresh salt). Interrupted: finish
                # the commit with its salt and delta (it may still land).
                rounds.commit_delta(state.id, stored.value, bond)
                return step(
                    "committed",
                    f"committed {stored.value} again, displaced earlier, with a bond of {format_dsh(bond)} DSH"
                    if displaced
                    else f"resumed the stored commitment to {stored.value}",
                    state.train_commit_deadline + 1,
                    delta_cid=stored.value,
                    bond=bond,
                )
            result = jobs.train(_inputs(rounds, state, specs))
            if result is None:
                return step("training", "the delta is being trained", poll=JOB_POLL)
            delta_cid = str(result["delta_cid"])
            if rounds.latest_block() + 1 > state.train_commit_deadline:
                return step(
                    "done",
                    f"trained {delta_cid} too late: the commit window closed at block {state.train_commit_deadline}",
                    delta_cid=delta_cid,
                )
            try:  # other bonds may have filled the round while it trained
                rounds.slot_for_bond(rounds.round(state.id), bond)
            except InvalidRequest as exc:
                return step("done", f"trained {delta_cid} but cannot commit: {exc}", delta_cid=delta_cid)
            rounds.commit_delta(state.id, delta_cid, bond)
            return step(
                "committed",
                f"committed delta {delta_cid} with a bond of {format_dsh(bond)} DSH",
                state.train_commit_deadline + 1,
                delta_cid=delta_cid,
                bond=bond,
            )
        if slot is None:
            if rounds.trainer_displaced(state):
                return step(
                    "done", f"{account} was displaced from round #{state.id} by a larger bond (its bond is unlocked)"
                )
            return step("done", f"{account} did not commit in round #{state.id}")
        if phase == "trainer reveal":
            if any(delta.trainer == account for delta in rounds.deltas(state.id)):
                return step("waiting", "revealed; the round is not settled yet", state.next_change(latest))
            stored = rounds.stored_salt(DELTA, state.id)
            if stored is not None:
                if not publish_delta(rounds, state.id, str(stored.value), jobs, specs, store):
                    return step("publishing", "the training job's result is being looked up", poll=JOB_POLL)
            rounds.reveal_delta(state.id)  # without a stored salt: SaltNotFound, one clear error
            return step("revealed", "revealed the committed delta", state.next_change(rounds.latest_block()))
        if phase in DRAW_PHASES:
            # The keeper's job, but a round nobody draws within 256 blocks costs every trainer its penalty: the
            # trainer draws too, at the same first block (whoever lands first draws; the others see it done).
            return _draw_step(rounds, state, step)
        return step("waiting", f"{phase}; the round is not settled yet", state.next_change(latest))

    if slot is None:
        return step("done", f"{account} did not train in round #{state.id}")
    if state.status == "Evaluating":
        return step("waiting", f"{phase}; the round is not settled yet", state.next_change(latest))
    if state.trainer_paid(slot):
        return step("done", f"{phase}; the trainer seat is settled")
    try:
        settled = rounds.claim_trainer(state.id)
    except InvalidRequest as exc:
        return step("done", f"{phase}; {exc}")
    return step("claimed", f"{phase}; bond unlocked, reward {settled.reward} wei", reward=settled.reward)


def publish_delta(
    rounds: TrainingRoundsClient, round_id: int, delta_cid: str, jobs: Jobs, specs: SpecBook, store: ContentStore | None
) -> bool:
    """Pins the committed delta `delta_cid` in `store` (default `open_store()`) from its training job's sealed
    result; False while the job's result is not known yet. A delta already pinned is done at once (a step
    stopped between the pin and the reveal resumes here). DeltaUnpublishable when the result does not give the
    committed delta; the store's transient errors (NodeUnreachable) propagate, to be retried."""
    if store is None:
        with open_store() as configured:
            return publish_delta(rounds, round_id, delta_cid, jobs, specs, configured)
    if store.is_pinned(delta_cid):
        return True
    result = jobs.train(_inputs(rounds, rounds.round(round_id), specs))
    if result is None:
        return False
    try:
        if str(result.get("delta_cid")) != delta_cid:
            raise SealRejected(f"the training job's delta is {result.get('delta_cid')}")
        if "sealed_cid" not in result or "key" not in result:
            raise SealRejected("the training job's result has no sealed delta")
        publish_sealed(store, Sealed.from_parts(delta_cid, result["sealed_cid"], result["key"]))
    except UNPUBLISHABLE as exc:
        raise DeltaUnpublishable(f"cannot publish the committed delta {delta_cid}: {exc}; nothing revealed") from None
    return True


#: What the training job's result or the store's content can be wrong with (the rest is the store's failing).
UNPUBLISHABLE = (IntegrityError, NotFound, InvalidCid, FileTooLarge, UnsupportedContent)


# ---------------------------------------------------------------- evaluator


def evaluator_once(rounds: TrainingRoundsClient, round_id: int, jobs: Jobs, specs: SpecBook) -> Step:
    """The next step of this account as an evaluator in `round_id`."""
    account = rounds.chain.address
    rounds.settle_inflight()
    state = rounds.round(round_id)
    latest = rounds.latest_block()
    phase = state.phase(latest)

    def step(action: str, detail: str, wake: int | None = None, poll: float | None = None, **data) -> Step:
        return Step("evaluator", state.id, action, detail, wake, poll, data)

    if state.status == "Training":
        if rounds.pool_bond() == 0:
            return step("done", f"{account} is not in the evaluator pool")
        return step("waiting", f"{phase}; the panel is not drawn yet", state.next_change(latest))
    seat = rounds.seat_of(state.id)
    if seat is None:
        return step("done", f"{account} is not on the panel of round #{state.id}")

    if state.status == "Evaluating":
        committed = bool(rounds.evaluators_committed(state, account))
        if phase == "evaluator commit":
            if committed:
                return step("waiting", "committed; the reveal window is not open yet", state.eval_commit_deadline + 1)
            stored = rounds.stored_salt(FINGERPRINTS, state.id)
            if stored is not None:
                rounds.commit_fingerprints(state.id, stored.value)
                return step("committed", "resumed the stored fingerprints", state.eval_commit_deadline + 1)
            delta_cids = [delta.cid for delta in rounds.deltas(state.id)]
            result = jobs.fingerprint(_inputs(rounds, state, specs), delta_cids)
            if result is None:
                return step("fingerprinting", f"{len(delta_cids)} deltas are being fingerprinted", poll=JOB_POLL)
            fingerprints, unusable = fingerprints_of(result, state.delta_count)
            if rounds.latest_block() + 1 > state.eval_commit_deadline:
                return step(
                    "done", f"fingerprinted too late: the commit window closed at block {state.eval_commit_deadline}"
                )
            rounds.commit_fingerprints(state.id, fingerprints)
            detail = f"committed {len(fingerprints)} fingerprints"
            if unusable:
                detail += f" ({len(unusable)} unusable deltas reported as outliers: {'; '.join(unusable)})"
            return step("committed", detail, state.eval_commit_deadline + 1, fingerprints=fingerprints)
        if phase == "evaluator reveal" and committed and not state.evaluator_revealed(seat):
            rounds.reveal_fingerprints(state.id)
            return step("revealed", "revealed the committed fingerprints", state.next_change(rounds.latest_block()))
        return step("waiting", f"{phase}; the round is not settled yet", state.next_change(latest))

    if state.evaluator_settled(seat):
        return step("done", f"{phase}; seat {seat} is settled")
    # The keeper settles every seat too: whoever lands first settles it.
    settled = raced(
        lambda: rounds.claim_evaluator(state.id, seat), lambda: rounds.round(state.id).evaluator_settled(seat)
    )
    if settled is None:
        return step("done", f"{phase}; seat {seat} was settled by someone else")
    return step(
        "claimed",
        f"{phase}; seat {seat} settled: reward {settled.reward} wei, penalty {settled.penalty} wei",
        reward=settled.reward,
        penalty=settled.penalty,
    )


# ---------------------------------------------------------------- keeper


def keeper_once(rounds: TrainingRoundsClient, round_id: int | None, specs: SpecBook) -> Step:
    """Advances `round_id` (default: the current round) one phase when due; once it has ended, settles its
    evaluator seats and opens the next round if enough accepted data is pending and a spec is configured."""
    rounds.settle_inflight()
    state = rounds.round(round_id) if round_id is not None else rounds.current_round()
    if state is None:
        return open_if_ready(rounds, specs)
    latest = rounds.latest_block()
    phase = state.phase(latest)

    def step(action: str, detail: str, wake: int | None = None, **data) -> Step:
        return Step("keeper", state.id, action, detail, wake, None, data)

    if state.status == "Training":
        if phase not in DRAW_PHASES:
            return step("waiting", phase, state.panel_seed_block + 1)
        return _draw_step(rounds, state, step)
    if state.status == "Evaluating":
        if phase != "ready to finalize":
            return step("waiting", phase, state.next_change(latest))
        outcome = raced(lambda: rounds.finalize(state.id), lambda: rounds.round(state.id).ended)
        if outcome is None:
            return step("waiting", "finalized by someone else", rounds.latest_block())
        detail = (
            f"round #{state.id} {outcome.status}: accepted deltas {bin(outcome.accepted_mask)}, "
            f"new version {outcome.new_version}"
            if outcome.status == "Finalized"
            else f"round #{state.id} failed"
        )
        return step("finalized", detail, rounds.latest_block(), status=outcome.status, new_version=outcome.new_version)

    settled = []
    for seat in range(state.panel_size):
        if not state.evaluator_settled(seat):
            result = _settle_seat(rounds, state.id, seat)
            if result is not None:
                settled.append(
                    {"seat": seat, "evaluator": result.account, "reward": result.reward, "penalty": result.penalty}
                )
    if settled:
        return step(
            "settled",
            f"settled {len(settled)} evaluator seats of round #{state.id}",
            rounds.latest_block(),
            seats=settled,
        )
    if rounds.round_count() != state.id:
        return step("done", f"round #{state.id} {state.status.lower()}; every seat is settled")
    opened = open_if_ready(rounds, specs)
    return dataclasses.replace(opened, detail=f"round #{state.id} {state.status.lower()}; {opened.detail}")


#: The phases in which `drawEvaluators` goes through: it draws, or ends a round that no panel can judge (too few
#: deltas, or a seed block out of blockhash's reach; the next round opens only after it).
DRAW_PHASES = ("panel ready to draw", "panel seed expired")


def _draw_step(rounds: TrainingRoundsClient, state: RoundState, step: Callable[..., Step]) -> Step:
    """Draws the panel of `state` (in a `DRAW_PHASES` phase), unless someone else does first; `step(action, detail,
    wake, **data)` builds the result of the role running it (the keeper, or a trainer falling back)."""
    drawn = raced(lambda: rounds.draw_evaluators(state.id), lambda: rounds.round(state.id).status != "Training")
    after = rounds.round(state.id)
    if drawn is None:
        return step("waiting", "the panel was drawn by someone else", after.next_change(rounds.latest_block()))
    if drawn.result == "drawn":
        return step(
            "drawn",
            f"{len(drawn.panel)} evaluators drawn; commit until block {drawn.commit_deadline}",
            after.next_change(rounds.latest_block()),
            panel=drawn.panel,
        )
    if drawn.result == "expired":
        return step(
            "expired",
            f"round #{state.id} failed: nobody drew its panel within 256 blocks of its seed block "
            f"{state.panel_seed_block}; every trainer lost {after.outlier_slash_bps / 100:g}% of its bond",
            rounds.latest_block() + 1,
            outlier_slash_bps=after.outlier_slash_bps,
        )
    return step(
        "failed",
        f"round #{state.id} failed: {after.delta_count} revealed deltas, fewer than needed",
        rounds.latest_block() + 1,
    )


def _settle_seat(rounds: TrainingRoundsClient, round_id: int, seat: int) -> SettleResult | None:
    """Settles an evaluator seat, unless someone else settles it first (then None)."""
    return raced(lambda: rounds.claim_evaluator(round_id, seat), lambda: rounds.round(round_id).evaluator_settled(seat))


def open_if_ready(rounds: TrainingRoundsClient, specs: SpecBook) -> Step:
    """Opens a round with the configured spec once `minBatch` accepted datasets are pending."""
    spec = specs.configured
    if spec is None:
        return Step("keeper", None, "done", "no TrainingSpec is configured to open rounds with")
    params = rounds.params()
    pending = rounds.pending_datasets()
    if len(pending) < params["minBatch"]:
        return Step(
            "keeper", None, "done", f"{len(pending)} accepted datasets pending, a round needs {params['minBatch']}"
        )
    specs.publish(spec)
    count = rounds.round_count()
    try:
        opened = rounds.open_round(spec.spec_hash(), pending[: params["maxBatch"]])
    except (TransactionReverted, InvalidRequest):
        if rounds.round_count() == count:
            raise
        return Step("keeper", rounds.round_count(), "done", "another keeper opened the round first")
    return Step(
        "keeper",
        opened.round_id,
        "opened",
        f"opened round #{opened.round_id} on datasets {opened.dataset_ids}",
        None,
        None,
        {"datasets": opened.dataset_ids, "seed": opened.seed},
    )
