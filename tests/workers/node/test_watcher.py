"""The watcher: contract events become tasks on the right queues, its cursor lives in Redis (database 14),
and a restart, a crash in the middle of a range or a SIGKILL between events neither skips nor repeats an
event. Broker loss is simulated with a dead port (the shared Redis is never restarted): one clear line, then
exponential backoff, and nothing lost once it answers again."""

from __future__ import annotations

import base64
import json
import sys
import threading
from collections import Counter

import pytest
import redis
from netkit import GOOD_VOTE, TEST_REDIS_URL, sample_datasets, wait_for

from workers.chain import ChainClient
from workers.chain.deployments import DEPLOYMENTS_DIR_ENV
from workers.chain.localnode import free_port
from workers.ml.spec import TrainingSpec
from workers.node.registry import register_account
from workers.node.watcher import Watcher, cursor_key, sent_key
from workers.storage import cid_of_bytes, open_store
from workers.tasks.errors import QueueUnavailable

SPEC = TrainingSpec(base_model="tiny", steps=4)
KEEPER, TRAINER, CURATE, DATA_KEEPER = (
    "workers.tasks.rounds.keeper_step",
    "workers.tasks.rounds.trainer_step",
    "workers.tasks.consensus.curate",
    "workers.tasks.consensus.keeper_step",
)


def panel_of(net, dataset: int) -> list[str]:
    """The curators holding a seat on `dataset`'s panel: its votes fall on one to three of them (one draw = one
    vote), as the chain's block hashes decide."""
    panel = [c.chain.address for c in net.curators if net.curators[0].seat_of(dataset, c.chain.address) is not None]
    assert 1 <= len(panel) <= 3
    return panel


def data_keeper_tasks(net, dataset: int) -> int:
    """What the watcher queues on the keeper queue for one accepted dataset before the round keeper step: a data
    keeper step on Submitted, PanelDrawn, each seat's Revealed and Finalized."""
    return 3 + len(panel_of(net, dataset))


class Recorder:
    """A `send` that records what it queues, and can fail after a number of sends (a crash or a dead broker)."""

    def __init__(self, fail_after: int | None = None):
        self.sent: list[tuple[str, tuple, str, str]] = []
        self.fail_after = fail_after

    def __call__(self, dispatch, task_id):
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise QueueUnavailable("cannot queue: Redis at redis://127.0.0.1:1/0 does not answer (test)")
        self.sent.append((dispatch.task, dispatch.args, dispatch.queue, task_id))


def test_events_become_tasks_once_across_restarts_and_crashes(net, redis_clean):
    chain = ChainClient(net.url, deployments_dir=net.deployments)
    datasets = net.accept_datasets(1)  # before any watcher: history, replayed from the deployment block
    trainers = [net.trainer() for _ in range(2)]
    accounts = {"trainer": [t.chain.address for t in trainers], "curator": [c.chain.address for c in net.curators]}
    record = Recorder()

    def watcher(send=record, **options) -> Watcher:  # a new instance is a restarted watcher
        return Watcher(chain, redis_clean, send=send, accounts=lambda role: accounts.get(role, []), **options)

    panel = panel_of(net, datasets[0])
    data_tasks = data_keeper_tasks(net, datasets[0])
    # Submitted, PanelDrawn, a Revealed per seat, Finalized (Accepted); small ranges.
    assert watcher(max_range=7).poll_once() == data_tasks
    curates = [s[:3] for s in record.sent if s[0] == CURATE]
    assert sorted(curates) == sorted((CURATE, (datasets[0],), f"curator.{a}") for a in panel)
    assert [s[:3] for s in record.sent if s[2] == "keeper"] == [
        (DATA_KEEPER, (datasets[0],), "keeper")
    ] * data_tasks + [(KEEPER, (None,), "keeper")]
    sent = len(record.sent)
    assert watcher().poll_once() == 0 and len(record.sent) == sent == len(panel) + data_tasks + 1

    keeper = net.rounds()
    opened = keeper.open_round(SPEC.spec_hash())
    round_id = opened.round_id
    block = chain.w3.eth.get_transaction_receipt(opened.tx_hash)["blockNumber"]
    crashed = Recorder(fail_after=1)
    with pytest.raises(QueueUnavailable):
        watcher(send=crashed).poll_once()  # dies after queueing the first task of RoundOpened
    assert len(crashed.sent) == 1
    key = cursor_key(chain.chain_id, keeper.contract.address)
    before_range = int(redis_clean.get(key))
    assert redis_clean.scard(sent_key(chain.chain_id, keeper.contract.address)) == 1

    resumed = Recorder()
    assert watcher(send=resumed).poll_once() == 1
    expected = {(TRAINER, (round_id,), f"trainer.{a}") for a in accounts["trainer"]} | {(KEEPER, (round_id,), "keeper")}
    assert {s[:3] for s in crashed.sent + resumed.sent} == expected and len(crashed.sent + resumed.sent) == 3
    assert int(redis_clean.get(key)) == chain.w3.eth.block_number + 1 > before_range
    assert not redis_clean.exists(sent_key(chain.chain_id, keeper.contract.address))
    # Task ids are deterministic: event position, queue and task.
    assert all(s[3].startswith(f"watch:{chain.chain_id}:{keeper.contract.address}:{block}:") for s in resumed.sent)


def test_confirmations_hold_events_back(net, redis_clean):
    chain = ChainClient(net.url, deployments_dir=net.deployments)
    record = Recorder()
    watcher = Watcher(
        chain,
        redis_clean,
        send=record,
        accounts=lambda role: [],
        confirmations=3,
        start_block=chain.w3.eth.block_number + 1,
    )
    (dataset,) = net.accept_datasets(1)
    finished = chain.w3.eth.block_number
    watcher.poll_once()
    # The events 3 blocks deep are dispatched; the Finalized event of the last block is not yet.
    assert watcher.history and all(event.block <= finished - 3 for event, _ in watcher.history)
    assert "Finalized" not in [event.name for event, _ in watcher.history] and (KEEPER, (None,)) not in [
        s[:2] for s in record.sent
    ]
    net.mine(3)
    watcher.poll_once()
    finalized, queued = watcher.history[-1]
    assert finalized.name == "Finalized" and finalized.block == finished
    assert [(d.task, d.args) for d in queued] == [(DATA_KEEPER, (dataset,)), (KEEPER, (None,))]
    assert int(redis_clean.get(cursor_key(chain.chain_id, chain.contract("DataConsensus").address))) == finished + 1


def queued(client: redis.Redis, queue: str) -> list[dict]:
    """The headers of the messages waiting in a Celery queue (kombu's Redis list)."""
    return [json.loads(raw)["headers"] for raw in client.lrange(queue, 0, -1)]


def test_watch_command_killed_between_events_neither_skips_nor_repeats(net, spawn, redis_clean, monkeypatch):
    chain = ChainClient(net.url, deployments_dir=net.deployments)
    net.end_current_round()
    start = chain.w3.eth.block_number + 1  # the earlier tests' events are not this test's
    (dataset,) = net.accept_datasets(1)
    trainer = net.trainer()
    register_account(redis_clean, chain.chain_id, "trainer", trainer.chain.address)
    command = [
        sys.executable,
        "-m",
        "workers.cli",
        "watch",
        "--rpc",
        net.url,
        "--interval",
        "0.2",
        "--from-block",
        str(start),
    ]
    env = {DEPLOYMENTS_DIR_ENV: str(net.deployments)}
    trainer_queue = f"trainer.{trainer.chain.address}"

    watch = spawn(command, env, ready="watching chain", name="watch")
    data_tasks = data_keeper_tasks(net, dataset)
    accepted = data_tasks + 1
    wait_for(lambda: len(queued(redis_clean, "keeper")) == accepted, "the dataset's keeper tasks", logs=[watch])
    keeper = net.rounds()
    round_id = keeper.open_round(SPEC.spec_hash()).round_id
    wait_for(lambda: len(queued(redis_clean, trainer_queue)) == 1, "the RoundOpened tasks", logs=[watch])
    watch.kill()  # SIGKILL between two events

    trainer.commit_delta(round_id, str(cid_of_bytes(b"a delta")))
    net.mine_to(keeper.round(round_id).train_commit_deadline + 1)
    trainer.reveal_delta(round_id)  # DeltaRevealed, while no watcher runs

    again = spawn(command, env, ready="watching chain", name="watch-again")
    wait_for(lambda: len(queued(redis_clean, "keeper")) == accepted + 2, "the DeltaRevealed keeper task", logs=[again])
    net.mine(2)
    again.stop()
    keeper_tasks = queued(redis_clean, "keeper")
    trainer_tasks = queued(redis_clean, trainer_queue)
    ids = Counter(h["id"] for h in keeper_tasks + trainer_tasks)
    assert set(ids.values()) == {1}, ids
    keeper_args = [
        (json.loads(raw)["headers"]["task"], json.loads(base64.b64decode(json.loads(raw)["body"]))[0])
        for raw in redis_clean.lrange("keeper", 0, -1)
    ]
    assert sorted((args for task, args in keeper_args if task == KEEPER), key=str) == sorted(
        [[None], [round_id], [round_id]], key=str
    )
    assert [args for task, args in keeper_args if task == DATA_KEEPER] == [[dataset]] * data_tasks
    assert [h["task"] for h in trainer_tasks] == [TRAINER]
    assert "Traceback" not in watch.log() + again.log()


def test_dead_redis_is_reported_and_retried_with_backoff_then_nothing_is_lost(net, redis_clean):
    chain = ChainClient(net.url, deployments_dir=net.deployments)
    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)

    class Switch:
        """A Redis client that is down until `up` is set (the broker coming back)."""

        up = False

        def __getattr__(self, name):
            return getattr(redis_clean if self.up else dead, name)

    switch = Switch()
    record = Recorder()
    watcher = Watcher(chain, switch, send=record, accounts=lambda role: [], start_block=chain.w3.eth.block_number + 1)
    errors: list[tuple[str, float]] = []
    stop = threading.Event()

    def on_error(message, wait):
        errors.append((message, wait))
        if len(errors) == 4:
            switch.up = True

    (dataset,) = net.accept_datasets(1)  # happens while Redis is "down"
    thread = threading.Thread(target=watcher.run, args=(stop, 0.05, on_error, 0.05))
    thread.start()
    try:
        wait_for(lambda: record.sent, "the watcher to recover", timeout=30)
    finally:
        stop.set()
        thread.join(10)
    assert [wait for _, wait in errors] == [0.05, 0.1, 0.2, 0.4]
    port = dead.connection_pool.connection_kwargs["port"]
    assert errors[0][0].startswith(f"Redis at redis://127.0.0.1:{port}/0 does not answer (")
    assert [s[:2] for s in record.sent] == [(DATA_KEEPER, (dataset,))] * data_keeper_tasks(net, dataset) + [
        (KEEPER, (None,))
    ]


def test_watch_command_reports_a_dead_redis_in_one_line(net, spawn):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    watch = spawn(
        [sys.executable, "-m", "workers.cli", "watch", "--rpc", net.url],
        {DEPLOYMENTS_DIR_ENV: str(net.deployments), "DEEPSHARD_REDIS_URL": dead},
        ready="retrying in 4 s",
        name="watch-dead",
    )
    lines = [line for line in watch.log().splitlines() if line.startswith("watcher: ")]
    assert lines[0].startswith(f"watcher: Redis at {dead} does not answer (") and lines[0].endswith("retrying in 2 s")
    assert "Traceback" not in watch.log()
    assert TEST_REDIS_URL not in watch.log()


def test_curator_worker_gets_its_panel_seats_from_the_watcher(net, spawn, redis_clean, tmp_path):
    net.accept_datasets(1)  # the curator pool exists
    chain = ChainClient(net.url, deployments_dir=net.deployments)
    on_worker, in_process = net.curators[0], net.curators[1:]
    address = on_worker.chain.address
    worker = spawn(
        [sys.executable, "-m", "workers.cli", "worker", "--role", "curator", "--rpc", net.url],
        {
            "DEEPSHARD_PRIVATE_KEY": net.keys[address],
            DEPLOYMENTS_DIR_ENV: str(net.deployments),
            "DEEPSHARD_STORE_DIR": str(net.store_dir),
            "DEEPSHARD_VOTES_DIR": str(tmp_path / "votes"),
            "DEEPSHARD_MAX_WAIT": "1",
        },
        ready=" ready.",
        name="curator",
    )
    assert f"curator worker for {address}" in worker.log() and f"curator.{address}" in worker.log()
    # Its catch-up claims the seats earlier tests left unclaimed (a block each): let it finish first, so that
    # the new panel's short commit window is the worker's own. A panel's votes may miss this curator (one draw =
    # one vote): only the panels it sits on count.
    consensus = net.consensus()
    seats = {i: consensus.seat_of(i, address) for i in range(1, consensus.submission_count() + 1)}
    held = {i: seat for i, seat in seats.items() if seat is not None}
    wait_for(
        lambda: all(consensus.submission(i).settled(seat) for i, seat in held.items()),
        "the curator worker to catch up",
        logs=[worker],
    )
    watcher = Watcher(chain, redis_clean, start_block=chain.w3.eth.block_number + 1)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop, 0.2))
    thread.start()
    try:
        informant = net.informant
        submitted = informant.submit(sample_datasets(4)[1], 200 * 10**18, open_store(store_dir=net.store_dir))
        sid = submitted.submission_id
        net.mine_to(submitted.seed_block + 1)
        informant.draw(sid)
        wait_for(
            lambda: informant.committed(informant.submission(sid), address),
            "the curator worker to commit",
            logs=[worker],
        )
        for curator in in_process:
            curator.vote(sid, GOOD_VOTE)
        net.mine_to(informant.submission(sid).commit_deadline + 1)
        for curator in in_process:
            curator.reveal(sid)
        seat = informant.seat_of(sid, address)
        wait_for(
            lambda: informant.submission(sid).settled(seat), "the curator worker to reveal and settle", logs=[worker]
        )
    finally:
        stop.set()
        thread.join(10)
    assert informant.submission(sid).status == "Accepted"
    assert [d.task for _, dispatches in watcher.history for d in dispatches if d.queue == f"curator.{address}"] == [
        CURATE
    ]
    for action in ("'committed'", "'revealed'", "'claimed'"):
        # The worker logs a task's result just after its transaction lands: wait for the line too.
        wait_for(
            lambda action=action: f"'action': {action}" in worker.log(), f"the worker to log {action}", logs=[worker]
        )
