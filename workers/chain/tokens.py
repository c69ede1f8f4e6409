"""DSH transfers between accounts (`deepshard transfer`, the devnet's and the demo's funding)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from eth_utils import is_address, to_checksum_address
from web3 import Web3

from .client import ChainClient
from .errors import InvalidRequest
from .units import format_dsh, parse_dsh


@dataclass(frozen=True)
class TransferResult:
    tx_hash: str
    sender: str
    recipient: str
    amount: int  # wei
    sender_balance: int  # wei, after the transfer


def transfer_dsh(client: ChainClient, to: str, amount: str | int | Decimal, *, wait: bool = True) -> TransferResult:
    """Sends `amount` DSH (a decimal such as "1,000.5"; an int is wei) from the client's account to `to`.

    Checks before sending (`InvalidRequest`): `to` is a non-zero address, the amount parses and is positive, the
    sender holds it and has ETH for gas. With `wait=False` the transaction is only sent (the nonce manager
    numbers several sent at once) and the balance shown is the one before it."""
    if not isinstance(to, str) or not is_address(to) or int(to, 16) == 0:
        raise InvalidRequest(f"{to!r} is not a recipient address (0x followed by 40 hex digits)")
    recipient = to_checksum_address(to)
    wei = amount if isinstance(amount, int) else parse_dsh(amount)
    if wei <= 0:
        raise InvalidRequest(f"amount must be greater than 0 DSH, got {format_dsh(wei, grouped=True)}")
    token = client.contract("DeepshardToken")
    sender = client.address
    balance = token.functions.balanceOf(sender).call()
    if balance < wei:
        raise InvalidRequest(
            f"insufficient DSH: {sender} holds {format_dsh(balance, grouped=True)} DSH, the transfer needs "
            f"{format_dsh(wei, grouped=True)} DSH"
        )
    if client.w3.eth.get_balance(to_checksum_address(sender)) == 0:
        raise InvalidRequest(f"{sender} has no ETH to pay for gas")
    sent = client.transact(token.functions.transfer(recipient, wei), wait=wait)
    if not wait:
        return TransferResult(str(sent), sender, recipient, wei, balance)
    return TransferResult(
        Web3.to_hex(sent["transactionHash"]), sender, recipient, wei, token.functions.balanceOf(sender).call()
    )
