"""The `deepshard` command.

    deepshard stake ROLE AMOUNT [--permit] [--rpc URL]   stake DSH in a role
    deepshard deploy [--governance ADDR] [--force]       deploy the contracts, record them
    deepshard balances [ADDRESS ...]                     ETH, DSH and stakes of accounts
    deepshard data validate|normalise|signals FILE       check and measure a dataset
    deepshard storage add FILE | get CID -o FILE         the content-addressed store
    deepshard weights fetch MANIFEST -o DIR ...          assemble a version's weights from its shards
    deepshard round status [ID] | open | draw | finalize | claim | join-pool   training rounds
    deepshard worker --role ROLE [--account KEYSTORE]    a Celery worker for one role
    deepshard watch                                      contract events -> Celery tasks
    deepshard serve [--dev] --model NAME [--port P]      the inference node's OpenAI-compatible API
    deepshard verify-response FILE --model NAME          check an answer's proof of the served weights

Each subcommand is a `Command`: a name, a function adding its arguments, and a handler; each
package's own `cli` module provides them. Expected failures (`ChainError`) print one line,
`error: ...`, on stderr and exit 1; the checks run before anything is sent.
The signing key comes from the environment (see workers.chain.accounts); the RPC endpoint from
--rpc, else $DEEPSHARD_RPC_URL, else http://127.0.0.1:8545.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import requests
from eth_utils import is_address, to_checksum_address

from .chain import (
    ROLES,
    ChainClient,
    ChainError,
    DeployParams,
    InvalidRequest,
    default_rpc_url,
    deploy_network,
    deployment_path,
    format_dsh,
    load_signer,
    parse_dsh,
    parse_role,
    stake,
)
from .chain.client import display_url
from .chain.units import format_eth
from .data import cli as data_cli
from .node import cli as node_cli
from .serve import cli as serve_cli
from .shards import cli as shards_cli
from .storage import cli as storage_cli
from .tables import format_table


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _connect(args: argparse.Namespace, *, with_signer: bool = True) -> ChainClient:
    # The key is loaded before connecting: a missing key is reported without touching the network.
    return ChainClient(args.rpc, load_signer() if with_signer else None)


# ---------------------------------------------------------------- stake


def _stake_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("role", metavar="ROLE", help=f"one of {', '.join(ROLES)} (any case)")
    parser.add_argument("amount", metavar="AMOUNT", help="DSH to stake, a decimal such as 1000 or 12.5")
    parser.add_argument("--permit", action="store_true", help="authorise with an EIP-2612 permit instead of approve")


def _stake_run(args: argparse.Namespace) -> int:
    parse_role(args.role)  # validated before the key is loaded or the node is contacted
    parse_dsh(args.amount)
    client = _connect(args)
    result = stake(client, args.role, args.amount, use_permit=args.permit)
    print(f"tx {result.tx_hash}")
    print(f"new {result.role} stake of {result.account}: {format_dsh(result.new_stake)} DSH")
    return 0


# ---------------------------------------------------------------- deploy


def _deploy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--governance", metavar="ADDR", help="receives the admin role; the deployer renounces it")
    parser.add_argument("--force", action="store_true", help="replace a recorded deployment that is still live")


def _deploy_run(args: argparse.Namespace) -> int:
    client = _connect(args)
    record = deploy_network(client, DeployParams(), governance=args.governance, overwrite=args.force)
    for name, entry in record["contracts"].items():
        print(f"{name:<16} {entry['address']}")
    print(f"governance       {record['governance']}")
    print(f"recorded in {deployment_path(record['chainId'], client.deployments_dir)}")
    return 0


# ---------------------------------------------------------------- balances


def _balances_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("addresses", nargs="*", metavar="ADDRESS", help="default: the configured signer's address")


def _balances_run(args: argparse.Namespace) -> int:
    # Without addresses, show the signer's: only then is a key (and maybe a password prompt) needed.
    client = _connect(args, with_signer=not args.addresses)
    addresses = args.addresses or [client.address]
    token, registry = client.contract("DeepshardToken"), client.contract("StakeRegistry")
    rows = []
    for address in addresses:
        if not is_address(address):
            raise InvalidRequest(f"{address!r} is not an address")
        address = to_checksum_address(address)
        stakes = [
            f"{role}={format_dsh(amount)}"
            for role, amount in ((r, registry.functions.stakeOf(address, i).call()) for i, r in enumerate(ROLES))
            if amount
        ]
        rows.append(
            [
                address,
                format_eth(client.w3.eth.get_balance(address)),
                format_dsh(token.functions.balanceOf(address).call()),
                " ".join(stakes) or "-",
            ]
        )
    print(format_table(["ACCOUNT", "ETH", "DSH", "STAKES (DSH)"], rows, numeric=(1, 2)))
    return 0


COMMANDS: list[Command] = [
    Command("stake", "stake DSH in a role", _stake_arguments, _stake_run),
    Command(
        "deploy", "deploy the contracts and record them in deployments/<chain-id>.json", _deploy_arguments, _deploy_run
    ),
    Command("balances", "show ETH, DSH and stakes of accounts", _balances_arguments, _balances_run),
    Command("data", data_cli.HELP, data_cli.add_arguments, data_cli.run),
    Command("storage", storage_cli.HELP, storage_cli.add_arguments, storage_cli.run),
    Command("weights", shards_cli.HELP, shards_cli.add_arguments, shards_cli.run),
    Command("round", node_cli.HELP, node_cli.add_arguments, node_cli.run),
    Command("worker", node_cli.WORKER_HELP, node_cli.add_worker_arguments, node_cli.run_worker),
    Command("watch", node_cli.WATCH_HELP, node_cli.add_watch_arguments, node_cli.run_watch),
    Command("serve", serve_cli.SERVE_HELP, serve_cli.add_serve_arguments, serve_cli.run_serve),
    Command("verify-response", serve_cli.VERIFY_HELP, serve_cli.add_verify_arguments, serve_cli.run_verify),
]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--rpc",
        metavar="URL",
        default=None,
        help="node JSON-RPC URL (default: $DEEPSHARD_RPC_URL, else http://127.0.0.1:8545)",
    )
    parser = argparse.ArgumentParser(prog="deepshard", description="Deepshard network command line.")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = subcommands.add_parser(command.name, help=command.help, description=command.help, parents=[common])
        command.add_arguments(sub)
        sub.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `deepshard` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    args.rpc = args.rpc or default_rpc_url()
    try:
        return args.handler(args)
    except ChainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (requests.ConnectionError, requests.Timeout) as exc:
        # The node answered the first request and died later, between our own checks.
        print(f"error: the node at {display_url(args.rpc)} stopped answering ({type(exc).__name__})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
