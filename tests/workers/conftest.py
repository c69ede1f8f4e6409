"""Fixtures for the workers tests: one real anvil per session, the network deployed on it once; and, for the
tests of the nodes' processes (rounds, node, tasks' runner), a network with short windows on an anvil of each
module, Redis database `netkit.TEST_REDIS_DB` and child processes (Celery workers, the watcher) stopped by PID.

Tests isolate themselves with fresh accounts (a new key, ETH set by anvil_setBalance, DSH from the
treasury) instead of restarting the chain. The deployment record lives in a temporary folder, and
DEEPSHARD_DEPLOYMENTS_DIR points there, so the repo's deployments/ is never touched. Redis is shared with
others: never restarted or flushed; the tests delete exactly the keys that appeared while they ran.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account
from netkit import TEST_REDIS_URL, WORKER_READY_TIMEOUT, Net, deploy_net
from services import ChildProcess, redis_test_database, start_child

from workers.chain import ChainClient, LocalSigner, deploy_network
from workers.chain.accounts import KEYSTORE_ENV, KEYSTORE_PASSWORD_ENV, PRIVATE_KEY_ENV
from workers.chain.client import RPC_URL_ENV
from workers.chain.deployments import DEPLOYMENTS_DIR_ENV
from workers.chain.localnode import dev_signer, start_anvil
from workers.chain.units import WEI_PER_DSH
from workers.storage.testing import start_js_ipfs
from workers.tasks.app import app, point_app_at

ETH = 10**18


@pytest.fixture(scope="session")
def anvil():
    node = start_anvil()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def js_ipfs():
    """One real js-ipfs daemon per session (the storage and shard tests), started only when a test asks for it."""
    node = start_js_ipfs()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def deployments_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("deployments")


@pytest.fixture(scope="session")
def treasury(anvil, deployments_dir) -> ChainClient:
    """Client of dev account 0: the deployer, holding the genesis supply."""
    return ChainClient(anvil.url, dev_signer(0), deployments_dir=deployments_dir)


@pytest.fixture(scope="session")
def network(treasury):
    """The deployment record of the session's network (default parameters)."""
    return deploy_network(treasury)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, deployments_dir):
    """No key, endpoint or deployments folder leaks in from the developer's shell."""
    for name in (PRIVATE_KEY_ENV, KEYSTORE_ENV, KEYSTORE_PASSWORD_ENV, RPC_URL_ENV, "DEEPSHARD_BROWNIE_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(DEPLOYMENTS_DIR_ENV, str(deployments_dir))


@dataclass
class FreshAccount:
    """A new account for one test. `key` is a throwaway test key, used only to set the env for the CLI."""

    signer: LocalSigner
    key: str
    client: ChainClient

    @property
    def address(self) -> str:
        return self.signer.address

    def nonce(self) -> int:
        return self.client.w3.eth.get_transaction_count(self.address)


@pytest.fixture
def make_account(anvil, treasury, network, deployments_dir):
    """Factory: make_account(dsh=..., eth=...) -> a funded FreshAccount."""
    token = treasury.contract("DeepshardToken")

    def make(dsh: int = 50_000, eth: int = 10) -> FreshAccount:
        account = Account.create()
        key = account.key.hex()
        signer = LocalSigner(account)
        treasury.w3.provider.make_request("anvil_setBalance", [signer.address, hex(eth * ETH)])
        if dsh:
            treasury.transact(token.functions.transfer(signer.address, dsh * WEI_PER_DSH))
        client = ChainClient(anvil.url, signer, deployments_dir=deployments_dir)
        return FreshAccount(signer, key, client)

    return make


# ---------------------------------------------------------------- a network of its own per module, Redis, workers


@pytest.fixture(scope="module")
def net_anvil():
    node = start_anvil()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def net(net_anvil, tmp_path_factory) -> Net:
    return deploy_net(net_anvil.url, tmp_path_factory.mktemp("net"))


@pytest.fixture(scope="session")
def redis_db():
    """A client of the test database; on exit, deletes the keys the tests created there."""
    with redis_test_database(TEST_REDIS_URL, "the node tests", point_app=False) as client:
        yield client


@pytest.fixture
def redis_clean(redis_db):
    """The test database, with this process's Celery app pointing at it (other test folders point it at
    databases of their own) and the keys this test created deleted when it ends."""
    existing = set(redis_db.keys("*"))
    previous = app.conf.broker_url
    point_app_at(TEST_REDIS_URL)
    try:
        yield redis_db
    finally:
        point_app_at(previous)
        created = set(redis_db.keys("*")) - existing
        if created:
            redis_db.delete(*created)


@pytest.fixture
def spawn(redis_clean, tmp_path_factory):
    """Factory: spawn(command, env, ready=marker) -> a ChildProcess; all are stopped (by PID) when the test ends,
    before its Redis keys are deleted."""
    started: list[ChildProcess] = []

    def start(command: list[str], env: dict[str, str], ready: str | None = None, name: str = "proc") -> ChildProcess:
        log_path = tmp_path_factory.mktemp(name) / f"{name}.log"
        proc = start_child(name, command, env, log_path, TEST_REDIS_URL, ready, WORKER_READY_TIMEOUT)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:  # warm shutdowns in parallel, then wait for each
            if proc.process.poll() is None:
                proc.process.terminate()
        for proc in started:
            proc.stop()
