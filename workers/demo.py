"""`python -m workers.demo` (`make demo`): a Deepshard network on a throwaway anvil chain.

Starts anvil on a free port, deploys the contracts with the default parameters, funds six dev
accounts with DSH from the treasury, stakes one account per role (half of them through an EIP-2612
permit, half through approve + stake) and prints who holds what. The chain, its deployment record
(in a temporary folder, so the repo's deployments/ is untouched) and the anvil process are gone at
the end, even on error or Ctrl-C.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from typing import TextIO

from .chain import ROLES, ChainClient, ChainError, deploy_network, format_dsh, parse_dsh, stake
from .chain.localnode import dev_signer, start_anvil
from .chain.units import format_eth
from .tables import format_table, short_address

#: DSH each staker receives from the treasury.
FUNDING_DSH = "20000"
#: role -> (DSH staked, authorise with a permit instead of approve); each amount clears the role minimum.
DEMO_STAKES: dict[str, tuple[str, bool]] = {
    "INFORMANT": ("250", False),
    "CURATOR": ("1500", True),
    "TRAINER": ("2000", False),
    "EVALUATOR": ("1200", True),
    "STORAGE": ("750", False),
    "INFERENCE": ("12500", True),
}


def run_demo(out: TextIO = sys.stdout) -> None:
    """Runs the whole demo, writing its report to `out`."""
    started = time.monotonic()
    with start_anvil() as node, tempfile.TemporaryDirectory(prefix="deepshard-demo-") as deployments:
        # Dev account 0 deploys and, as genesis recipient, is the treasury. Accounts 1..6 stake.
        treasury = ChainClient(node.url, dev_signer(0), deployments_dir=deployments)
        print(f"anvil on {node.url} (pid {node.pid}), chain id {treasury.chain_id}", file=out)

        record = deploy_network(treasury)
        for name, entry in record["contracts"].items():
            print(f"  {name:<15} {entry['address']}", file=out)

        token = treasury.contract("DeepshardToken")
        registry = treasury.contract("StakeRegistry")
        stakers = {role: treasury.with_signer(dev_signer(index)) for index, role in enumerate(ROLES, start=1)}

        # Send every funding transfer before waiting for any: the client's nonce manager numbers them.
        pending = [
            treasury.transact(token.functions.transfer(client.address, parse_dsh(FUNDING_DSH)), wait=False)
            for client in stakers.values()
        ]
        for tx_hash in pending:
            treasury.wait(tx_hash, "DSH funding transfer")
        print(f"treasury funded {len(stakers)} accounts with {FUNDING_DSH} DSH each", file=out)

        rows = []
        for role, client in stakers.items():
            amount, use_permit = DEMO_STAKES[role]
            result = stake(client, role, amount, use_permit=use_permit)
            rows.append([
                role,
                short_address(client.address),
                format_dsh(result.new_stake, grouped=True),
                format_dsh(token.functions.balanceOf(client.address).call(), grouped=True),
                format_eth(client.w3.eth.get_balance(client.address), places=4),
                "permit" if use_permit else "approve",
            ])

        print("\nStakes", file=out)
        print(format_table(["ROLE", "ACCOUNT", "STAKE (DSH)", "DSH BALANCE", "ETH BALANCE", "VIA"], rows,
                           numeric=(2, 3, 4)), file=out)

        totals = []
        for index, role in enumerate(ROLES):
            stakers_in_role = sum(1 for c in stakers.values() if registry.functions.stakeOf(c.address, index).call())
            totals.append([
                role,
                stakers_in_role,
                format_dsh(registry.functions.totalStaked(index).call(), grouped=True),
                format_dsh(registry.functions.minStake(index).call(), grouped=True),
            ])
        print("\nTotals per role", file=out)
        print(format_table(["ROLE", "STAKERS", "TOTAL STAKED (DSH)", "MINIMUM (DSH)"], totals, numeric=(1, 2, 3)),
              file=out)
        held_by_registry = format_dsh(token.functions.balanceOf(registry.address).call(), grouped=True)
        held_by_treasury = format_dsh(token.functions.balanceOf(treasury.address).call(), grouped=True)
        print(f"\nStakeRegistry holds {held_by_registry} DSH; treasury holds {held_by_treasury} DSH", file=out)
    print(f"done in {time.monotonic() - started:.1f} s; anvil stopped", file=out)


def _raise_on_sigterm(signum, frame):
    # Default SIGTERM handling skips `finally` blocks and would leave anvil running.
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        run_demo()
    except ChainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
