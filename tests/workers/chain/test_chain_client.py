"""ChainClient against a real anvil: node checks, revert decoding, fees, receipts and the nonce manager."""

import contextlib
import http.server
import json
import socket
import threading
import time

import pytest
from services import NO_HANG_SECONDS

from workers.chain import (
    ChainClient,
    InvalidRequest,
    NoDeployment,
    NodeSigner,
    NodeUnavailable,
    ReceiptTimeout,
    SignerUnavailable,
    TransactionRejected,
    TransactionReverted,
    save_deployment,
    stake,
)
from workers.chain.localnode import dev_signer, free_port
from workers.chain.units import WEI_PER_DSH


def test_dead_node_fails_fast():
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(NodeUnavailable, match=f"no Ethereum node answers at {url}"):
        ChainClient(url)
    assert time.monotonic() - started < NO_HANG_SECONDS  # no retry loop


def test_hung_node_times_out_instead_of_hanging():
    # A socket that accepts connections (kernel backlog) but never answers a request.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(NodeUnavailable, match="timed out"):
            ChainClient(url, request_timeout=1)
        assert time.monotonic() - started < NO_HANG_SECONDS  # the request timeout held


def test_repr_shows_address_not_key(make_account):
    account = make_account(dsh=0)
    text = repr(account.client)
    assert account.address in text
    assert account.key.removeprefix("0x") not in text.lower()


def test_read_only_client_cannot_send(anvil, network):
    client = ChainClient(anvil.url)
    token = client.contract("DeepshardToken")
    with pytest.raises(SignerUnavailable):
        client.transact(token.functions.transfer(client.w3.eth.accounts[0], 1))


def test_reverted_estimate_names_the_custom_error(make_account):
    account = make_account()
    registry = account.client.contract("StakeRegistry")
    nonce = account.nonce()
    with pytest.raises(TransactionReverted) as raised:
        account.client.transact(registry.functions.stake(2, 5))
    assert raised.value.reason == f"BelowMinimum(stakeAfter=5, minStake={1000 * WEI_PER_DSH})"
    assert "StakeRegistry.stake would revert: BelowMinimum(stakeAfter=5" in str(raised.value)
    assert account.nonce() == nonce  # nothing was sent


def test_error_from_another_contract_is_decoded(make_account):
    # The token's error bubbles up through the registry's SafeERC20 call.
    account = make_account()
    registry = account.client.contract("StakeRegistry")
    expected = r"ERC20InsufficientAllowance\(spender=0x[0-9a-fA-F]{40}, allowance=0"
    with pytest.raises(TransactionReverted, match=expected):
        account.client.transact(registry.functions.stake(2, 1000 * WEI_PER_DSH))


def test_onchain_revert_raises_with_replayed_reason(make_account):
    account = make_account()
    registry = account.client.contract("StakeRegistry")
    nonce = account.nonce()
    # An explicit gas limit skips estimation, so the transaction is mined and fails with status 0.
    with pytest.raises(TransactionReverted, match="reverted on-chain in tx 0x[0-9a-f]{64}: BelowMinimum") as raised:
        account.client.transact(registry.functions.stake(2, 5), gas=200_000)
    receipt = account.client.w3.eth.get_transaction_receipt(raised.value.tx_hash)
    assert receipt["status"] == 0
    assert account.nonce() == nonce + 1


def test_concurrent_transactions_get_distinct_nonces(make_account):
    account = make_account(dsh=100)
    token = account.client.contract("DeepshardToken")
    recipient = dev_signer(7).address
    start_nonce = account.nonce()
    receipts, errors = [], []

    def send():
        try:
            receipts.append(account.client.transact(token.functions.transfer(recipient, 10**18)))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    nonces = sorted(account.client.w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts)
    assert nonces == list(range(start_nonce, start_nonce + 12))
    assert all(r["status"] == 1 for r in receipts)
    assert token.functions.balanceOf(account.address).call() == 88 * 10**18


def test_nonce_resyncs_after_another_sender(make_account, anvil, deployments_dir):
    account = make_account(dsh=10)
    token = account.client.contract("DeepshardToken")
    recipient = dev_signer(7).address
    account.client.transact(token.functions.transfer(recipient, 1))  # local counter now initialised
    # A second client with the same key (another process, a wallet) uses the next nonces behind its back.
    other = ChainClient(anvil.url, account.signer, deployments_dir=deployments_dir)
    other_token = other.contract("DeepshardToken")
    other.transact(other_token.functions.transfer(recipient, 1))
    other.transact(other_token.functions.transfer(recipient, 1))
    receipt = account.client.transact(token.functions.transfer(recipient, 1))
    assert receipt["status"] == 1
    assert account.nonce() == 4


def test_legacy_gas_price_when_no_base_fee(make_account, monkeypatch):
    account = make_account(dsh=10)
    eth = account.client.w3.eth
    real_get_block = eth.get_block

    def block_without_base_fee(*args, **kwargs):
        block = dict(real_get_block(*args, **kwargs))
        block.pop("baseFeePerGas", None)
        return block

    monkeypatch.setattr(eth, "get_block", block_without_base_fee)
    fees = account.client.fee_fields()
    assert set(fees) == {"gasPrice"}
    token = account.client.contract("DeepshardToken")
    receipt = account.client.transact(token.functions.transfer(dev_signer(7).address, 1))
    tx = eth.get_transaction(receipt["transactionHash"])
    assert tx["type"] == 0 and tx["gasPrice"] == fees["gasPrice"]


def test_eip1559_fees_when_base_fee(treasury):
    fees = treasury.fee_fields()
    assert fees["type"] == 2 and fees["maxFeePerGas"] >= fees["maxPriorityFeePerGas"]


def test_receipt_timeout(make_account, anvil, deployments_dir):
    account = make_account(dsh=10)
    client = ChainClient(anvil.url, account.signer, deployments_dir=deployments_dir, receipt_timeout=0.5)
    token = client.contract("DeepshardToken")
    client.w3.provider.make_request("evm_setAutomine", [False])
    try:
        with pytest.raises(ReceiptTimeout, match="not mined within 0.5 s") as raised:
            client.transact(token.functions.transfer(dev_signer(7).address, 1))
    finally:
        client.w3.provider.make_request("evm_setAutomine", [True])
        client.w3.provider.make_request("evm_mine", [])
    assert client.wait(raised.value.tx_hash)["status"] == 1


def test_node_signer_stakes_with_permit(treasury, anvil, deployments_dir):
    # Dev account 9 is unlocked by anvil: the node signs both the permit (eth_signTypedData_v4) and the tx.
    node_account = NodeSigner(dev_signer(9).address)
    treasury.transact(treasury.contract("DeepshardToken").functions.transfer(node_account.address, 2000 * WEI_PER_DSH))
    client = ChainClient(anvil.url, node_account, deployments_dir=deployments_dir)
    result = stake(client, "evaluator", "1500", use_permit=True)
    assert result.new_stake == 1500 * WEI_PER_DSH


def test_stale_deployment_without_code(anvil, tmp_path, network):
    stale = dict(network, contracts={"StakeRegistry": {"address": "0x" + "42" * 20, "artifact": "x"}})
    save_deployment(stale, tmp_path)
    client = ChainClient(anvil.url, deployments_dir=tmp_path)
    with pytest.raises(NoDeployment, match="has no code there"):
        client.contract("StakeRegistry")


def test_no_eth_for_gas_is_rejected_without_using_a_nonce(make_account):
    account = make_account(dsh=200, eth=0)
    token = account.client.contract("DeepshardToken")
    with pytest.raises(TransactionRejected, match="(?i)insufficient funds|gas estimation failed"):
        account.client.transact(token.functions.transfer(dev_signer(7).address, 1))
    assert account.nonce() == 0
    with pytest.raises(InvalidRequest, match="no ETH to pay for gas"):
        stake(account.client, "informant", "100")


class _HostileRpc(http.server.BaseHTTPRequestHandler):
    """A JSON-RPC endpoint that answers eth_chainId properly (when `honest_chain_id`) and everything else with
    `answer`: what a hostile or broken node can send."""

    answer = b""
    honest_chain_id = False

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if self.honest_chain_id and request["method"] == "eth_chainId":
            body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x539"}).encode()
        else:
            body = self.answer
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def hostile_rpc(answer: bytes, honest_chain_id: bool = False):
    handler = type("Handler", (_HostileRpc,), {"answer": answer, "honest_chain_id": honest_chain_id})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


DEEP_ANSWER = b'{"jsonrpc":"2.0","id":0,"result":' + b"[" * 200_000 + b"]" * 200_000 + b"}"


MALFORMED_ANSWERS = [
    (DEEP_ANSWER, "nested"),  # a RecursionError inside web3's json.loads before
    (b"<html>hello</html>", "JSON"),
    (b'"0x539"', "not a JSON-RPC response"),
    (b'{"jsonrpc":"2.0","id":0}', "not a JSON-RPC response"),  # neither result nor error: web3's BadResponseFormat
]


@pytest.mark.parametrize("answer, reason", MALFORMED_ANSWERS)
def test_malformed_rpc_answer_to_the_probe_is_one_line(answer, reason):
    with hostile_rpc(answer) as url, pytest.raises(NodeUnavailable) as raised:
        ChainClient(url)
    message = str(raised.value)
    assert message.startswith(f"{url} is not a usable Ethereum JSON-RPC node") and reason in message
    assert "\n" not in message


@pytest.mark.parametrize("answer, reason", MALFORMED_ANSWERS)
def test_malformed_rpc_answer_to_any_later_call_is_one_line(answer, reason):
    with hostile_rpc(answer, honest_chain_id=True) as url:
        client = ChainClient(url)
        assert client.chain_id == 1337
        for call in (client.fee_fields, lambda: client.w3.eth.get_balance("0x" + "11" * 20)):
            with pytest.raises(NodeUnavailable) as raised:
                call()
            assert "is not a usable Ethereum JSON-RPC node" in str(raised.value) and reason in str(raised.value)
