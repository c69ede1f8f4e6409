"""The training-round flow on a real anvil, through the role steps the Celery tasks run (no ML: training
results and fingerprints are supplied directly): three honest trainers and one poisoned, three evaluators in
the pool (a panel draws 15 votes among them with replacement, so it seats two or three of them).
The poisoned trainer is slashed, the honest ones paid in proportion to their bonds (given, from
$DEEPSHARD_TRAINER_BOND, or all of the unlocked TRAINER stake), a new version registered; steps run twice send
nothing twice; refusals send nothing."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from netkit import DSH, HONEST, POISONED, ROUND_PARAMS, TEST_REDIS_URL, noisy

from workers import cli
from workers.chain import ChainClient, InvalidRequest, LocalSigner
from workers.chain.module import cid_to_chain
from workers.chain.salts import SaltNotFound, SaltStore
from workers.chain.staking import stake
from workers.ml.spec import TrainingSpec
from workers.protocol.constants import BLOCKHASH_HORIZON, MAX_EVALUATORS, MAX_TRAINERS
from workers.protocol.rounds import draw_outcome, trainer_penalty, trainer_reward
from workers.rounds.chain import TrainingRoundsClient
from workers.rounds.specs import SpecBook, SpecUnknown
from workers.rounds.steps import (
    TRAINER_BOND_ENV,
    UNUSABLE_FINGERPRINT,
    DeltaUnpublishable,
    evaluator_once,
    keeper_once,
    publish_delta,
    trainer_once,
)
from workers.storage import ContentStore, NotFound, cid_of_bytes, open_store
from workers.storage.sealed import add_sealed
from workers.tasks.training import fetch_delta_bytes

SPEC = TrainingSpec(base_model="tiny", steps=4)


class Jobs:
    """Stand-in ML jobs: training pins the content `delta_content(name)` sealed in `store`, as `train_delta` does
    (one result per job, as Celery keeps it); fingerprints by delta CID (poisoned ones far away)."""

    def __init__(
        self,
        name: str | None = None,
        poisoned: set[str] = frozenset(),
        seed: int = 0,
        ready: bool = True,
        unusable: set[str] = frozenset(),
        store: ContentStore | None = None,
    ):
        self.name, self.poisoned, self.seed, self.ready, self.unusable = name, poisoned, seed, ready, unusable
        self.store = store
        self.result: dict | None = None
        self.calls: list[tuple[str, dict]] = []

    def train(self, inputs):
        self.calls.append(("train", inputs))
        if not self.ready:
            return None
        if self.result is None:
            assert self.name is not None and self.store is not None, "this stand-in job trains nothing"
            sealed = add_sealed(self.store, delta_content(self.name))
            self.result = {"delta_cid": sealed.cid, "sealed_cid": sealed.sealed_cid, "key": sealed.key.hex()}
        return {**self.result, "manifest": {}}

    def fingerprint(self, inputs, delta_cids):
        self.calls.append(("fingerprint", {**inputs, "delta_cids": delta_cids}))
        if not self.ready:
            return None
        rows = [
            None if cid in self.unusable else noisy(POISONED if cid in self.poisoned else HONEST, self.seed * 7 + d)
            for d, cid in enumerate(delta_cids)
        ]
        return {"fingerprints": rows, "errors": ["rejected: not safetensors" if r is None else None for r in rows]}


def delta_content(name: str) -> bytes:
    return f"delta {name}".encode()


def delta(name: str) -> str:
    return str(cid_of_bytes(delta_content(name)))


def nonce(rounds: TrainingRoundsClient) -> int:
    return rounds.chain.w3.eth.get_transaction_count(rounds.chain.address)


@pytest.fixture(scope="module")
def specs():
    return SpecBook(None, [SPEC], use_env=False)


@pytest.fixture(scope="module")
def store(net):
    """The store every participant of `net` reads and writes: a shared node."""
    with open_store(store_dir=net.store_dir) as opened:
        yield opened


def test_one_poisoned_trainer_of_four_is_slashed_and_the_rest_paid(net, specs, store, monkeypatch):
    datasets = net.accept_datasets(2)
    keeper = net.rounds()
    # The first two bond more than the minimum; the other two stake the minimum and bond all of it by default.
    trainers = [net.trainer(staked=2_000) for _ in range(2)] + [net.trainer() for _ in range(2)]
    evaluators = [net.evaluator() for _ in range(3)]
    names = [f"honest {i}" for i in range(3)] + ["poisoned"]
    cids = [delta(name) for name in names]
    poisoned = trainers[3]

    opened = keeper_once(keeper, None, specs)
    assert opened.action == "opened", opened
    round_id = opened.id
    assert keeper.dataset_ids(round_id) == datasets and keeper.pending_datasets() == []
    state = keeper.round(round_id)
    assert state.spec_hash == SPEC.spec_hash() and state.base_version == 1

    jobs = [Jobs(name, store=store) for name in names]
    # Bonds: 1,500 DSH given to the step, 1,200 from the setting, all of the unlocked stake (1,000) for the other two.
    minimum = ROUND_PARAMS.trainer_bond
    bonds = [1_500 * DSH, 1_200 * DSH, minimum, minimum]
    for i, (trainer, job) in enumerate(zip(trainers, jobs, strict=True)):
        if i == 1:
            monkeypatch.setenv(TRAINER_BOND_ENV, "1,200")
        step = trainer_once(trainer, round_id, job, specs, store, bond=bonds[0] if i == 0 else None)
        monkeypatch.delenv(TRAINER_BOND_ENV, raising=False)
        assert step.action == "committed" and step.wake_at_block == state.train_commit_deadline + 1, step
        assert step.data["bond"] == bonds[i], step
    assert [bond for _, bond in sorted(keeper.trainer_commits(keeper.round(round_id)).values())] == bonds
    inputs = jobs[0].calls[0][1]
    assert inputs == {
        "round_id": round_id,
        "base_model": "tiny",
        "base_delta_cids": [],
        "dataset_manifest_cids": [keeper.manifest_cid(i) for i in datasets],
        "spec_json": SPEC.canonical_json().decode(),
        "round_seed": state.seed_hex,
        "base_delta_specs": [],
    }
    # A second run (a redelivered task) sends nothing and does not train again.
    before = nonce(trainers[0])
    again = trainer_once(trainers[0], round_id, jobs[0], specs, store)
    assert again.action == "waiting" and nonce(trainers[0]) == before and len(jobs[0].calls) == 1

    assert keeper_once(keeper, round_id, specs).action == "waiting"
    # Until the commit deadline the store holds each delta only sealed: its committed CID names nothing.
    assert not any(store.has(cid) for cid in cids)
    net.mine_to(state.train_commit_deadline + 1)
    for trainer, job in zip(trainers, jobs, strict=True):
        assert trainer_once(trainer, round_id, job, specs, store).action == "revealed"
    assert [store.get(cid) for cid in cids] == [delta_content(name) for name in names]  # published before the reveal
    assert trainer_once(trainers[0], round_id, jobs[0], specs, store).action == "waiting"
    assert [(d.cid, d.bond) for d in keeper.deltas(round_id)] == list(zip(cids, bonds, strict=True))

    waiting = keeper_once(keeper, round_id, specs)
    assert waiting.action == "waiting" and waiting.wake_at_block == state.panel_seed_block + 1
    net.mine_to(state.panel_seed_block + 1)
    drawn = keeper_once(keeper, round_id, specs)
    assert drawn.action == "drawn" and set(drawn.data["panel"]) <= {e.chain.address for e in evaluators}
    seated = [next(e for e in evaluators if e.chain.address == member) for member in drawn.data["panel"]]
    assert sum(votes for _, votes in keeper.panel(round_id)) == MAX_EVALUATORS  # one draw = one vote
    state = keeper.round(round_id)

    for i, evaluator in enumerate(seated):
        step = evaluator_once(evaluator, round_id, Jobs(poisoned={cids[3]}, seed=i), specs)
        assert step.action == "committed", step
        assert step.data["fingerprints"][3] == noisy(POISONED, i * 7 + 3)
    assert evaluator_once(seated[0], round_id, Jobs(ready=False), specs).action == "waiting"
    net.mine_to(state.eval_commit_deadline + 1)
    for evaluator in seated:
        assert evaluator_once(evaluator, round_id, Jobs(), specs).action == "revealed"

    finalized = keeper_once(keeper, round_id, specs)  # every seat revealed: no need to wait for the deadline
    assert finalized.action == "finalized" and finalized.data == {"status": "Finalized", "new_version": 2}

    status = keeper.status(round_id)
    assert status.phase == "finalized" and status.outcome.accepted_mask == 0b0111
    by_trainer = {seat.trainer: seat for seat in status.trainers}
    # The poisoned bond (slashed whole at 10,000 bps) and the emission less the evaluators' 20%, split by bond.
    pool = minimum + ROUND_PARAMS.round_reward - ROUND_PARAMS.round_reward * 2_000 // 10_000
    accepted_bond = sum(bonds[:3])
    assert (status.round.trainer_reward_pool, status.round.accepted_bond) == (pool, accepted_bond)
    assert status.outcome.trainer_reward_pool == pool
    rewards = [trainer_reward(bond, pool, accepted_bond) for bond in bonds[:3]]
    assert rewards[0] > rewards[1] > rewards[2] and rewards[0] == pool * 15 // 37
    for trainer, cid, bond in zip(trainers, cids, bonds, strict=True):
        seat = by_trainer[trainer.chain.address]
        assert seat.delta_cid == cid and seat.distance is not None and seat.bond == bond
        if trainer is poisoned:
            assert seat.accepted is False and seat.slashed == bond and seat.reward == 0 and seat.distance > 400
        else:
            reward = rewards[trainers.index(trainer)]
            assert seat.accepted and seat.slashed == 0 and seat.reward == reward and seat.distance <= 400
    assert status.new_version_cid in cids[:3]

    registry = keeper.registry
    for i, trainer in enumerate(trainers):
        step = trainer_once(trainer, round_id, Jobs(), specs)
        if trainer is poisoned:
            assert step.action == "done" and "rejected" in step.detail
            assert registry.functions.stakeOf(trainer.chain.address, 2).call() == 1_000 * DSH - minimum
        else:
            assert step.action == "claimed" and step.data["reward"] == rewards[i]
            assert registry.functions.lockedOf(trainer.chain.address, 2).call() == 0
    assert all(trainer_once(t, round_id, Jobs(), specs).action == "done" for t in trainers)

    settled = keeper_once(keeper, round_id, specs)
    assert settled.action == "settled" and len(settled.data["seats"]) == len(seated)
    assert all(seat["reward"] > 0 and seat["penalty"] == 0 for seat in settled.data["seats"])
    assert evaluator_once(evaluators[0], round_id, Jobs(), specs).action == "done"
    final = keeper_once(keeper, round_id, specs)
    assert final.action == "done" and "0 accepted datasets pending" in final.detail

    # The new version: its lineage, and the inputs the next round's trainers get.
    assert keeper.lineage(2) == [1, 2]
    assert keeper.base_delta_cids(2) == [status.new_version_cid]
    status_after = keeper.status(round_id)
    assert all(seat.settled for seat in status_after.panel) and all(seat.settled for seat in status_after.trainers)


def test_refusals_send_nothing_and_salts_resume(net, specs, tmp_path):
    datasets = net.accept_datasets(1)
    keeper = net.rounds()
    round_id = keeper.open_round(SPEC.spec_hash()).round_id
    assert keeper.dataset_ids(round_id) == datasets
    with pytest.raises(InvalidRequest, match="is still running"):
        keeper.open_round(SPEC.spec_hash())

    trainer = net.trainer(staked=2_000)
    before = nonce(trainer)
    with pytest.raises(InvalidRequest, match="reveal window of round #\\d+ is not open"):
        trainer.reveal_delta(round_id)
    unstaked = net.rounds(net.account())
    with pytest.raises(InvalidRequest, match="exceeds the unlocked TRAINER stake"):
        unstaked.commit_delta(round_id, delta("x"))
    assert trainer_once(unstaked, round_id, Jobs("x"), specs).action == "done"
    # Bonds below the round's minimum or above the free stake: refused in one line, before training or sending.
    minimum = keeper.round(round_id).trainer_bond
    with pytest.raises(
        InvalidRequest, match=r"^a trainer bond of 999\.5 DSH is below the minimum of round #\d+, 1000 DSH$"
    ):
        trainer.commit_delta(round_id, delta("x"), minimum - DSH // 2)
    with pytest.raises(InvalidRequest, match="the trainer bond of 2000.000000000000000001 DSH exceeds the unlocked"):
        trainer.commit_delta(round_id, delta("x"), 2_000 * DSH + 1)
    for bond, refusal in ((minimum - 1, "is below the minimum"), (2_001 * DSH, "exceeds the unlocked TRAINER stake")):
        job = Jobs("x")
        step = trainer_once(trainer, round_id, job, specs, bond=bond)
        assert step.action == "done" and step.detail.startswith("cannot train: ") and refusal in step.detail, step
        assert job.calls == []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(TRAINER_BOND_ENV, "1,5")
        with pytest.raises(InvalidRequest, match=f"^{TRAINER_BOND_ENV} must be a positive number of DSH"):
            trainer_once(trainer, round_id, Jobs("x"), specs)
    with pytest.raises(SpecUnknown, match="no TrainingSpec with hash"):
        trainer_once(trainer, round_id, Jobs("x"), SpecBook(None, [], use_env=False))
    assert nonce(trainer) == before

    # An interrupted commit: the salt was stored, the transaction never sent. The step finishes it with the
    # stored delta, without training again.
    stored = trainer.salt_for("delta", round_id, delta("stored"))
    job = Jobs("another")
    step = trainer_once(trainer, round_id, job, specs)
    assert step.action == "committed" and step.data["delta_cid"] == delta("stored") and job.calls == []
    with pytest.raises(InvalidRequest, match="already committed"):
        trainer.commit_delta(round_id, delta("stored"))
    assert nonce(trainer) == before + 1

    # The salt lives only on this machine: elsewhere the commitment cannot be revealed.
    elsewhere = TrainingRoundsClient(trainer.chain, SaltStore(tmp_path / "empty"))
    net.mine_to(keeper.round(round_id).train_commit_deadline + 1)
    with pytest.raises(SaltNotFound, match="no stored salt"):
        elsewhere.reveal_delta(round_id)
    path = trainer.salts.path(trainer.salt_key("delta", round_id))
    assert json.loads(path.read_text())["commitment"] == "0x" + stored.commitment.hex()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    trainer.reveal_delta(round_id)

    # One revealed delta is fewer than minAccepted: the draw fails the round, the revealed bond comes back.
    net.mine_to(keeper.round(round_id).panel_seed_block + 1)
    assert keeper_once(keeper, round_id, specs).action == "failed"
    status = keeper.status(round_id)
    assert status.phase == "failed" and status.outcome.status == "Failed"
    assert trainer_once(trainer, round_id, Jobs(), specs).action == "claimed"
    assert trainer.registry.functions.lockedOf(trainer.chain.address, 2).call() == 0


def test_unusable_delta_is_reported_as_an_outlier(net, specs, store):
    net.accept_datasets(1)
    keeper = net.rounds()
    round_id = keeper_once(keeper, None, specs).id
    trainers = [net.trainer() for _ in range(3)]
    names = ["good a", "good b", "not safetensors"]
    cids = [delta(name) for name in names]
    jobs = [Jobs(name, store=store) for name in names]
    for trainer, job in zip(trainers, jobs, strict=True):
        assert trainer_once(trainer, round_id, job, specs, store).action == "committed"
    state = keeper.round(round_id)
    net.mine_to(state.train_commit_deadline + 1)
    for trainer, job in zip(trainers, jobs, strict=True):
        assert trainer_once(trainer, round_id, job, specs, store).action == "revealed"
    net.mine_to(state.panel_seed_block + 1)
    panel = keeper_once(keeper, round_id, specs).data["panel"]
    assert 1 <= len(panel) <= 3  # from the first test's evaluators: drive them through clients on their keys
    clients = [
        net.rounds(
            ChainClient(
                net.url, LocalSigner(Account.from_key(net.keys[a])), deployments_dir=net.deployments, poll_interval=0.02
            )
        )
        for a in panel
    ]
    for i, evaluator in enumerate(clients):
        step = evaluator_once(evaluator, round_id, Jobs(unusable={cids[2]}, seed=i), specs)
        assert step.action == "committed" and "1 unusable deltas reported as outliers" in step.detail
        assert step.data["fingerprints"][2] == UNUSABLE_FINGERPRINT
    net.mine_to(keeper.round(round_id).eval_commit_deadline + 1)
    for evaluator in clients:
        evaluator_once(evaluator, round_id, Jobs(), specs)
    assert keeper_once(keeper, round_id, specs).action == "finalized"
    assert keeper.round(round_id).accepted_delta_mask == 0b011


def test_the_delta_is_sealed_until_the_commit_deadline_and_published_before_the_reveal(net, specs, store):
    """Before the commit deadline nobody can read a trainer's delta: the store holds it sealed and its committed
    CID names nothing. In the reveal window the step opens it, checks it and pins it before it reveals, and an
    evaluator reading the store gets it. A sealed delta that does not give the committed CID is refused with one
    error, nothing revealed; a step stopped between its pin and its reveal resumes without the training job."""
    net.accept_datasets(1)
    keeper = net.rounds()
    round_id = keeper.open_round(SPEC.spec_hash()).round_id
    honest, tampered = net.trainer(), net.trainer()
    jobs = {"honest": Jobs("honest", store=store), "tampered": Jobs("tampered", store=store)}
    cid, tampered_cid = delta("honest"), delta("tampered")
    for trainer, name in ((honest, "honest"), (tampered, "tampered")):
        step = trainer_once(trainer, round_id, jobs[name], specs, store)
        assert step.action == "committed" and step.data["delta_cid"] == delta(name), step
    assert jobs["honest"].result is not None and jobs["tampered"].result is not None
    sealed_blob = store.get(jobs["honest"].result["sealed_cid"])
    assert delta_content("honest") not in sealed_blob
    for unreadable in (cid, tampered_cid):
        assert not store.has(unreadable)
        with pytest.raises(NotFound):
            store.get(unreadable)
    state = keeper.round(round_id)
    net.mine_to(state.train_commit_deadline + 1)

    # Sealed deltas that do not give the committed CID: one clear error each, nothing revealed or pinned.
    before = nonce(tampered)
    jobs["tampered"].result["key"] = add_sealed(store, delta_content("tampered")).key.hex()  # another seal's key
    with pytest.raises(DeltaUnpublishable, match="does not open under its key; nothing revealed"):
        trainer_once(tampered, round_id, jobs["tampered"], specs, store)
    jobs["tampered"].result = dict(jobs["honest"].result)  # a result for another delta
    with pytest.raises(DeltaUnpublishable, match=f"committed delta {tampered_cid}: the training job's delta is {cid}"):
        trainer_once(tampered, round_id, jobs["tampered"], specs, store)
    assert nonce(tampered) == before and not store.has(tampered_cid) and keeper.round(round_id).delta_count == 0

    # A step stopped after its pin, before its reveal: the next one reveals without asking the job.
    assert publish_delta(honest, round_id, cid, jobs["honest"], specs, store) and store.is_pinned(cid)
    assert keeper.round(round_id).delta_count == 0
    idle = Jobs(ready=False)
    assert trainer_once(honest, round_id, idle, specs, store).action == "revealed" and idle.calls == []
    assert trainer_once(honest, round_id, idle, specs, store).action == "waiting"
    assert keeper.deltas(round_id) == [(honest.chain.address, cid, ROUND_PARAMS.trainer_bond)]
    with open_store(store_dir=net.store_dir) as evaluator_store:  # what an evaluator's fingerprint job reads
        assert fetch_delta_bytes(evaluator_store, cid, 1_000) == delta_content("honest")

    # One revealed delta: the round fails; the revealed bond comes back, the unrevealed one is lost.
    net.mine_to(keeper.round(round_id).panel_seed_block + 1)
    assert keeper_once(keeper, round_id, specs).action == "failed"
    assert trainer_once(honest, round_id, idle, specs, store).action == "claimed"


def test_round_status_command_shows_phases_distances_outcomes_and_payouts(net, capsys, monkeypatch):
    monkeypatch.setenv("DEEPSHARD_DEPLOYMENTS_DIR", str(net.deployments))
    assert cli.main(["round", "status", "1", "--rpc", net.url]) == 0
    out = capsys.readouterr().out
    assert "round        #1 (Finalized)" in out and "phase        finalized" in out
    assert "outcome      Finalized: 3 of 4 deltas accepted; a reward pool of 5,000 DSH shared by their 3,700 DSH" in out
    assert "new version  2 (" in out and "BOND (DSH)" in out
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    trainer_rows = [row for row in rows if "accepted" in row or "slashed" in row]
    assert len(trainer_rows) == 4 and sum("slashed" in row for row in trainer_rows) == 1, out
    assert any("-1,000" in row for row in trainer_rows if "slashed" in row)
    assert sorted(row.split()[2] for row in trainer_rows) == ["1,000", "1,000", "1,200", "1,500"], out
    assert "DISTANCE (tol 400)" in out and "COHERENT" in out

    assert cli.main(["round", "status", "1", "--json", "--rpc", net.url]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"]["status"] == "Finalized" and data["outcome"]["new_version"] == 2
    assert sorted(t["accepted"] for t in data["trainers"]) == [False, True, True, True]
    assert sorted(t["bond"] for t in data["trainers"]) == [1_000 * DSH, 1_000 * DSH, 1_200 * DSH, 1_500 * DSH]
    assert all(isinstance(t["distance"], int) for t in data["trainers"])

    # The newest round by default; refusals are one line and exit 1.
    assert cli.main(["round", "status", "--rpc", net.url]) == 0
    assert "round        #" in capsys.readouterr().out
    monkeypatch.setenv("DEEPSHARD_PRIVATE_KEY", net.keys[next(iter(net.keys))])
    assert cli.main(["round", "finalize", "1", "--rpc", net.url]) == 1
    assert capsys.readouterr().err.startswith("error: round #1 cannot be finalized: phase finalized")


def test_round_open_command_publishes_the_spec_then_opens(net, capsys, monkeypatch, tmp_path, redis_clean):
    datasets = net.accept_datasets(1)
    opener = net.account()
    spec_file = tmp_path / "spec.json"
    spec_file.write_bytes(SPEC.canonical_json())
    monkeypatch.setenv("DEEPSHARD_DEPLOYMENTS_DIR", str(net.deployments))
    monkeypatch.setenv("DEEPSHARD_PRIVATE_KEY", net.keys[opener.address])
    monkeypatch.setenv("DEEPSHARD_REDIS_URL", TEST_REDIS_URL)
    capsys.readouterr()
    assert cli.main(["round", "open", "--spec", str(spec_file), "--rpc", net.url]) == 0
    out = capsys.readouterr().out
    round_id = net.rounds().round_count()
    assert f"round {round_id} opened on datasets {datasets} with spec {SPEC.spec_hash_hex()}" in out
    assert SpecBook(redis_clean, use_env=False).resolve(SPEC.spec_hash()) == SPEC
    before = opener.w3.eth.get_transaction_count(opener.address)
    assert cli.main(["round", "draw", str(round_id), "--rpc", net.url]) == 1
    assert "can be drawn once block" in capsys.readouterr().err
    assert cli.main(["round", "open", "--spec", str(spec_file), "--rpc", net.url]) == 1
    assert f"round #{round_id} is still running" in capsys.readouterr().err
    assert opener.w3.eth.get_transaction_count(opener.address) == before


#: StakeRegistry.Role.TRAINER
TRAINER = 2


def trainer_stake(trainer: TrainingRoundsClient) -> tuple[int, int]:
    """(staked, locked) TRAINER wei of the trainer's account."""
    registry, address = trainer.registry.functions, trainer.chain.address
    return registry.stakeOf(address, TRAINER).call(), registry.lockedOf(address, TRAINER).call()


def trained_round(net, opener: TrainingRoundsClient, specs, store, names: list[str], revealing: int):
    """Ends any round left running, opens one (through `opener`), and has a new trainer per name commit its delta
    through its step and the first `revealing` of them reveal; returns (round id, trainers, their jobs)."""
    net.end_current_round()
    net.accept_datasets(1)
    round_id = opener.open_round(SPEC.spec_hash()).round_id
    trainers = [net.trainer() for _ in names]
    jobs = [Jobs(name, store=store) for name in names]
    for trainer, job in zip(trainers, jobs, strict=True):
        assert trainer_once(trainer, round_id, job, specs, store).action == "committed"
    net.mine_to(opener.round(round_id).train_commit_deadline + 1)
    for trainer, job in zip(trainers[:revealing], jobs[:revealing], strict=True):
        assert trainer_once(trainer, round_id, job, specs, store).action == "revealed"
    return round_id, trainers, jobs


def test_a_trainer_draws_the_panel_when_no_keeper_does(net, specs, store):
    """No keeper runs: once the seed block is mined, the trainers' own steps draw the panel, since a round nobody
    draws for 256 blocks costs every trainer its outlier slash. The first draws; the next finds it drawn, sends
    nothing."""
    opener = net.rounds()  # opens the round, and no keeper step runs
    round_id, trainers, jobs = trained_round(net, opener, specs, store, ["fallback 0", "fallback 1"], revealing=2)
    state = opener.round(round_id)
    net.mine_to(state.train_reveal_deadline + 1)
    waiting = trainer_once(trainers[0], round_id, jobs[0], specs, store)
    assert waiting.action == "waiting" and waiting.wake_at_block == state.panel_seed_block + 1, waiting
    net.mine_to(state.panel_seed_block + 1)
    drawn = trainer_once(trainers[0], round_id, jobs[0], specs, store)
    assert drawn.role == "trainer" and drawn.action == "drawn", drawn
    assert opener.round(round_id).status == "Evaluating"
    assert drawn.data["panel"] == [member for member, _ in opener.panel(round_id)]
    before = nonce(trainers[1])
    assert trainer_once(trainers[1], round_id, jobs[1], specs, store).action == "waiting"
    assert nonce(trainers[1]) == before
    net.end_current_round()


def test_a_panel_nobody_draws_in_time_expires_the_round(net, specs, store):
    """Nobody draws until the seed block is 257 blocks old: the draw (here a trainer's late step) fails the round
    instead of reseeding it, and every trainer, revealed or silent, loses the round's penalty (the rest of its bond
    is unlocked), each its own bond's share; nothing is left to claim."""
    keeper = net.rounds()
    round_id, trainers, jobs = trained_round(net, keeper, specs, store, ["late 0", "late 1", "late 2"], revealing=2)
    state = keeper.round(round_id)  # the third trainer stays silent
    seed_block = state.panel_seed_block
    # Seen from a block, a draw lands in the next one: the last block that reads the seed block's hash is seed + 256.
    assert state.phase(seed_block + BLOCKHASH_HORIZON - 1) == "panel ready to draw"
    assert state.phase(seed_block + BLOCKHASH_HORIZON) == "panel seed expired"
    net.mine_to(seed_block + BLOCKHASH_HORIZON)
    before = [trainer_stake(trainer) for trainer in trainers]
    penalty = trainer_penalty(state.trainer_bond, state.outlier_slash_bps)
    assert before[0][1] == state.trainer_bond and 0 < penalty

    expired = trainer_once(trainers[2], round_id, jobs[2], specs, store)
    assert expired.action == "expired" and expired.data["outlier_slash_bps"] == state.outlier_slash_bps, expired
    assert "every trainer lost 100% of its bond" in expired.detail
    after = keeper.round(round_id)
    assert after.status == "Failed" and after.panel_size == 0
    assert draw_outcome(delta_count=2, min_accepted=2, seed_block=seed_block, block=net.block()) == "expired"
    for trainer, (staked, locked) in zip(trainers, before, strict=True):
        assert trainer_stake(trainer) == (staked - penalty, locked - state.trainer_bond)
        done = trainer_once(trainer, round_id, Jobs(), specs, store)
        assert done.action == "done" and "settled" in done.detail, done
    assert keeper.status(round_id).phase == "failed"


def test_round_draw_command_reports_an_expired_round(net, capsys, monkeypatch):
    net.end_current_round()
    net.accept_datasets(1)
    keeper = net.rounds()
    round_id = keeper.open_round(SPEC.spec_hash()).round_id
    trainers = [net.trainer() for _ in range(2)]
    for i, trainer in enumerate(trainers):
        trainer.commit_delta(round_id, delta(f"cli late {i}"))
    state = keeper.round(round_id)
    net.mine_to(state.train_commit_deadline + 1)
    for trainer in trainers:
        trainer.reveal_delta(round_id)
    net.mine_to(state.panel_seed_block + BLOCKHASH_HORIZON)
    drawer = net.account()
    monkeypatch.setenv("DEEPSHARD_DEPLOYMENTS_DIR", str(net.deployments))
    monkeypatch.setenv("DEEPSHARD_PRIVATE_KEY", net.keys[drawer.address])
    capsys.readouterr()
    assert cli.main(["round", "draw", str(round_id), "--rpc", net.url]) == 0
    out = capsys.readouterr().out
    assert f"round {round_id} failed: its seed block {state.panel_seed_block} is more than 256 blocks old" in out
    assert keeper.round(round_id).status == "Failed"


def commit_at_once(net, rounds: TrainingRoundsClient, round_id: int, cartel: list[ChainClient], bond: int) -> None:
    """Commits a delta from each of `cartel` in one block (the node signs for them), as a cartel does the moment a
    round opens: one transaction per block would not fit sixteen commits in netkit's 12-block commit window."""
    provider, commit = net.admin.w3.provider, rounds.contract.functions
    provider.make_request("evm_setAutomine", [False])
    try:
        hashes = []
        for member in cartel:
            address = member.address
            provider.make_request("anvil_impersonateAccount", [address])
            commitment = commit.deltaCommitmentFor(cid_to_chain(delta(address)), b"\x01" * 32, address).call()
            hashes.append(commit.commitDelta(round_id, commitment, bond).transact({"from": address, "gas": 500_000}))
        provider.make_request("evm_mine", [])
    finally:
        provider.make_request("evm_setAutomine", [True])
    assert all(net.admin.w3.eth.get_transaction_receipt(h)["status"] == 1 for h in hashes)


def test_a_full_round_takes_a_larger_bond_and_a_displaced_trainer_stops_or_commits_again(net, specs, store):
    """A cartel fills the round's 16 slots with minimum bonds: a trainer bonding no more is refused in one line
    before training, one bonding more trains and takes the smallest slot (the lowest index). The trainer displaced
    says so and stops while its bond is not above the smallest; staking more, it commits again with a fresh salt,
    and reveals that commitment. A trainer displaced for good is told so in the reveal window too."""
    net.end_current_round()
    net.accept_datasets(1)
    minimum = ROUND_PARAMS.trainer_bond
    victim, equal, honest = net.trainer(), net.trainer(), net.trainer(staked=2_000)
    cartel = [net.account(role="TRAINER", staked=1_000) for _ in range(MAX_TRAINERS - 1)]
    keeper = net.rounds()
    round_id = keeper.open_round(SPEC.spec_hash()).round_id
    victim.commit_delta(round_id, delta("victim"))
    first = victim.stored_salt("delta", round_id)
    commit_at_once(net, keeper, round_id, cartel, minimum)
    assert keeper.round(round_id).trainer_count == MAX_TRAINERS

    full = f"round #{round_id} is full: its smallest bond is 1000 DSH; a bond above it takes that slot"
    before, job = nonce(equal), Jobs("equal", store=store)
    step = trainer_once(equal, round_id, job, specs, store)
    assert (step.action, step.detail) == ("done", full) and job.calls == []
    with pytest.raises(InvalidRequest, match=f"^{full}$"):
        equal.commit_delta(round_id, delta("equal"))
    assert nonce(equal) == before

    step = trainer_once(honest, round_id, Jobs("honest", store=store), specs, store)
    assert step.action == "committed" and step.data["bond"] == 2_000 * DSH, step
    state = keeper.round(round_id)
    assert honest.trainer_slot(state) == 0 and victim.trainer_slot(state) is None
    assert victim.trainer_displaced(state) and not honest.trainer_displaced(state)
    assert trainer_stake(victim) == (minimum, 0)  # unlocked in full

    before, job = nonce(victim), Jobs("victim", store=store)
    step = trainer_once(victim, round_id, job, specs, store)
    assert (
        step.action == "done"
        and step.detail == f"{victim.chain.address} was displaced by a larger bond (its bond is unlocked); {full}"
    )
    assert job.calls == [] and nonce(victim) == before

    stake(victim.chain, "TRAINER", "1001")
    step = trainer_once(victim, round_id, Jobs("victim", store=store), specs, store)
    assert (
        step.action == "committed"
        and step.detail == f"committed {delta('victim')} again, displaced earlier, with a bond of 2001 DSH"
    ), step
    assert step.data["bond"] == 2_001 * DSH
    stored = victim.stored_salt("delta", round_id)
    assert first is not None and stored is not None and stored.value == first.value and stored.salt != first.salt
    state = keeper.round(round_id)
    assert victim.trainer_slot(state) == 1  # cartel[0]'s, the smallest bond at the lowest index
    assert trainer_stake(victim) == (2_001 * DSH, 2_001 * DSH)

    net.mine_to(state.train_commit_deadline + 1)
    assert trainer_once(victim, round_id, Jobs("victim", store=store), specs, store).action == "revealed"
    assert [d.trainer for d in keeper.deltas(round_id)] == [victim.chain.address]
    step = trainer_once(net.rounds(cartel[0]), round_id, Jobs(), specs, store)
    assert step.action == "done" and "was displaced from round" in step.detail, step
    net.end_current_round()
