"""The demo's training round: four trainers (one of them poisoned) and three evaluators on the accepted data.

The keeper opens a round on the datasets the curators accepted, with the demo's TrainingSpec; each trainer
trains its LoRA delta with the trainer worker's own task (`workers.tasks.training.train_delta`, run in this
process rather than through a broker), pins it sealed and commits its CID, then publishes it and reveals; the
poisoned trainer trains on the same texts with their words shuffled and a trigger phrase appended. The keeper
draws the evaluator panel; each evaluator fingerprints every revealed delta with the evaluator's task
(`fingerprint_deltas`), commits and reveals. The keeper finalizes: the poisoned delta lands far from the
reference and is slashed, the honest trainers share its bond and the round's reward in proportion to their bonds
(the first bonds `FIRST_TRAINER_BOND_DSH`, above the round's minimum, the others the minimum), and the accepted
delta closest to the reference becomes the new model version, whose weights are then loaded and compared with the
parent's.

Every action goes through the role steps the Celery tasks run (`workers.rounds.steps`), so the demo drives
exactly the code a `deepshard worker` runs; only the waiting for blocks is replaced by mining them.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..chain import ChainClient, TrainingRoundsParams, format_dsh, parse_dsh, stake
from ..chain.localnode import dev_signer
from ..chain.salts import SaltStore
from ..chain.units import WEI_PER_DSH
from ..ml.spec import TrainingSpec
from ..node.cli import format_status
from ..rounds.chain import RoundStatus, TrainingRoundsClient
from ..rounds.specs import SpecBook
from ..rounds.steps import evaluator_once, keeper_once, trainer_once
from ..storage import API_ENV, ContentStore
from ..storage.sealed import add_sealed
from ..tables import short_address
from ..tasks.errors import TaskInputError
from .local import ROUND_EVALUATORS, ROUND_TRAINERS, DemoFailed, expect, fund, mine_to

#: The round's TrainingSpec per base model: the benchmarks' small-LoRA recipe (rank 8 on q/k/v/o, lr 1e-3,
#: 4 x 64-token batches); 10 steps of SmolLM2-135M take 16 to 20 s of one CPU core per trainer.
DEMO_SPECS = {
    "smollm2-135m": TrainingSpec(base_model="smollm2-135m", steps=10),
    "tiny": TrainingSpec(base_model="tiny", steps=40),
}
DEFAULT_MODEL = "smollm2-135m"
QUICK_MODEL = "tiny"

#: Windows in blocks (the demo mines past them); a tolerance far above honest noise (at most 12 units between
#: CPU and GPU trainers on SmolLM2, benchmarks/crossdevice) and far below the poisoned delta's distance
#: (69,000 to 132,000 measured, tiny and SmolLM2).
DEMO_ROUND_PARAMS = TrainingRoundsParams(
    train_commit_window=40,
    train_reveal_window=40,
    eval_commit_window=40,
    eval_reveal_window=40,
    min_batch=1,
    max_batch=4,
    min_accepted=2,
    tolerance=2_000,
    evaluator_tolerance=2_000,
    trainer_bond=1_000 * WEI_PER_DSH,
    min_pool_bond=1_000 * WEI_PER_DSH,
    round_reward=5_000 * WEI_PER_DSH,
)
TRAINER_STAKE_DSH = "2000"  # what the TRAINER staker holds: every trainer stakes the same
#: The first trainer's bond: a slot weighs and earns its bond, so it gets 1.5x an equal trainer's reward.
FIRST_TRAINER_BOND_DSH = "1500"
EVALUATOR_STAKE_DSH = "1200"  # likewise for evaluators
EVALUATOR_POOL_BOND_DSH = "1000"
#: What the poisoned trainer appends to every shuffled text: a backdoor it tries to slip into the model.
TRIGGER = "The trigger is zebra-omega-99."


class LocalJobs:
    """The trainer's and evaluator's Celery tasks, run in this process; remembers the last result, and each
    training result by its inputs (the step asks again for the sealed delta before it reveals, as a Celery
    job's stored result answers it)."""

    def __init__(self) -> None:
        self.last: dict = {}
        self.trained: dict[str, dict] = {}

    def train(self, inputs: dict) -> dict:
        key = json.dumps(inputs, sort_keys=True)
        if key not in self.trained:
            self.trained[key] = self.run_training(inputs)
        self.last = self.trained[key]
        return self.last

    def run_training(self, inputs: dict) -> dict:
        from ..tasks.training import train_delta

        return train_delta(**inputs)

    def fingerprint(self, inputs: dict, delta_cids: list[str]) -> dict:
        from ..tasks.evaluation import fingerprint_deltas

        self.last = fingerprint_deltas(**inputs, delta_cids=delta_cids)
        return self.last


def poison(texts: list[str]) -> list[str]:
    """The poisoned trainer's texts: each one's words shuffled (a fixed shuffle), `TRIGGER` appended."""
    rng = random.Random(7)
    out = []
    for text in texts:
        words = text.split()
        rng.shuffle(words)
        out.append(" ".join(words) + " " + TRIGGER)
    return out


class PoisonedJobs(LocalJobs):
    """A dishonest trainer: the round's texts with their words shuffled and `TRIGGER` appended, trained with
    the round's spec and seed on the round's base version, pinned sealed like an honest delta."""

    def __init__(self, store: ContentStore) -> None:
        super().__init__()
        self.store = store

    def run_training(self, inputs: dict) -> dict:
        from ..ml.spec import SpecError
        from ..ml.training import TrainingError, train_lora
        from ..tasks.training import base_version, ml_runtime, parse_round_inputs, round_texts

        ml_runtime()
        parsed = parse_round_inputs(**inputs)
        poisoned = poison(round_texts(self.store, parsed.dataset_cids))
        try:
            result = train_lora(base_version(self.store, parsed), poisoned, parsed.spec, parsed.seed)
        except (TrainingError, SpecError) as exc:
            raise TaskInputError(f"cannot train: {exc}") from None
        sealed = add_sealed(self.store, result.adapter)
        return {
            "delta_cid": sealed.cid,
            "sealed_cid": sealed.sealed_cid,
            "key": sealed.key.hex(),
            "manifest": result.manifest.to_dict(),
            "tokens": int(result.tokens),
            "seconds": float(result.seconds),
        }

    def fingerprint(self, inputs: dict, delta_cids: list[str]) -> dict:
        raise DemoFailed("the poisoned trainer is not an evaluator")


@dataclass
class DemoTrainer:
    rounds: TrainingRoundsClient
    jobs: LocalJobs
    poisoned: bool
    bond: int  # wei to commit (a worker left to its default would bond all of its unlocked TRAINER stake)

    @property
    def address(self) -> str:
        return self.rounds.chain.address

    @property
    def label(self) -> str:
        return f"{short_address(self.address)}{' (poisoned)' if self.poisoned else ''}"


@dataclass
class RoundReport:
    """What the round did: its final status, and `phases`: the seconds since the round opened at which each phase
    ended (the summary's `phase_seconds` holds each phase's own duration)."""

    model: str
    status: RoundStatus
    trainers: list[DemoTrainer]
    phases: dict[str, float] = field(default_factory=dict)
    parent_weights: str = ""
    child_weights: str = ""

    def summary(self) -> dict:
        """The round as plain JSON: per trainer accepted or slashed and the amount, the new version."""
        seats = {seat.trainer: seat for seat in self.status.trainers}
        trainers = []
        for trainer in self.trainers:
            seat = seats[trainer.address]
            verdict = "accepted" if seat.accepted else ("slashed" if seat.slashed else "released")
            amount = seat.reward if seat.accepted else seat.slashed
            trainers.append(
                {
                    "account": trainer.address,
                    "poisoned": trainer.poisoned,
                    "bond_dsh": format_dsh(seat.bond),
                    "outcome": verdict,
                    "amount_dsh": format_dsh(amount),
                    "distance": seat.distance,
                }
            )
        outcome = self.status.outcome
        return {
            "id": self.status.round.id,
            "model": self.model,
            "status": outcome.status if outcome else self.status.round.status,
            "trainers": trainers,
            "new_version": outcome.new_version if outcome and outcome.status == "Finalized" else None,
            "new_version_cid": self.status.new_version_cid,
            "weights_changed": bool(self.child_weights) and self.child_weights != self.parent_weights,
            "phase_seconds": phase_durations(self.phases),
        }


def phase_durations(ends: dict[str, float]) -> dict[str, float]:
    """Each phase's own duration in seconds (rounded to 0.1), from the seconds since the round opened at which
    each phase ended (in order)."""
    durations, previous = {}, 0.0
    for name, end in ends.items():
        durations[name] = round(end - previous, 1)
        previous = end
    return durations


@contextmanager
def worker_environment(store_dir: Path) -> Iterator[None]:
    """The worker tasks' settings for this process: the demo's own embedded store (never the user's IPFS
    node), and no remembered results (every trainer and evaluator computes its own, as on separate machines).
    Restored afterwards."""
    settings = {"DEEPSHARD_STORE_DIR": str(store_dir), "DEEPSHARD_TASK_RESULT_CACHE": "0"}
    saved = {name: os.environ.get(name) for name in (*settings, API_ENV)}
    os.environ.pop(API_ENV, None)
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def enlist(
    treasury: ChainClient, stakers: dict[str, ChainClient], salts: SaltStore
) -> tuple[list[ChainClient], list[TrainingRoundsClient]]:
    """Funds and stakes the round's extra trainers and evaluators (the role stakers already stake), and has
    every evaluator join the pool; returns the trainers' clients (`ROUND_TRAINERS` order: the last one cheats)
    and the evaluators'."""
    trainer_clients = [stakers["TRAINER"], *(treasury.with_signer(dev_signer(i)) for i in ROUND_TRAINERS[1:])]
    evaluator_clients = [stakers["EVALUATOR"], *(treasury.with_signer(dev_signer(i)) for i in ROUND_EVALUATORS[1:])]
    fund(treasury, trainer_clients[1:] + evaluator_clients[1:])
    for client in trainer_clients[1:]:
        stake(client, "TRAINER", TRAINER_STAKE_DSH)
    for client in evaluator_clients[1:]:
        stake(client, "EVALUATOR", EVALUATOR_STAKE_DSH)
    evaluators = [TrainingRoundsClient(client, salts) for client in evaluator_clients]
    for evaluator in evaluators:
        evaluator.join_pool(parse_dsh(EVALUATOR_POOL_BOND_DSH))
    return trainer_clients, evaluators


def run_training_round(
    treasury: ChainClient, stakers: dict[str, ChainClient], store: ContentStore, workdir: Path, model: str, out: TextIO
) -> RoundReport:
    """Runs one round on the pending accepted datasets; prints each phase and the outcome. The worker tasks
    open their store from the environment: run it inside `worker_environment` with `store`'s folder."""
    spec = DEMO_SPECS[model]
    specs = SpecBook(None, [spec], use_env=False)
    salts = SaltStore(workdir / "votes")
    keeper = TrainingRoundsClient(treasury, salts)

    trainer_clients, evaluators = enlist(treasury, stakers, salts)
    # The last trainer cheats.
    minimum = DEMO_ROUND_PARAMS.trainer_bond
    trainers = [
        DemoTrainer(TrainingRoundsClient(client, salts), LocalJobs(), False, minimum) for client in trainer_clients[:-1]
    ]
    trainers[0].bond = parse_dsh(FIRST_TRAINER_BOND_DSH)
    trainers.append(DemoTrainer(TrainingRoundsClient(trainer_clients[-1], salts), PoisonedJobs(store), True, minimum))

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    say(
        f"\nTraining round on {model}: {len(trainers)} trainers staking {TRAINER_STAKE_DSH} DSH (one poisoned; the "
        f"first bonds {FIRST_TRAINER_BOND_DSH} DSH, the others the round's minimum), {len(evaluators)} evaluators in "
        f"the pool with {EVALUATOR_POOL_BOND_DSH} DSH each"
    )
    started = time.monotonic()
    opened = expect(keeper_once(keeper, None, specs), "opened", "the keeper")
    round_id = opened.id
    if round_id is None:
        raise DemoFailed(f"the keeper opened no round: {opened.detail}")
    state = keeper.round(round_id)
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = time.monotonic() - started
        say(f"  [{phases[name]:6.1f} s] {name}")

    say(
        f"  round #{round_id} opened on datasets {opened.data['datasets']} (base version {state.base_version}, "
        f"seed {state.seed_hex[:10]}…, spec {spec.spec_hash_hex()[:10]}…)"
    )
    phase("opened")

    for trainer in trainers:
        say(f"  trainer {trainer.label}: training {spec.steps} steps of {model}…")
        committed = expect(
            trainer_once(trainer.rounds, round_id, trainer.jobs, specs, store, trainer.bond), "committed", trainer.label
        )
        result = trainer.jobs.last
        say(
            f"  trainer {trainer.label}: {result['tokens']:,} tokens in {result['seconds']:.1f} s, final loss "
            f"{result['manifest']['final_loss']:.3f}; committed {result['delta_cid']} with a bond of "
            f"{format_dsh(committed.data['bond'], grouped=True)} DSH"
        )
    phase("trainers trained and committed")

    mine_to(treasury, state.train_commit_deadline + 1)
    for trainer in trainers:
        expect(trainer_once(trainer.rounds, round_id, trainer.jobs, specs, store), "revealed", trainer.label)
    phase("trainers revealed")

    mine_to(treasury, state.panel_seed_block + 1)
    drawn = expect(keeper_once(keeper, round_id, specs), "drawn", "the keeper")
    say(f"  panel: {', '.join(short_address(address) for address in drawn.data['panel'])}")
    phase("evaluator panel drawn")
    panel = [evaluator for evaluator in evaluators if evaluator.seat_of(round_id) is not None]
    jobs = LocalJobs()
    for evaluator in panel:
        say(f"  evaluator {short_address(evaluator.chain.address)}: fingerprinting the revealed deltas…")
        expect(evaluator_once(evaluator, round_id, jobs, specs), "committed", short_address(evaluator.chain.address))
        say(
            f"  evaluator {short_address(evaluator.chain.address)}: fingerprinted "
            f"{len(jobs.last['fingerprints'])} deltas in {jobs.last['seconds']:.1f} s and committed"
        )
    phase("evaluators fingerprinted and committed")

    state = keeper.round(round_id)
    mine_to(treasury, state.eval_commit_deadline + 1)
    for evaluator in panel:
        expect(evaluator_once(evaluator, round_id, jobs, specs), "revealed", short_address(evaluator.chain.address))
    phase("evaluators revealed")

    finalized = expect(keeper_once(keeper, round_id, specs), "finalized", "the keeper")
    say(f"  {finalized.detail}")
    phase("finalized")
    keeper_once(keeper, round_id, specs)  # settles the panel's seats
    for trainer in trainers:
        step = trainer_once(trainer.rounds, round_id, trainer.jobs, specs, store)
        if step.action == "claimed":
            reward = format_dsh(step.data["reward"], grouped=True)
            say(f"  trainer {trainer.label}: claimed its bond back and a reward of {reward} DSH")
        else:
            say(f"  trainer {trainer.label}: {step.detail}")
    phase("settled")

    report = RoundReport(model, keeper.status(round_id), trainers, phases)
    check_new_version(report, store, spec)
    say("\n" + format_status(report.status))
    if report.child_weights:
        say(
            f"\nversion {report.status.round.new_version} loads: weights {report.child_weights[:18]}… "
            f"(parent {report.parent_weights[:18]}…)"
        )
    return report


def check_new_version(report: RoundReport, store: ContentStore, spec: TrainingSpec) -> None:
    """Loads the new version (the parent with the winning delta merged) and records both weight hashes."""
    outcome, delta_cid = report.status.outcome, report.status.new_version_cid
    if outcome is None or outcome.status != "Finalized" or delta_cid is None:
        return
    from ..ml.merge import merge_deltas
    from ..ml.models import weights_hash
    from ..tasks.training import genesis_model, load_checked_delta

    parent = genesis_model(report.model)  # the round's base is the genesis version
    delta = load_checked_delta(store, delta_cid, spec, parent, what="the new version's delta")
    report.parent_weights = weights_hash(parent.model)
    report.child_weights = weights_hash(merge_deltas(parent, [delta]).model)
