"""Nonce conflicts: every node's wording is recognised, and two processes sending from one key at once all land,
on anvil and on Ganache (the wordings below were reproduced on anvil 1.7.1 and Ganache 7.9.2 by sending a second
transaction with a taken nonce; the others are the wordings of geth, Besu, Nethermind and OpenEthereum)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from eth_account import Account

from workers.chain import ChainClient, InvalidRequest, LocalSigner, NonceManager
from workers.chain.accounts import PRIVATE_KEY_ENV
from workers.chain.client import LOCK_DIR_ENV, already_known, nonce_conflict
from workers.chain.localnode import dev_signer, start_anvil

CONFLICTS = [
    "replacement transaction underpriced",  # anvil, geth: another transaction holds the nonce
    "nonce too low",  # anvil, geth, erigon: the nonce was mined
    "transaction underpriced",  # Ganache 7: another transaction holds the nonce
    "the tx doesn't have the correct nonce. account has nonce of: 5 tx has nonce of: 4",  # Ganache 6
    "Nonce too low",  # Besu
    "REPLACEMENT_UNDERPRICED",  # Besu
    "NonceTooLow",  # Nethermind
    "OldNonce",  # Nethermind
    "Transaction nonce is too low. Try incrementing the nonce.",  # OpenEthereum
    "Transaction gas price is too low. There is another transaction with same nonce in the queue.",  # OpenEthereum
]
KNOWN = ["already known", "transaction already imported", "Transaction with the same hash was already imported."]
OTHERS = [
    "insufficient funds for gas * price + value",
    "intrinsic gas too low",
    "exceeds block gas limit",
    "max fee per gas less than block base fee",
    "transaction underpriced: gas tip cap 1, minimum needed 2",  # geth: below the pool's minimum, not a conflict
]
SENDS_PER_PROCESS = 12

SENDER = """
import json, os, sys, time
from workers.chain import ChainClient, load_signer
client = ChainClient(sys.argv[1], load_signer(), request_timeout=120)  # a loaded machine slows Ganache
first = client.send_value(sys.argv[3], int(sys.argv[4]), wait=False)  # its nonce counter starts here
open(sys.argv[2] + "." + str(os.getpid()), "w").close()  # ready
while not os.path.exists(sys.argv[2]):
    time.sleep(0.01)
rest = [client.send_value(sys.argv[3], int(sys.argv[4]), wait=False) for _ in range(int(sys.argv[5]))]
print(json.dumps([first] + rest))
"""


def mining(client: ChainClient, on: bool) -> None:
    """Anvil's automine on or off (on also mines what is pending). Ganache keeps mining each transaction at once:
    with its miner stopped, its pending count ignores the pool, which no client can work with."""
    if client.chain_id == 31337:
        client.w3.provider.make_request("evm_setAutomine", [on])
        if on:
            client.w3.provider.make_request("evm_mine", [])


@pytest.mark.parametrize("message", CONFLICTS)
def test_every_nodes_wording_of_a_nonce_conflict_is_a_conflict(message):
    assert nonce_conflict(message) and not already_known(message)


@pytest.mark.parametrize("message", KNOWN)
def test_a_transaction_the_node_already_holds_is_recognised(message):
    assert already_known(message) and not nonce_conflict(message)


@pytest.mark.parametrize("message", OTHERS)
def test_other_rejections_are_not_nonce_conflicts(message):
    assert not nonce_conflict(message) and not already_known(message)


def test_two_clients_of_one_key_take_turns_without_a_conflict(anvil, treasury, tmp_path, monkeypatch):
    # Before: the second send of `first` reused the nonce `second` had taken, and anvil's "replacement transaction
    # underpriced" failed it.
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path))
    account = Account.create()
    treasury.send_value(account.address, 10**18)
    first, second = (ChainClient(anvil.url, LocalSigner(account)) for _ in range(2))
    to = dev_signer(1).address
    mining(treasury, False)
    try:
        hashes = [first.send_value(to, 1, wait=False), second.send_value(to, 2, wait=False)]
        hashes.append(first.send_value(to, 3, wait=False))
    finally:
        mining(treasury, True)
    assert [treasury.wait(h)["status"] for h in hashes] == [1, 1, 1]
    assert treasury.w3.eth.get_transaction_count(account.address) == 3


# On anvil only: Ganache 7 intermittently lets a request of two processes sending at once time out (4 of 7 runs,
# in gas estimation), which is Ganache's, not the lock's; its conflict wording is covered above.
def test_two_processes_sending_from_one_key_at_once_all_land(tmp_path):
    node = start_anvil()
    try:
        funder = ChainClient(node.url, dev_signer(0))
        account = Account.create()
        funder.send_value(account.address, 10**18)
        # On anvil nothing is mined while they send: every transaction stays pending, so a reused nonce is a conflict.
        mining(funder, False)
        go = tmp_path / "go"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DEEPSHARD_")},
            PRIVATE_KEY_ENV: account.key.hex(),
            LOCK_DIR_ENV: str(tmp_path / "locks"),
        }
        to = dev_signer(1).address
        senders = [
            subprocess.Popen(
                # Different values: two transactions with one nonce are different transactions.
                [sys.executable, "-c", SENDER, node.url, str(go), to, str(i + 1), str(SENDS_PER_PROCESS - 1)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        # Both start sending together, once both are ready.
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("go.*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        go.touch()
        hashes = []
        for sender in senders:
            out, err = sender.communicate(timeout=300)
            assert sender.returncode == 0, err[-2000:]
            hashes += json.loads(out)
        assert len(set(hashes)) == 2 * SENDS_PER_PROCESS
        mining(funder, True)
        receipts = [funder.wait(tx_hash) for tx_hash in hashes]
        assert all(receipt["status"] == 1 for receipt in receipts)
        assert funder.w3.eth.get_transaction_count(account.address) == 2 * SENDS_PER_PROCESS
    finally:
        node.stop()


def test_a_send_lock_that_cannot_be_opened_is_a_clear_error_not_a_node_failure(tmp_path):
    nonces = NonceManager(lambda: 0, str(tmp_path / "missing-folder" / "31337-0xabc.lock"))
    with pytest.raises(InvalidRequest, match=f"cannot open the send lock .* set {LOCK_DIR_ENV} to a folder"):
        with nonces.reserve():
            pass
