"""`python -m workers.demo` (`make demo`): a Deepshard network on a throwaway anvil chain, end to end.

1. Starts anvil (or Ganache) on a free port, deploys the contracts (short windows, in blocks), funds dev accounts with
   DSH from the treasury, stakes one account per role (half through an EIP-2612 permit, half through
   approve + stake) and prints who holds what.
2. The data consensus (`consensus`): three datasets, five curators; two accepted, the junk one slashed.
3. A training round (`training`) on the accepted data: three honest trainers and one poisoned, three
   evaluators; the poisoned trainer is slashed, the honest ones paid, a new model version registered.
4. Weight custody (`weights`): that version is sharded, sealed per holder and stored by three storage nodes (R = 3),
   its key split 2-of-3 among them as custodians; the inference account buys it, the custodians deliver their
   shares, the price is split (burned, storage, custodians, treasury) and the buyer assembles the weights, checked
   against the version the registry's lineage defines.
5. The inference node (`inference`) serves the bought version through the OpenAI API, is asked one chat question
   through the `openai` client, and its answer's proof is verified.

The round trains SmolLM2-135M (the genesis model); `--quick` uses the `tiny` model instead. `--json` ends
the output with one line holding the summary as a JSON object: the only line on standard output (the report
goes to standard error). Its `phase_seconds` gives each phase of the round its own duration; its `inference`
holds the served version, the answer and whether its proof verified; its `weights` the version bought, its price,
the buyer, the storage nodes holding it, whether the assembled weights are the registry's, and who got the price.
`--chain ganache` runs it all on Ganache instead of anvil.

The chain, its deployment record, the content store and the stored salts (all in one temporary folder, so
the repo's deployments/ and the user's data are untouched) and the node's process are gone at the end, even
on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from eth_utils import to_checksum_address

from ..chain import ROLES, ChainClient, ChainError, DeployParams, deploy_network, format_dsh, stake
from ..chain.endpoint import RPC_TIMEOUT_ENV
from ..chain.localnode import dev_signer, start_anvil, start_ganache
from ..chain.units import format_eth
from ..storage import StorageError, open_store
from ..tables import format_table, short_address
from ..tasks.errors import TaskInputError
from .consensus import DEMO_DATA_PARAMS, consensus_summary, run_data_consensus
from .inference import serve_new_version
from .local import DEV_ACCOUNTS, FUNDING_DSH, STORAGE_STAKE_DSH, DemoFailed, fund
from .training import DEFAULT_MODEL, DEMO_ROUND_PARAMS, QUICK_MODEL, run_training_round, worker_environment
from .weights import sell_new_version

#: role -> (DSH staked, authorise with a permit instead of approve); each amount clears the role minimum.
DEMO_STAKES: dict[str, tuple[str, bool]] = {
    "INFORMANT": ("250", False),
    "CURATOR": ("1500", True),
    "TRAINER": ("2000", False),
    "EVALUATOR": ("1200", True),
    "STORAGE": (STORAGE_STAKE_DSH, False),
    "INFERENCE": ("12500", True),
}


NODES = {"anvil": start_anvil, "ganache": start_ganache}
GANACHE_RPC_TIMEOUT_S = 60


def run_demo(out: TextIO = sys.stdout, *, model: str = DEFAULT_MODEL, chain: str = "anvil") -> dict:
    """Runs the whole demo on a new local `chain` (anvil or ganache), writing its report to `out`; returns its
    summary."""
    started = time.monotonic()
    if chain == "ganache":
        # Ganache's JavaScript EVM can take more than the default 10 s to answer for a panel draw (~1M gas) on a
        # busy machine; the demo's clients (and the tasks it runs in this process) wait longer unless told otherwise.
        os.environ.setdefault(RPC_TIMEOUT_ENV, str(GANACHE_RPC_TIMEOUT_S))
    with NODES[chain](accounts=DEV_ACCOUNTS) as node, tempfile.TemporaryDirectory(prefix="deepshard-demo-") as tmp:
        workdir = Path(tmp)
        # Dev account 0 deploys and, as genesis recipient, is the treasury. Accounts 1..6 stake.
        treasury = ChainClient(node.url, dev_signer(0), deployments_dir=workdir / "deployments")
        print(f"{node.kind} on {node.url} (pid {node.pid}), chain id {treasury.chain_id}", file=out)

        record = deploy_network(
            treasury, DeployParams(data_consensus=DEMO_DATA_PARAMS, training_rounds=DEMO_ROUND_PARAMS)
        )
        for name, entry in record["contracts"].items():
            print(f"  {name:<15} {entry['address']}", file=out)

        stakers = {role: treasury.with_signer(dev_signer(index)) for index, role in enumerate(ROLES, start=1)}
        fund(treasury, stakers.values())
        print(f"treasury funded {len(stakers)} accounts with {FUNDING_DSH} DSH each", file=out)
        stake_roles(treasury, stakers, out)

        with worker_environment(workdir / "store"), open_store() as store:
            submissions = run_data_consensus(treasury, stakers, store, workdir, out)
            report = run_training_round(treasury, stakers, store, workdir, model, out)
            version = report.status.round.new_version
            if not version:
                raise DemoFailed("the round registered no new version: nothing for the inference node to serve")
            sold = sell_new_version(treasury, stakers, store, version, model, workdir, out)
            inference = serve_new_version(treasury, version, model, sold.folder, out, store)
    seconds = time.monotonic() - started
    print(f"done in {seconds:.1f} s; {node.kind} stopped", file=out)
    return {
        "data": consensus_summary(submissions),
        "round": report.summary(),
        "weights": sold.summary,
        "inference": inference,
        "seconds": round(seconds, 1),
    }


def stake_roles(treasury: ChainClient, stakers: dict[str, ChainClient], out: TextIO) -> None:
    """Stakes each role's account (DEMO_STAKES) and prints the stakes and the totals per role."""
    token = treasury.contract("DeepshardToken")
    registry = treasury.contract("StakeRegistry")
    rows = []
    for role, client in stakers.items():
        amount, use_permit = DEMO_STAKES[role]
        result = stake(client, role, amount, use_permit=use_permit)
        rows.append(
            [
                role,
                short_address(client.address),
                format_dsh(result.new_stake, grouped=True),
                format_dsh(token.functions.balanceOf(client.address).call(), grouped=True),
                format_eth(client.w3.eth.get_balance(to_checksum_address(client.address)), places=4),
                "permit" if use_permit else "approve",
            ]
        )
    print("\nStakes", file=out)
    print(
        format_table(["ROLE", "ACCOUNT", "STAKE (DSH)", "DSH BALANCE", "ETH BALANCE", "VIA"], rows, numeric=(2, 3, 4)),
        file=out,
    )

    totals = []
    for index, role in enumerate(ROLES):
        stakers_in_role = sum(1 for c in stakers.values() if registry.functions.stakeOf(c.address, index).call())
        totals.append(
            [
                role,
                stakers_in_role,
                format_dsh(registry.functions.totalStaked(index).call(), grouped=True),
                format_dsh(registry.functions.minStake(index).call(), grouped=True),
            ]
        )
    print("\nTotals per role", file=out)
    print(format_table(["ROLE", "STAKERS", "TOTAL STAKED (DSH)", "MINIMUM (DSH)"], totals, numeric=(1, 2, 3)), file=out)
    held_by_registry = format_dsh(token.functions.balanceOf(registry.address).call(), grouped=True)
    held_by_treasury = format_dsh(token.functions.balanceOf(treasury.address).call(), grouped=True)
    print(f"\nStakeRegistry holds {held_by_registry} DSH; treasury holds {held_by_treasury} DSH", file=out)


def _raise_on_sigterm(signum, frame):
    # Default SIGTERM handling skips `finally` blocks and would leave anvil running.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"train the round on the {QUICK_MODEL!r} model instead of {DEFAULT_MODEL!r}",
    )
    parser.add_argument(
        "--json", action="store_true", help="print only the summary, one JSON line, on stdout (the report: stderr)"
    )
    parser.add_argument(
        "--chain", choices=sorted(NODES), default="anvil", help="the local chain to run (default anvil)"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        # With --json, standard output carries only the JSON line; the report goes to standard error.
        report = sys.stderr if args.json else sys.stdout
        summary = run_demo(report, model=QUICK_MODEL if args.quick else DEFAULT_MODEL, chain=args.chain)
    except (ChainError, StorageError, TaskInputError, DemoFailed, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 0
