"""`deepshard devnet up|status|down|env` (see `workers.devnet`). `workers.cli` wires it in as a `Command`."""

from __future__ import annotations

import argparse
import json
import sys

from ..tables import format_table
from .network import (
    DEFAULT_PORT,
    DEFAULT_REDIS_URL,
    devnet_dir,
    devnet_down,
    devnet_env,
    devnet_status,
    devnet_up,
)


def _count(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 8:
        raise argparse.ArgumentTypeError(f"must be 1 to 8, not {value}")
    return number


def _up(args: argparse.Namespace) -> int:
    folder = devnet_dir(args.dir)
    state = devnet_up(
        folder,
        port=args.port,
        block_time=args.block_time,
        redis_url=args.redis,
        curators=args.curators,
        trainers=args.trainers,
        evaluators=args.evaluators,
        say=lambda line: print(line, flush=True),
    )
    print(f"devnet up: {len(state.processes) - 1} workers and anvil on {state.rpc_url}; state in {folder}")
    print('act as its informant: eval "$(deepshard devnet env)"; then `deepshard data submit FILE --bond 200`')
    return 0


def _status(args: argparse.Namespace) -> int:
    status = devnet_status(devnet_dir(args.dir))
    if args.json:
        print(json.dumps(status, sort_keys=True))
        return 0
    head = "not answering" if status["head_block"] is None else f"head block {status['head_block']:,}"
    print(f"devnet    {status['folder']} (up since {status['started']})")
    print(f"chain     {status['rpc_url']}, chain id {status['chain_id']}, {head}, {status['block_time']:g} s blocks")
    print(f"redis     {status['redis_url']} ({'answers' if status['redis_answers'] else 'NOT ANSWERING'})")
    print(f"contracts {status['deployments']}")
    rows = [
        [
            p["name"],
            p["role"],
            p["pid"],
            "running" if p["running"] else "STOPPED",
            p["account"] or (f"port {p['port']}" if p["port"] else "-"),
            p["log"] or "-",
        ]
        for p in status["processes"]
    ]
    print()
    print(format_table(["NAME", "ROLE", "PID", "STATE", "ACCOUNT / PORT", "LOG"], rows, numeric=(2,)))
    return 0


def _down(args: argparse.Namespace) -> int:
    procs = devnet_down(devnet_dir(args.dir), say=lambda line: print(line, flush=True))
    print(f"devnet down: {len(procs)} processes stopped")
    return 0


def _env(args: argparse.Namespace) -> int:
    print(devnet_env(devnet_dir(args.dir), args.account))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="devnet_command", metavar="SUBCOMMAND", required=True)
    up = commands.add_parser(
        "up",
        help="start anvil, deploy, fund and stake the roles, start the workers in the background",
        description="Start a fresh local network in the background: anvil with a block time, the contracts with "
        "short windows, one funded and staked dev account per role, a keeper (with the watcher) and curator, "
        "trainer and evaluator workers. The dev keys come from anvil's PUBLIC mnemonic: dev chains only.",
    )
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"anvil's port (default {DEFAULT_PORT})")
    up.add_argument("--block-time", type=int, default=1, metavar="SECONDS", help="seconds per block (default 1)")
    up.add_argument(
        "--redis",
        default=DEFAULT_REDIS_URL,
        metavar="URL",
        help=f"a Redis database of the devnet's own; up empties it (default {DEFAULT_REDIS_URL})",
    )
    for role in ("curators", "trainers", "evaluators"):
        up.add_argument(f"--{role}", type=_count, default=1, metavar="N", help=f"{role} workers (default 1)")
    up.set_defaults(devnet_handler=_up)
    status = commands.add_parser("status", help="what runs where: pids, ports, logs, the chain's head")
    status.add_argument("--json", action="store_true", help="one line of JSON")
    status.set_defaults(devnet_handler=_status)
    down = commands.add_parser("down", help="stop the devnet's processes by their PIDs")
    down.set_defaults(devnet_handler=_down)
    env = commands.add_parser("env", help='export lines to act as a devnet account: eval "$(deepshard devnet env)"')
    env.add_argument("--account", default="informant", metavar="NAME", help="informant (default), trainer-1, ...")
    env.set_defaults(devnet_handler=_env)
    for sub in (up, status, down, env):
        sub.add_argument(
            "--dir",
            metavar="DIR",
            help="the devnet's folder (default $DEEPSHARD_DEVNET_DIR, else ~/.local/share/deepshard/devnet)",
        )


def run(args: argparse.Namespace) -> int:
    try:
        return args.devnet_handler(args)
    except KeyboardInterrupt:
        print("error: interrupted; what was started is stopped", file=sys.stderr)
        return 130
