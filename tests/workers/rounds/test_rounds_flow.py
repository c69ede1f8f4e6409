"""The training-round flow on a real anvil, through the role steps the Celery tasks run (no ML: training
results and fingerprints are supplied directly): three honest trainers and one poisoned, three evaluators in
the pool (a panel draws 9 votes among them with replacement, so it seats two or three of them).
The poisoned trainer is slashed, the honest ones paid, a new version registered; steps run twice send
nothing twice; refusals send nothing."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from netkit import DSH, HONEST, POISONED, ROUND_PARAMS, TEST_REDIS_URL, noisy

from workers import cli
from workers.chain import ChainClient, InvalidRequest, LocalSigner
from workers.chain.salts import SaltNotFound, SaltStore
from workers.ml.spec import TrainingSpec
from workers.rounds.chain import TrainingRoundsClient
from workers.rounds.specs import SpecBook, SpecUnknown
from workers.rounds.steps import UNUSABLE_FINGERPRINT, evaluator_once, keeper_once, trainer_once
from workers.storage import cid_of_bytes

SPEC = TrainingSpec(base_model="tiny", steps=4)


class Jobs:
    """Stand-in ML jobs: a fixed delta CID; fingerprints by delta CID (poisoned ones far away)."""

    def __init__(
        self,
        delta_cid: str | None = None,
        poisoned: set[str] = frozenset(),
        seed: int = 0,
        ready: bool = True,
        unusable: set[str] = frozenset(),
    ):
        self.delta_cid, self.poisoned, self.seed, self.ready, self.unusable = delta_cid, poisoned, seed, ready, unusable
        self.calls: list[tuple[str, dict]] = []

    def train(self, inputs):
        self.calls.append(("train", inputs))
        return {"delta_cid": self.delta_cid, "manifest": {}} if self.ready else None

    def fingerprint(self, inputs, delta_cids):
        self.calls.append(("fingerprint", {**inputs, "delta_cids": delta_cids}))
        if not self.ready:
            return None
        rows = [
            None if cid in self.unusable else noisy(POISONED if cid in self.poisoned else HONEST, self.seed * 7 + d)
            for d, cid in enumerate(delta_cids)
        ]
        return {"fingerprints": rows, "errors": ["rejected: not safetensors" if r is None else None for r in rows]}


def delta(name: str) -> str:
    return str(cid_of_bytes(f"delta {name}".encode()))


def nonce(rounds: TrainingRoundsClient) -> int:
    return rounds.chain.w3.eth.get_transaction_count(rounds.chain.address)


@pytest.fixture(scope="module")
def specs():
    return SpecBook(None, [SPEC], use_env=False)


def test_one_poisoned_trainer_of_four_is_slashed_and_the_rest_paid(net, specs):
    datasets = net.accept_datasets(2)
    keeper = net.rounds()
    trainers = [net.trainer() for _ in range(4)]
    evaluators = [net.evaluator() for _ in range(3)]
    cids = [delta(f"honest {i}") for i in range(3)] + [delta("poisoned")]
    poisoned = trainers[3]

    opened = keeper_once(keeper, None, specs)
    assert opened.action == "opened", opened
    round_id = opened.id
    assert keeper.dataset_ids(round_id) == datasets and keeper.pending_datasets() == []
    state = keeper.round(round_id)
    assert state.spec_hash == SPEC.spec_hash() and state.base_version == 1

    jobs = [Jobs(cid) for cid in cids]
    for trainer, job in zip(trainers, jobs, strict=True):
        step = trainer_once(trainer, round_id, job, specs)
        assert step.action == "committed" and step.wake_at_block == state.train_commit_deadline + 1, step
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
    again = trainer_once(trainers[0], round_id, jobs[0], specs)
    assert again.action == "waiting" and nonce(trainers[0]) == before and len(jobs[0].calls) == 1

    assert keeper_once(keeper, round_id, specs).action == "waiting"
    net.mine_to(state.train_commit_deadline + 1)
    for trainer, job in zip(trainers, jobs, strict=True):
        assert trainer_once(trainer, round_id, job, specs).action == "revealed"
    assert trainer_once(trainers[0], round_id, jobs[0], specs).action == "waiting"
    assert [cid for _, cid in keeper.deltas(round_id)] == cids

    waiting = keeper_once(keeper, round_id, specs)
    assert waiting.action == "waiting" and waiting.wake_at_block == state.panel_seed_block + 1
    net.mine_to(state.panel_seed_block + 1)
    drawn = keeper_once(keeper, round_id, specs)
    assert drawn.action == "drawn" and set(drawn.data["panel"]) <= {e.chain.address for e in evaluators}
    seated = [next(e for e in evaluators if e.chain.address == member) for member in drawn.data["panel"]]
    assert sum(votes for _, votes in keeper.panel(round_id)) == 9  # one draw = one vote
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
    bond = ROUND_PARAMS.trainer_bond
    reward = (bond + ROUND_PARAMS.round_reward - ROUND_PARAMS.round_reward * 2_000 // 10_000) // 3
    for trainer, cid in zip(trainers, cids, strict=True):
        seat = by_trainer[trainer.chain.address]
        assert seat.delta_cid == cid and seat.distance is not None
        if trainer is poisoned:
            assert seat.accepted is False and seat.slashed == bond and seat.reward == 0 and seat.distance > 400
        else:
            assert seat.accepted and seat.slashed == 0 and seat.reward == reward and seat.distance <= 400
    assert status.new_version_cid in cids[:3]

    registry = keeper.registry
    for trainer in trainers:
        step = trainer_once(trainer, round_id, Jobs(), specs)
        if trainer is poisoned:
            assert step.action == "done" and "rejected" in step.detail
            assert registry.functions.stakeOf(trainer.chain.address, 2).call() == 2_000 * DSH - bond
        else:
            assert step.action == "claimed" and step.data["reward"] == reward
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

    trainer = net.trainer()
    before = nonce(trainer)
    with pytest.raises(InvalidRequest, match="reveal window of round #\\d+ is not open"):
        trainer.reveal_delta(round_id)
    unstaked = net.rounds(net.account())
    with pytest.raises(InvalidRequest, match="exceeds the unlocked TRAINER stake"):
        unstaked.commit_delta(round_id, delta("x"))
    assert trainer_once(unstaked, round_id, Jobs(delta("x")), specs).action == "done"
    with pytest.raises(SpecUnknown, match="no TrainingSpec with hash"):
        trainer_once(trainer, round_id, Jobs(delta("x")), SpecBook(None, [], use_env=False))
    assert nonce(trainer) == before

    # An interrupted commit: the salt was stored, the transaction never sent. The step finishes it with the
    # stored delta, without training again.
    stored = trainer.salt_for("delta", round_id, delta("stored"))
    job = Jobs(delta("another"))
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


def test_unusable_delta_is_reported_as_an_outlier(net, specs):
    net.accept_datasets(1)
    keeper = net.rounds()
    round_id = keeper_once(keeper, None, specs).id
    trainers = [net.trainer() for _ in range(3)]
    cids = [delta("good a"), delta("good b"), delta("not safetensors")]
    for trainer, cid in zip(trainers, cids, strict=True):
        assert trainer_once(trainer, round_id, Jobs(cid), specs).action == "committed"
    state = keeper.round(round_id)
    net.mine_to(state.train_commit_deadline + 1)
    for trainer in trainers:
        trainer_once(trainer, round_id, Jobs(), specs)
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


def test_round_status_command_shows_phases_distances_outcomes_and_payouts(net, capsys, monkeypatch):
    monkeypatch.setenv("DEEPSHARD_DEPLOYMENTS_DIR", str(net.deployments))
    assert cli.main(["round", "status", "1", "--rpc", net.url]) == 0
    out = capsys.readouterr().out
    assert "round        #1 (Finalized)" in out and "phase        finalized" in out
    assert "outcome      Finalized: 3 of 4 deltas accepted" in out and "new version  2 (" in out
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    trainer_rows = [row for row in rows if "accepted" in row or "slashed" in row]
    assert len(trainer_rows) == 4 and sum("slashed" in row for row in trainer_rows) == 1, out
    assert any("-1,000" in row for row in trainer_rows if "slashed" in row)
    assert "DISTANCE (tol 400)" in out and "COHERENT" in out

    assert cli.main(["round", "status", "1", "--json", "--rpc", net.url]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["outcome"]["status"] == "Finalized" and data["outcome"]["new_version"] == 2
    assert sorted(t["accepted"] for t in data["trainers"]) == [False, True, True, True]
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
