"""Helpers of the tests of the nodes' processes (imported by conftest.py and the tests): a network of their own on
a local anvil (short windows), accepted datasets, staked curators, trainers and evaluators, the Celery worker
command of the tests' app, and the Redis database the tests use (14).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from services import redis_url_for

from workers.chain import (
    ChainClient,
    DataConsensusParams,
    DeployParams,
    LocalSigner,
    TrainingRoundsParams,
    deploy_network,
    stake,
)
from workers.chain.salts import SaltStore
from workers.chain.units import WEI_PER_DSH
from workers.data import SAMPLES_DIR
from workers.data.chain import DataConsensusClient
from workers.protocol.constants import K
from workers.rounds.chain import TrainingRoundsClient
from workers.storage import open_store

ETH = 10**18
DSH = WEI_PER_DSH
TEST_REDIS_DB = 14
TEST_REDIS_URL = redis_url_for(TEST_REDIS_DB)
WORKER_READY_TIMEOUT = 120.0

DATA_PARAMS = DataConsensusParams(commit_window=6, reveal_window=6)
ROUND_PARAMS = TrainingRoundsParams(
    train_commit_window=12,
    train_reveal_window=12,
    eval_commit_window=8,
    eval_reveal_window=8,
    seed_delay=2,
    min_batch=1,
    max_batch=4,
    min_accepted=2,
    tolerance=400,
    evaluator_tolerance=400,
    outlier_slash_bps=10_000,
    evaluator_share_bps=2_000,
    incoherent_penalty_bps=200,
    no_reveal_penalty_bps=500,
    trainer_bond=1_000 * DSH,
    min_pool_bond=1_000 * DSH,
    round_reward=5_000 * DSH,
)
HONEST = [1_000 + 10 * k for k in range(K)]
POISONED = [5_000 - 10 * k for k in range(K)]
GOOD_VOTE = [90, 90, 90, 90, 90]


def noisy(fingerprint, seed):
    """An honest fingerprint as another machine measures it: a few units off per coordinate."""
    return [value + ((seed * 7 + k * 3) % 5) - 2 for k, value in enumerate(fingerprint)]


def sample_datasets(count: int) -> list[bytes]:
    """`count` distinct valid datasets cut from the good sample."""
    lines = SAMPLES_DIR.joinpath("good.jsonl").read_bytes().splitlines(keepends=True)
    size = len(lines) // count
    return [b"".join(lines[i * size : (i + 1) * size]) for i in range(count)]


@dataclass
class Net:
    """A deployment on an anvil, with helpers to make accounts, mine and get datasets accepted."""

    url: str
    deployments: Path
    admin: ChainClient
    votes_dir: Path
    store_dir: Path
    curators: list[DataConsensusClient] = field(default_factory=list)
    informant: DataConsensusClient | None = None
    keys: dict[str, str] = field(default_factory=dict)  # address -> throwaway test key

    def account(self, *, dsh: int = 5_000, role: str | None = None, staked: int = 0) -> ChainClient:
        account = Account.create()
        self.admin.w3.provider.make_request("anvil_setBalance", [account.address, hex(10 * ETH)])
        if dsh:
            token = self.admin.contract("DeepshardToken")
            self.admin.transact(token.functions.transfer(account.address, dsh * DSH))
        client = ChainClient(self.url, LocalSigner(account), deployments_dir=self.deployments, poll_interval=0.02)
        if role:
            stake(client, role, str(staked))
        self.keys[account.address] = account.key.hex()
        return client

    def rounds(self, client: ChainClient | None = None, votes_dir: Path | None = None) -> TrainingRoundsClient:
        return TrainingRoundsClient(client or self.admin, SaltStore(votes_dir or self.votes_dir))

    def consensus(self, client: ChainClient | None = None) -> DataConsensusClient:
        return DataConsensusClient(client or self.admin, SaltStore(self.votes_dir / "curators"))

    def trainer(self, staked: int = 1_000) -> TrainingRoundsClient:
        """A new account staking `staked` DSH as TRAINER. The default is the round's minimum bond (1,000): a
        trainer left to its default bonds all of its unlocked stake, here exactly the minimum."""
        return self.rounds(self.account(role="TRAINER", staked=staked))

    def evaluator(self, bond: int = 1_000) -> TrainingRoundsClient:
        rounds = self.rounds(self.account(role="EVALUATOR", staked=2_000))
        rounds.join_pool(bond * DSH)
        return rounds

    def block(self) -> int:
        return int(self.admin.w3.eth.block_number)

    def mine_to(self, block: int) -> None:
        missing = block - self.block()
        if missing > 0:
            self.admin.w3.provider.make_request("anvil_mine", [hex(missing)])

    def mine(self, blocks: int = 1) -> None:
        self.admin.w3.provider.make_request("anvil_mine", [hex(blocks)])

    def end_current_round(self) -> None:
        """Ends a round an earlier test left running (a draw without enough deltas fails it)."""
        rounds = self.rounds()
        state = rounds.current_round()
        if state is None or state.ended:
            return
        if state.status == "Training":
            self.mine_to(state.panel_seed_block + 1)
            rounds.draw_evaluators(state.id)
            state = rounds.round(state.id)
        if state.status == "Evaluating":
            self.mine_to(state.eval_reveal_deadline + 1)
            rounds.finalize(state.id)

    def accept_datasets(self, count: int) -> list[int]:
        """Submits `count` new datasets and has the curator pool accept them; returns their ids."""
        if not self.curators:
            for _ in range(3):
                curator = self.consensus(self.account(role="CURATOR", staked=2_000))
                curator.join_pool(1_000 * DSH)
                self.curators.append(curator)
            self.informant = self.consensus(self.account(dsh=20_000, role="INFORMANT", staked=10_000))
        ids = []
        store = open_store(store_dir=self.store_dir)
        chunks = sample_datasets(4)
        for i in range(count):
            marker = {
                "text": f"Dataset marker {uuid.uuid4().hex}: a line that makes this dataset unique.",
                "source": "https://example.org/deepshard-tests",
                "license": "CC0-1.0",
                "lang": "en",
            }
            data = chunks[i % len(chunks)] + json.dumps(marker).encode() + b"\n"
            submitted = self.informant.submit(data, 200 * DSH, store)
            sid = submitted.submission_id
            self.mine_to(submitted.seed_block + 1)
            self.informant.draw(sid)
            panel = [c for c in self.curators if c.seat_of(sid) is not None]
            for curator in panel:
                curator.vote(sid, GOOD_VOTE)
            self.mine_to(self.informant.submission(sid).commit_deadline + 1)
            for curator in panel:
                curator.reveal(sid)
            outcome = self.informant.finalize(sid)
            assert outcome.status == "Accepted", outcome
            ids.append(sid)
        return ids


def deploy_net(
    url: str,
    tmp: Path,
    round_params: TrainingRoundsParams = ROUND_PARAMS,
    data_params: DataConsensusParams = DATA_PARAMS,
) -> Net:
    admin_account = Account.create()
    ChainClient(url).w3.provider.make_request("anvil_setBalance", [admin_account.address, hex(1_000 * ETH)])
    deployments = tmp / "deployments"
    admin = ChainClient(url, LocalSigner(admin_account), deployments_dir=deployments, poll_interval=0.02)
    deploy_network(admin, DeployParams(data_consensus=data_params, training_rounds=round_params))
    return Net(url, deployments, admin, tmp / "votes", tmp / "store")


def celery_worker_command(
    queues: str, pool: str = "solo", app_module: str = "tests.workers.tasks.worker_app", name: str | None = None
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app_module,
        "worker",
        f"--pool={pool}",
        "--concurrency=1",
        "-Q",
        queues,
        "-n",
        name or f"test-{uuid.uuid4().hex[:8]}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=INFO",
    ]


def wait_for(condition, what: str, timeout: float = 60.0, logs=()) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.log()[-2500:]}" for p in logs)
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.1)
