"""Adapter for brownie scripts: a `ChainClient` on brownie's connected network, signing as brownie's account.

Brownie only supplies the endpoint and the account; deploying and staking go through the same
workers.chain code as the CLI. Imported by scripts/ only (brownie is imported lazily, so workers never
need its runtime). The account, in order of preference:
  * `DEEPSHARD_BROWNIE_ACCOUNT`: an id of `brownie accounts` (encrypted keystore), unlocked with
    `DEEPSHARD_KEYSTORE_PASSWORD` or brownie's password prompt;
  * `DEEPSHARD_PRIVATE_KEY`: a raw key, through `accounts.add`;
  * on a local development network: `accounts[0]`, an account the node unlocks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

from .accounts import KEYSTORE_PASSWORD_ENV, PRIVATE_KEY_ENV, LocalSigner, NodeSigner, Signer
from .client import ChainClient
from .errors import ChainError, SignerUnavailable

BROWNIE_ACCOUNT_ENV = "DEEPSHARD_BROWNIE_ACCOUNT"

T = TypeVar("T")


def brownie_signer() -> Signer:
    """The signer chosen from brownie's accounts (see the module docstring)."""
    from brownie import accounts
    from brownie._config import CONFIG

    account_id = os.environ.get(BROWNIE_ACCOUNT_ENV)
    if account_id:
        account = accounts.load(account_id, password=os.environ.get(KEYSTORE_PASSWORD_ENV))
        if isinstance(account, list):  # brownie lists its keystores when given no id
            raise SignerUnavailable(f"{BROWNIE_ACCOUNT_ENV} names no brownie account")
        return LocalSigner.from_key(account.private_key)
    private_key = os.environ.get(PRIVATE_KEY_ENV)
    if private_key:
        try:
            # Registers the account with brownie too. On a dev chain, a key of one of the node's own
            # accounts yields brownie's unlocked `Account`, which has no key: sign with the env key.
            accounts.add(private_key)
        except Exception:
            raise SignerUnavailable(f"{PRIVATE_KEY_ENV} is not a valid private key") from None
        return LocalSigner.from_key(private_key)
    if CONFIG.network_type == "development" and len(accounts) > 0:
        return NodeSigner(accounts[0].address)
    raise SignerUnavailable(
        f"no account for this network: set {BROWNIE_ACCOUNT_ENV} (an id from `brownie accounts list`) "
        f"or {PRIVATE_KEY_ENV}"
    )


def brownie_client() -> ChainClient:
    """A `ChainClient` on the endpoint of brownie's active network."""
    from brownie import network

    if not network.is_connected():
        raise ChainError("brownie is not connected to a network: run with `brownie run ... --network NAME`")
    endpoint = getattr(network.web3.provider, "endpoint_uri", None)  # HTTP and WebSocket providers have one
    if not endpoint:
        raise ChainError("brownie's network has no endpoint URL (an IPC connection?): use an HTTP network")
    return ChainClient(str(endpoint), brownie_signer())


def run_or_exit(action: Callable[[], T]) -> T:
    """Runs `action`; an expected failure prints `error: ...` and exits 1 instead of a traceback."""
    try:
        return action()
    except ChainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        # SystemExit passes through brownie's `except Exception`, so `brownie run` exits with status 1.
        raise SystemExit(1) from None
