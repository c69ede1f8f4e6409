"""Stakes DSH in a role with brownie's account.

    brownie run scripts/stake.py main TRAINER 1000 --network NAME
    brownie run scripts/stake.py main TRAINER 1000 permit --network NAME   # EIP-2612 permit, no approve

ROLE is case-insensitive, AMOUNT is in DSH (e.g. 12.5). The staking itself is workers.chain.stake, the
same code as `deepshard stake`, including every check made before a transaction is sent.
"""

from workers.chain import format_dsh, stake
from workers.chain.brownie_bridge import brownie_client, run_or_exit


def main(role, amount, mode="approve"):
    if mode not in ("approve", "permit"):
        raise SystemExit(f"error: the third argument must be 'approve' or 'permit', not {mode!r}")

    def do_stake():
        result = stake(brownie_client(), role, str(amount), use_permit=mode == "permit")
        print(f"tx {result.tx_hash}")
        print(f"new {result.role} stake of {result.account}: {format_dsh(result.new_stake)} DSH")
        return result

    return run_or_exit(do_stake)
