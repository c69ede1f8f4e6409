"""Fixtures for the workers tests: one real anvil per session, the network deployed on it once.

Tests isolate themselves with fresh accounts (a new key, ETH set by anvil_setBalance, DSH from the
treasury) instead of restarting the chain. The deployment record lives in a temporary folder, and
DEEPSHARD_DEPLOYMENTS_DIR points there, so the repo's deployments/ is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account

from workers.chain import ChainClient, LocalSigner, deploy_network
from workers.chain.deployments import DEPLOYMENTS_DIR_ENV
from workers.chain.accounts import KEYSTORE_ENV, KEYSTORE_PASSWORD_ENV, PRIVATE_KEY_ENV
from workers.chain.client import RPC_URL_ENV
from workers.chain.localnode import dev_signer, start_anvil
from workers.chain.units import WEI_PER_DSH

ETH = 10**18


@pytest.fixture(scope="session")
def anvil():
    node = start_anvil()
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
