"""`deepshard status`: the network at a glance.

    chain, head block, the deployment
    stakes per role (total staked, the minimum), in DSH
    open submissions (awaiting a panel or being voted on) and their phase
    the current training round, its phase and what it waits for
    the latest model version and the round that made it
    emission: what the current epoch can still pay, the token supply and its cap

Read-only: no key is needed. `--json` prints one line of JSON (amounts in wei, as integers).
`workers.cli` wires it in as `Command("status", ...)`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def network_status(chain) -> dict[str, Any]:
    """The network at a glance (module docstring) as plain JSON; amounts in wei (ints). `chain`: a ChainClient of
    the deployment (read-only is enough). Raises the chain's errors (`NoDeployment`, `NodeUnavailable`)."""
    from ..chain import ROLES
    from ..data.chain import DataConsensusClient
    from ..rounds.chain import TrainingRoundsClient

    rounds = TrainingRoundsClient(chain)
    consensus = DataConsensusClient(chain)
    latest = rounds.latest_block()
    registry = chain.contract("StakeRegistry")
    stakes = [
        {
            "role": role,
            "total_staked": int(registry.functions.totalStaked(index).call()),
            "min_stake": int(registry.functions.minStake(index).call()),
        }
        for index, role in enumerate(ROLES)
    ]
    submissions = [
        {"id": s.id, "status": s.status, "phase": s.phase(latest), "informant": s.informant, "bond": s.bond}
        for s in consensus.unfinished()
        if not s.finalized
    ]
    current = rounds.current_round()
    round_info = None
    if current is not None:
        round_info = {
            "id": current.id,
            "status": current.status,
            "phase": current.phase(latest),
            "next_change_block": current.next_change(latest),
            "trainers": current.trainer_count,
            "deltas": current.delta_count,
            "panel_size": current.panel_size,
        }
    latest_version = int(rounds.models.functions.latestVersion().call())
    version_info = rounds.models.functions.getVersion(latest_version).call()
    token = chain.contract("DeepshardToken")
    emission = chain.contract("Emission")
    return {
        "chain_id": chain.chain_id,
        "rpc_url": chain.display_url,
        "head_block": latest,
        "stakes": stakes,
        "open_submissions": submissions,
        "pending_datasets": rounds.pending_datasets(),
        "round": round_info,
        "latest_version": {"id": latest_version, "round": int(version_info[1])},
        "emission": {
            "available": int(emission.functions.available().call()),
            "epoch": int(emission.functions.currentEpoch().call()),
            "total_supply": int(token.functions.totalSupply().call()),
            "cap": int(token.functions.cap().call()),
        },
    }


def format_network_status(status: dict[str, Any]) -> str:
    """The status for a person: DSH with thousands separators, one block per part."""
    from ..chain.units import format_dsh
    from ..tables import format_table

    def dsh(wei: int) -> str:
        return format_dsh(wei, grouped=True)

    lines = [f"chain {status['chain_id']} at {status['rpc_url']}, head block {status['head_block']:,}", ""]
    lines.append(
        format_table(
            ["ROLE", "STAKED (DSH)", "MINIMUM (DSH)"],
            [[s["role"], dsh(s["total_staked"]), dsh(s["min_stake"])] for s in status["stakes"]],
            numeric=(1, 2),
        )
    )
    lines.append("")
    if status["open_submissions"]:
        lines.append("open submissions")
        lines.append(
            format_table(
                ["ID", "STATUS", "PHASE", "INFORMANT", "BOND (DSH)"],
                [
                    [s["id"], s["status"], s["phase"], s["informant"], dsh(s["bond"])]
                    for s in status["open_submissions"]
                ],
                numeric=(0, 4),
            )
        )
    else:
        lines.append("open submissions: none")
    pending = status["pending_datasets"]
    lines.append(f"accepted datasets waiting for a round: {', '.join(f'#{i}' for i in pending) if pending else 'none'}")
    current = status["round"]
    if current is None:
        lines.append("round: none opened yet")
    else:
        state = current["status"] if current["status"] in ("Finalized", "Failed") else current["phase"]
        lines.append(
            f"round #{current['id']}: {state}"
            + (f" (until block {current['next_change_block']:,})" if current["next_change_block"] else "")
            + f"; {current['trainers']} trainers committed, {current['deltas']} revealed"
            + (f", {current['panel_size']} evaluators drawn" if current["panel_size"] else "")
        )
    version = status["latest_version"]
    made_by = f"round #{version['round']}" if version["round"] else "genesis"
    lines.append(
        f"latest model version: {version['id']} ({made_by}); "
        f"get it with `deepshard model get {version['id']} --out DIR`"
    )
    emission = status["emission"]
    lines.append(
        f"emission: {dsh(emission['available'])} DSH left to pay in epoch {emission['epoch']}; supply "
        f"{dsh(emission['total_supply'])} of a {dsh(emission['cap'])} DSH cap"
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one line of JSON (amounts in wei)")


def run(args: argparse.Namespace) -> int:
    from ..chain import ChainClient

    status = network_status(ChainClient(args.rpc))
    if args.json:
        print(json.dumps(status, sort_keys=True))
    else:
        print(format_network_status(status))
    return 0
