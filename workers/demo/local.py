"""What every part of the demo shares: its dev accounts, funding from the treasury, mining, checking a step."""

from __future__ import annotations

from collections.abc import Iterable

from web3.types import RPCEndpoint

from ..chain import ROLES, ChainClient, ChainError
from ..chain.module import Step
from ..chain.tokens import transfer_dsh

#: DSH each demo account receives from the treasury.
FUNDING_DSH = "20000"
#: STORAGE stake of each storage node: a node bond (500 DSH) and a custodian bond (200 DSH), and 50 to spare.
STORAGE_STAKE_DSH = "750"

#: Dev accounts: 0 treasury and keeper, 1-6 one staker per role (in `ROLES` order), then the extra
#: informants, curators, trainers, evaluators and storage nodes.
EXTRA_INFORMANTS = (7, 8)
EXTRA_CURATORS = (9, 10, 11, 12)
EXTRA_TRAINERS = (13, 14, 15)
EXTRA_EVALUATORS = (16, 17)
EXTRA_STORAGE_NODES = (18, 19)
#: A round's trainers and evaluators: the role's staker, then the extras (the last trainer is the poisoned one).
ROUND_TRAINERS = (1 + ROLES.index("TRAINER"), *EXTRA_TRAINERS)
ROUND_EVALUATORS = (1 + ROLES.index("EVALUATOR"), *EXTRA_EVALUATORS)
DEV_ACCOUNTS = 20


def fund(treasury: ChainClient, clients: Iterable[ChainClient]) -> None:
    """Sends FUNDING_DSH to each client's account."""
    # Send every transfer before waiting for any: the client's nonce manager numbers them.
    pending = [transfer_dsh(treasury, client.address, FUNDING_DSH, wait=False).tx_hash for client in clients]
    for tx_hash in pending:
        treasury.wait(tx_hash, "DSH funding transfer")


def mine_to(client: ChainClient, block: int) -> None:
    """Mines empty blocks on the local chain (anvil or Ganache) until `block` is the latest."""
    missing = block - client.w3.eth.block_number
    if missing <= 0:
        return
    if client.w3.client_version.lower().startswith("ganache"):
        response = client.w3.provider.make_request(RPCEndpoint("evm_mine"), [{"blocks": missing}])
    else:
        response = client.w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(missing)])
    if "error" in response:
        raise ChainError(f"the node refused to mine {missing} blocks: {response['error']}")


class DemoFailed(Exception):
    """A step did not do what the demo needs next (its detail says why)."""


def expect(step: Step, action: str, who: str) -> Step:
    """`step`, if it did `action`; `DemoFailed` saying what `who` did instead otherwise."""
    if step.action != action:
        raise DemoFailed(f"{who} was expected to have {action}, but: {step.action}: {step.detail}")
    return step
