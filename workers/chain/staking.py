"""Staking DSH in a role, as the `deepshard stake` command and the brownie wallet script do it.

Everything that can be known to fail is checked before the first transaction (deployment, role,
amount, role minimum, balances), so a bad request costs nothing and leaves no half-done approve.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from .client import ChainClient
from .errors import InvalidRequest
from .roles import ROLES, parse_role
from .units import format_dsh, parse_dsh

#: How long a signed permit stays valid, in seconds of chain time.
PERMIT_TTL = 60 * 60


@dataclass(frozen=True)
class StakeResult:
    """Outcome of `stake`: amounts in wei."""

    tx_hash: str
    account: str
    role: str
    amount: int
    new_stake: int
    via_permit: bool


def stake(client: ChainClient, role_name: str, amount: str | int | Decimal, use_permit: bool = False) -> StakeResult:
    """Stakes `amount` DSH (a decimal string such as "12.5") in `role_name` (case-insensitive).

    With `use_permit` the allowance comes from a signed EIP-2612 permit inside the same transaction
    (one transaction instead of approve + stake); otherwise an exact `approve` precedes the stake when
    the current allowance is short. Raises `InvalidRequest` before sending anything if the request
    cannot succeed.
    """
    role = parse_role(role_name)
    wei = parse_dsh(amount)
    registry = client.contract("StakeRegistry")
    token = client.contract("DeepshardToken")
    account = client.address

    current = registry.functions.stakeOf(account, role).call()
    minimum = registry.functions.minStake(role).call()
    if current + wei < minimum:
        raise InvalidRequest(
            f"{format_dsh(wei, grouped=True)} DSH is below the {ROLES[role]} minimum: the stake would be "
            f"{format_dsh(current + wei, grouped=True)} DSH, the minimum is {format_dsh(minimum, grouped=True)} DSH"
        )
    balance = token.functions.balanceOf(account).call()
    if balance < wei:
        raise InvalidRequest(
            f"insufficient DSH: {account} holds {format_dsh(balance, grouped=True)} DSH, staking needs "
            f"{format_dsh(wei, grouped=True)} DSH (an account holding DSH can send some: `deepshard transfer "
            f"{account} AMOUNT`)"
        )
    if client.w3.eth.get_balance(to_checksum_address(account)) == 0:
        raise InvalidRequest(f"{account} has no ETH to pay for gas")

    if use_permit:
        deadline = client.w3.eth.get_block("latest")["timestamp"] + PERMIT_TTL
        v, r, s = sign_permit(client, token, registry.address, wei, deadline)
        receipt = client.transact(registry.functions.stakeWithPermit(role, wei, deadline, v, r, s))
    else:
        if token.functions.allowance(account, registry.address).call() < wei:
            # Exactly the amount, not an unlimited allowance: the registry never holds spare rights.
            client.transact(token.functions.approve(registry.address, wei))
        receipt = client.transact(registry.functions.stake(role, wei))

    return StakeResult(
        tx_hash=Web3.to_hex(receipt["transactionHash"]),
        account=account,
        role=ROLES[role],
        amount=wei,
        new_stake=_new_stake(registry, receipt, account, role),
        via_permit=use_permit,
    )


def permit_typed_data(
    domain: tuple[str, str, int, str], owner: str, spender: str, value: int, nonce: int, deadline: int
) -> dict[str, Any]:
    """The EIP-712 message of an EIP-2612 permit; `domain` is (name, version, chain id, token address)."""
    name, version, chain_id, verifying_contract = domain
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {"name": name, "version": version, "chainId": chain_id, "verifyingContract": verifying_contract},
        "message": {"owner": owner, "spender": spender, "value": value, "nonce": nonce, "deadline": deadline},
    }


def sign_permit(
    client: ChainClient, token: Contract, spender: str, value: int, deadline: int
) -> tuple[int, bytes, bytes]:
    """EIP-2612 permit signature (v, r, s) letting `spender` pull `value` of the signer's tokens."""
    owner = client.address
    # The token reports its own EIP-712 domain (ERC-5267), so name/version/chain can never drift.
    _, name, version, chain_id, verifying_contract, _, _ = token.functions.eip712Domain().call()
    nonce = token.functions.nonces(owner).call()
    message = permit_typed_data((name, version, chain_id, verifying_contract), owner, spender, value, nonce, deadline)
    return client.sign_typed_data(message)


def _new_stake(registry: Contract, receipt: Any, account: str, role: int) -> int:
    # The Staked event carries the stake right after this transaction, whatever happened since.
    for event in registry.events.Staked().process_receipt(receipt, errors=DISCARD):
        if event["args"]["account"] == account and event["args"]["role"] == role:
            return int(event["args"]["newStake"])
    return int(registry.functions.stakeOf(account, role).call())
