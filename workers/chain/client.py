"""`ChainClient`: web3.py access to a Deepshard network, without brownie's runtime.

One client = one RPC endpoint + (optionally) one signer. It checks the node answers when created,
binds contracts to the chain's deployment record, and sends transactions safely:
  * sends from one account are serialised: across threads by a lock, across the processes of this host (a
    worker's pool, a worker and the CLI) by a file lock per (chain id, address) (`NonceManager`); the nonce is
    the node's pending count or the next after our last send, whichever is higher;
  * a nonce conflict, in any node's wording (`nonce_conflict`: anvil, geth, Ganache, Besu, Nethermind,
    OpenEthereum), resyncs the nonce and retries, `NONCE_RETRIES` times; a node that already holds the very
    transaction we signed ("already known") has it: that is a send, not a conflict;
  * fees are EIP-1559 when the latest block has a base fee, legacy gasPrice otherwise (anvil, ganache,
    pre-London chains);
  * gas is estimated first, so a transaction that would revert is never sent: the revert becomes a
    `TransactionReverted` naming the decoded custom error;
  * the receipt is awaited with a timeout, and status 0 raises (with the reason replayed via eth_call).
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import requests
from eth_typing import HexStr
from eth_utils import to_checksum_address
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception, Web3RPCError
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.rpc.utils import ExceptionRetryConfiguration
from web3.types import RPCEndpoint, RPCResponse, TxParams, TxReceipt

from ..safejson import JsonRejected, parse_json
from .accounts import LocalSigner, Signer
from .artifacts import load_artifact
from .deployments import Deployment, contract_address, deployment_path, load_deployment
from .endpoint import DEFAULT_RPC_URL as DEFAULT_RPC_URL
from .endpoint import RPC_URL_ENV as RPC_URL_ENV
from .endpoint import default_rpc_timeout, default_rpc_url, display_url, normalise_rpc_url
from .errors import (
    InvalidRequest,
    NoDeployment,
    NodeUnavailable,
    ReceiptTimeout,
    SignerUnavailable,
    TransactionRejected,
    TransactionReverted,
)
from .revert import decode_revert, revert_data_from_exception

#: Estimates are exact for the state they ran on; the margin absorbs state moving before inclusion.
GAS_MARGIN = 1.2
#: Tip when the node cannot suggest one (pre-1559 nodes that still report a base fee).
FALLBACK_PRIORITY_FEE = 10**9
#: Times a send is retried after resyncing a stale nonce.
NONCE_RETRIES = 5
#: Where the per-account send locks live (a folder every process of this host sees): `$DEEPSHARD_LOCK_DIR`, else
#: `deepshard-locks-<uid>` in the system's temporary folder.
LOCK_DIR_ENV = "DEEPSHARD_LOCK_DIR"

#: How nodes word "this nonce is taken": the account's nonce moved past it, or another transaction holds it.
#: anvil: "nonce too low", "replacement transaction underpriced"; geth/erigon: "nonce too low", "replacement
#: transaction underpriced"; Ganache 7: "transaction underpriced" (a replacement), Ganache 6 "the tx doesn't have the
#: correct nonce"; Besu: "Nonce too low", "REPLACEMENT_UNDERPRICED"; Nethermind: "NonceTooLow", "OldNonce";
#: OpenEthereum: "Transaction nonce is too low", "another transaction with same nonce".
NONCE_CONFLICT = re.compile(
    r"nonce too low|nonce is too low|noncetoolow|oldnonce|replacement.transaction.underpriced|replacement_underpriced"
    r"|^transaction underpriced$|correct nonce|same nonce|nonce has already been used|invalid nonce",
    re.IGNORECASE,
)
#: How nodes word "I already have this very transaction" (geth "already known", anvil "transaction already
#: imported", OpenEthereum "already imported", Nethermind "AlreadyKnown", Besu "KNOWN_TRANSACTION").
ALREADY_KNOWN = re.compile(r"already known|already imported|alreadyknown|known_transaction", re.IGNORECASE)


#: Deepest JSON an RPC answer may nest (levels). A block with its transactions and their access lists is about
#: 6; a hostile node's 200,000 levels would otherwise be a RecursionError inside web3's `json.loads`.
MAX_RPC_JSON_DEPTH = 64


class _CheckedHTTPProvider(HTTPProvider):
    """web3's HTTP provider whose answers are parsed by `workers.safejson` (depth bounded before parsing): a
    malformed, too deep or non-JSON answer to any call is one `NodeUnavailable` line, never a traceback."""

    def __init__(self, *args: Any, display_url: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._display_url = display_url

    def decode_rpc_response(self, raw_response: bytes) -> RPCResponse:  # type: ignore[override]
        try:
            answer = parse_json(raw_response, what="the node's answer", max_depth=MAX_RPC_JSON_DEPTH)
        except JsonRejected as exc:
            raise self._unusable(exc.reason) from None
        # web3 checks this too, but as a BadResponseFormat traceback from whichever call met it first
        responses = answer if isinstance(answer, list) else [answer]
        if not all(isinstance(r, dict) and ("result" in r or "error" in r) for r in responses):
            raise self._unusable("its answer is not a JSON-RPC response")
        return cast(RPCResponse, answer)

    def _unusable(self, reason: str) -> NodeUnavailable:
        return NodeUnavailable(f"{self._display_url} is not a usable Ethereum JSON-RPC node ({reason})")


def nonce_conflict(message: str) -> bool:
    """Whether a node's rejection `message` says the nonce is taken (`NONCE_CONFLICT`)."""
    return bool(NONCE_CONFLICT.search(message.strip()))


def already_known(message: str) -> bool:
    """Whether a node's rejection `message` says it already holds this exact transaction (`ALREADY_KNOWN`)."""
    return bool(ALREADY_KNOWN.search(message))


def lock_dir() -> str:
    """`$DEEPSHARD_LOCK_DIR`, else `deepshard-locks-<uid>` in the system's temporary folder (created if missing)."""
    # One folder per user: a folder another user created first would refuse our lock files.
    folder = os.environ.get(LOCK_DIR_ENV) or os.path.join(tempfile.gettempdir(), f"deepshard-locks-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


class NonceManager:
    """Consecutive nonces for one account, one send at a time across the threads of a client and the processes of
    this host.

    The node's pending count alone is not enough: between one sender's send and the node counting it, a second
    sender asking the node would get the same nonce. So a send holds a thread lock and an exclusive file lock
    (`lock_path`, one per chain and account) from choosing its nonce until the node accepted it, and the nonce is
    the node's pending count or the one after this client's last send, whichever is higher. A nonce is consumed
    only when the send succeeds, so a failed send leaves no gap.
    """

    def __init__(self, fetch_pending_count: Callable[[], int], lock_path: str | None = None):
        self._fetch = fetch_pending_count
        self._lock = threading.Lock()
        self._path = lock_path
        self._next: int | None = None

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        if self._path is None:
            yield
            return
        try:
            handle = open(self._path, "a+b")  # noqa: SIM115 - closed by the with below
        except OSError as exc:  # not a node failure: say what to change instead of retrying
            raise InvalidRequest(
                f"cannot open the send lock {self._path} ({exc.strerror}): set {LOCK_DIR_ENV} to a folder this user "
                "can write"
            ) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def reserve(self) -> Iterator[int]:
        """Yields the next nonce under the locks; commits it only if the block exits without error."""
        with self._lock, self._exclusive():
            pending = self._fetch()
            nonce = pending if self._next is None else max(self._next, pending)
            yield nonce
            self._next = nonce + 1

    def resync(self) -> None:
        """Forgets the local counter; the next `reserve` takes the node's pending count."""
        with self._lock:
            self._next = None


class ChainClient:
    """A connection to one node, optionally with a signer. Raises `NodeUnavailable` if the node is down."""

    def __init__(
        self,
        rpc_url: str | None = None,
        signer: Signer | None = None,
        *,
        receipt_timeout: float = 120.0,
        request_timeout: float | None = None,
        connect_timeout: float = 3.0,
        poll_interval: float = 0.1,
        deployments_dir: str | os.PathLike | None = None,
    ):
        try:
            self.rpc_url = normalise_rpc_url(rpc_url or default_rpc_url())
            request_timeout = default_rpc_timeout() if request_timeout is None else request_timeout
        except InvalidRequest as exc:
            raise NodeUnavailable(str(exc)) from None
        self.display_url = display_url(self.rpc_url)  # what messages and reprs show
        self.signer = signer
        self.receipt_timeout = receipt_timeout
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.poll_interval = poll_interval
        self.deployments_dir = deployments_dir
        provider = _CheckedHTTPProvider(
            self.rpc_url,
            display_url=self.display_url,
            # A dead or hung node must fail fast, not hang: bound both connecting and waiting for an answer.
            request_kwargs={"timeout": (connect_timeout, request_timeout)},
            # web3 retries 5 times with backoff by default (timeouts included), which turns one hung
            # node into a minute of waiting. Retry transient connection failures once, never timeouts.
            exception_retry_configuration=ExceptionRetryConfiguration(
                errors=(requests.ConnectionError, requests.HTTPError), retries=2, backoff_factor=0.1
            ),
        )
        self.w3 = Web3(provider)
        # PoA testnets put extra bytes in block headers that web3 rejects; the middleware is a no-op elsewhere.
        self.w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        self.chain_id = self._probe()
        self._nonces = NonceManager(
            self._pending_nonce,
            None if signer is None else os.path.join(lock_dir(), f"{self.chain_id}-{signer.address.lower()}.lock"),
        )
        self._deployment: Deployment | None = None
        self._verified_code: set[str] = set()
        self._names: dict[str, str] = {}  # address -> contract name, for error messages
        self._names_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ChainClient({self.display_url}, chain {self.chain_id}, signer={self.signer!r})"

    # ------------------------------------------------------------------ connection

    def _probe(self) -> int:
        try:
            return int(self.w3.eth.chain_id)
        except (requests.RequestException, OSError) as exc:
            raise NodeUnavailable(f"no Ethereum node answers at {self.display_url} ({_short_reason(exc)})") from None
        except (Web3Exception, ValueError) as exc:
            raise NodeUnavailable(f"{self.display_url} is not a usable Ethereum JSON-RPC node ({exc})") from None

    @property
    def address(self) -> str:
        """The signer's address; `SignerUnavailable` for a read-only client."""
        if self.signer is None:
            raise SignerUnavailable("this operation needs a signing key, and none is configured")
        return self.signer.address

    def with_signer(self, signer: Signer) -> ChainClient:
        """A client on the same endpoint and deployments that signs as `signer`."""
        return ChainClient(
            self.rpc_url,
            signer,
            receipt_timeout=self.receipt_timeout,
            request_timeout=self.request_timeout,
            connect_timeout=self.connect_timeout,
            poll_interval=self.poll_interval,
            deployments_dir=self.deployments_dir,
        )

    # ------------------------------------------------------------------ contracts

    def deployment(self, reload: bool = False) -> Deployment:
        """This chain's deployment record (`NoDeployment` if none)."""
        if self._deployment is None or reload:
            self._deployment = load_deployment(self.chain_id, self.deployments_dir)
            self._verified_code.clear()
        return self._deployment

    def contract(self, name: str) -> Contract:
        """Contract `name` of this chain's deployment, checked to have code (a reset dev chain has none)."""
        address = contract_address(self.deployment(), name)
        if address not in self._verified_code:
            if not self.w3.eth.get_code(to_checksum_address(address)):
                path = deployment_path(self.chain_id, self.deployments_dir)
                raise NoDeployment(
                    f"{path} places {name} at {address}, but chain {self.chain_id} has no code there "
                    "(was the chain reset?): redeploy with `deepshard deploy`"
                )
            self._verified_code.add(address)
        return self.at(name, address)

    def at(self, name: str, address: str) -> Contract:
        """Contract `name`'s ABI bound to any address."""
        address = to_checksum_address(address)
        with self._names_lock:
            self._names[address] = name
        return self.w3.eth.contract(address=address, abi=load_artifact(name).abi)

    # ------------------------------------------------------------------ transactions

    def transact(self, contract_fn, *, value: int = 0, gas: int | None = None, wait: bool = True):
        """Sends `contract_fn` (e.g. `registry.functions.stake(2, amount)`) from the signer.

        Returns the receipt, or the tx hash when `wait` is false. Gas is estimated unless given, so a
        reverting call raises `TransactionReverted` before anything is sent.
        """
        name = self._names.get(contract_fn.address, contract_fn.address)
        label = f"{name}.{contract_fn.fn_name}"
        fields = self._call_fields(contract_fn.build_transaction(self._placeholder_fields(value)))
        return self._send(fields, label, gas=gas, wait=wait)

    def deploy(self, name: str, *args: Any, gas: int | None = None) -> tuple[Contract, TxReceipt]:
        """Deploys contract `name` with constructor `args`; returns the bound contract and the receipt."""
        artifact = load_artifact(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        fields = self._call_fields(factory.constructor(*args).build_transaction(self._placeholder_fields(0)))
        receipt = self._send(fields, f"deploy {name}", gas=gas, wait=True)
        return self.at(name, receipt["contractAddress"]), receipt

    def send_value(self, to: str, value: int, *, wait: bool = True):
        """Sends plain ETH."""
        fields = {"from": self.address, "to": to_checksum_address(to), "value": int(value), "data": "0x"}
        return self._send(fields, "ETH transfer", gas=None, wait=wait)

    def wait(self, tx_hash: str | bytes, label: str = "transaction") -> TxReceipt:
        """Waits for the receipt (up to `receipt_timeout`); raises `TransactionReverted` on status 0."""
        tx_hex = HexStr(Web3.to_hex(tx_hash) if isinstance(tx_hash, (bytes, bytearray)) else tx_hash)
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hex, timeout=self.receipt_timeout, poll_latency=self.poll_interval
            )
        except TimeExhausted:
            raise ReceiptTimeout(
                f"{label}: tx {tx_hex} not mined within {self.receipt_timeout:g} s (it may still be mined)",
                tx_hex,
            ) from None
        if receipt["status"] == 0:
            reason = self._replay_revert(tx_hex, receipt)
            raise TransactionReverted(
                f"{label} reverted on-chain in tx {tx_hex}: {reason or 'no reason given'}", reason, tx_hex
            )
        return receipt

    def sign_typed_data(self, full_message: dict[str, Any]) -> tuple[int, bytes, bytes]:
        """EIP-712 signature (v, r, s) by the signer: locally, or by the node for a `NodeSigner`."""
        if self.signer is None:
            raise SignerUnavailable("signing needs a key, and none is configured")
        if isinstance(self.signer, LocalSigner):
            return self.signer.sign_typed_data(full_message)
        signature = self.w3.manager.request_blocking(
            RPCEndpoint("eth_signTypedData_v4"), [self.signer.address, _jsonable(full_message)]
        )
        raw = bytes.fromhex(str(signature).removeprefix("0x"))
        v = raw[64] if raw[64] >= 27 else raw[64] + 27
        return v, raw[:32], raw[32:64]

    def fee_fields(self) -> dict[str, int]:
        """EIP-1559 fees if the latest block has a base fee, else a legacy gasPrice."""
        base_fee = self.w3.eth.get_block("latest").get("baseFeePerGas")
        if base_fee is None:
            return {"gasPrice": int(self.w3.eth.gas_price)}
        try:
            tip = int(self.w3.eth.max_priority_fee)
        except (Web3Exception, ValueError):
            tip = FALLBACK_PRIORITY_FEE
        # Twice the base fee survives six full blocks of base-fee increases before the tx gets stuck.
        return {"type": 2, "maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * int(base_fee) + tip}

    # ------------------------------------------------------------------ internals

    def _placeholder_fields(self, value: int) -> dict[str, Any]:
        # Every field web3 would otherwise fetch is given, so build_transaction only encodes calldata.
        return {"from": self.address, "value": int(value), "gas": 0, "gasPrice": 0, "chainId": self.chain_id}

    @staticmethod
    def _call_fields(built: dict[str, Any]) -> dict[str, Any]:
        fields = {"from": built["from"], "value": built.get("value", 0), "data": built["data"]}
        if built.get("to"):
            fields["to"] = built["to"]
        return fields

    def _send(self, fields: dict[str, Any], label: str, *, gas: int | None, wait: bool):
        if gas is None:
            gas = self._estimate_gas(fields, label)
        tx = {**fields, **self.fee_fields(), "gas": int(gas), "chainId": self.chain_id}
        for attempt in range(NONCE_RETRIES + 1):
            try:
                with self._nonces.reserve() as nonce:
                    tx_hash = self._submit({**tx, "nonce": nonce})
                break
            except _AlreadyKnown as known:
                # Our own transaction reached the node before (a send whose answer was lost): it is sent.
                tx_hash = known.tx_hash
                self._nonces.resync()
                break
            except Web3RPCError as exc:
                message = _rpc_message(exc)
                if nonce_conflict(message) and attempt < NONCE_RETRIES:
                    # Someone else (another host, a wallet) used this nonce: ask the node again.
                    self._nonces.resync()
                    continue
                raise TransactionRejected(f"{label}: the node rejected the transaction: {message}") from None
            except (requests.RequestException, OSError) as exc:
                # The send may or may not have reached the node; resync so we never reuse or skip a nonce.
                self._nonces.resync()
                raise NodeUnavailable(f"{label}: lost the node at {self.display_url} ({_short_reason(exc)})") from None
        if not wait:
            return tx_hash
        return self.wait(tx_hash, label)

    def _submit(self, tx: dict[str, Any]) -> str:
        if self.signer is None:
            raise SignerUnavailable("sending a transaction needs a signing key, and none is configured")
        if isinstance(self.signer, LocalSigner):
            raw = self.signer.sign_transaction(_without_from(tx))
            try:
                tx_hash = self.w3.eth.send_raw_transaction(raw)
            except Web3RPCError as exc:
                if already_known(_rpc_message(exc)):
                    raise _AlreadyKnown(Web3.to_hex(Web3.keccak(raw))) from None
                raise
        else:
            # The fields come from web3's own build_transaction (or `send_value`): a TxParams in all but name.
            tx_hash = self.w3.eth.send_transaction(cast(TxParams, tx))
        return Web3.to_hex(tx_hash)

    def _estimate_gas(self, fields: dict[str, Any], label: str) -> int:
        try:
            estimate = self.w3.eth.estimate_gas(cast(TxParams, fields))
        except (ContractLogicError, Web3RPCError) as exc:
            reason = decode_revert(revert_data_from_exception(exc))
            message = _rpc_message(exc)
            if reason is None and not isinstance(exc, ContractLogicError) and "revert" not in message.lower():
                # Not a revert: e.g. no ETH for gas, or the node refusing the call.
                raise TransactionRejected(f"{label}: gas estimation failed: {message}") from None
            reason = reason or message
            raise TransactionReverted(f"{label} would revert: {reason}", reason) from None
        except (requests.RequestException, OSError) as exc:
            raise NodeUnavailable(f"{label}: lost the node at {self.display_url} ({_short_reason(exc)})") from None
        block_limit = int(self.w3.eth.get_block("latest")["gasLimit"])
        return min(int(estimate * GAS_MARGIN), block_limit)

    def _replay_revert(self, tx_hash: HexStr, receipt: TxReceipt) -> str | None:
        """Why a mined tx failed: re-run it with eth_call on the state before its block."""
        tx = self.w3.eth.get_transaction(tx_hash)
        if receipt["gasUsed"] >= tx["gas"]:
            return "out of gas"
        call: TxParams = {"from": tx["from"], "value": tx["value"], "data": tx["input"], "gas": tx["gas"]}
        if tx.get("to"):
            call["to"] = tx["to"]
        try:
            self.w3.eth.call(call, block_identifier=max(receipt["blockNumber"] - 1, 0))
        except (ContractLogicError, Web3RPCError) as exc:
            return decode_revert(revert_data_from_exception(exc)) or _rpc_message(exc)
        return None  # the replay passed: the failure depended on transactions earlier in the same block

    def _pending_nonce(self) -> int:
        return int(self.w3.eth.get_transaction_count(to_checksum_address(self.address), "pending"))


class _AlreadyKnown(Exception):
    """The node already holds the transaction we just signed (its hash is `tx_hash`)."""

    def __init__(self, tx_hash: str):
        super().__init__(tx_hash)
        self.tx_hash = tx_hash


def _without_from(tx: dict[str, Any]) -> dict[str, Any]:
    # eth_account derives the sender from the key; a stray "from" is rejected by some versions.
    return {k: v for k, v in tx.items() if k != "from"}


def _rpc_message(exc: BaseException) -> str:
    response = getattr(exc, "rpc_response", None)
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        return str(response["error"].get("message", exc))
    message = getattr(exc, "message", None)
    return str(message or exc)


def _short_reason(exc: BaseException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or unreachable"
    return type(exc).__name__


def _jsonable(value: Any) -> Any:
    """Typed data as JSON for eth_signTypedData_v4: big integers as decimal strings (JSON numbers lose them)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
