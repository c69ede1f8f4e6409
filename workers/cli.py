"""The `deepshard` command.

    deepshard stake ROLE AMOUNT [--permit] [--rpc URL]   stake DSH in a role
    deepshard transfer TO AMOUNT                         send DSH (amounts such as 1,000 or 1000.5)
    deepshard deploy [--governance ADDR] [--force]       deploy the contracts, record them
    deepshard balances [ADDRESS ...]                     ETH, DSH and stakes of accounts
    deepshard status [--json]                            the network at a glance
    deepshard data validate|normalise|signals FILE       check and measure a dataset
    deepshard data submit|list|status|...                the data consensus
    deepshard model versions | get VERSION --out DIR     model versions; one's weights, verified
    deepshard storage add FILE | get CID -o FILE         the content-addressed store
    deepshard weights price VERSION                      a version's price in DSH and its value snapshot
    deepshard weights buy VERSION --max-price DSH        buy a version's key, rebuilt from k custodians' shares
    deepshard weights deliver                            a custodian: deliver its key shares to open purchases
    deepshard weights settle PURCHASE                    refund the buyer or pay the custodians, after the window
    deepshard weights fetch VERSION -o DIR ...           assemble a bought version from its shards
    deepshard round status [ID] | open | draw | finalize | claim | join-pool   training rounds
    deepshard worker --role ROLE [--account KEYSTORE]    a Celery worker for one role
    deepshard watch                                      contract events -> Celery tasks
    deepshard serve [--dev] --model NAME [--port P]      the inference node's OpenAI-compatible API
    deepshard verify-response FILE --model NAME          check an answer's proof of the served weights
    deepshard devnet up | status | down | env            a local network in the background

Each subcommand is a `Command`: a name, its help, and the module providing the function that adds its
arguments and its handler; only the module of the command being run is imported, so `--help` and the
commands without a chain or a model start without web3, Celery or torch. Expected failures (`ChainError`)
print one line, `error: ...`, on stderr and exit 1; the checks run before anything is sent.
The signing key comes from the environment (see workers.chain.accounts); the RPC endpoint from
--rpc, else $DEEPSHARD_RPC_URL, else http://127.0.0.1:8545.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .chain import ChainClient

# web3, requests and the packages' own modules are imported by the command that runs (`Command.load`), so
# `deepshard --help` and commands without a chain start in a fraction of a second.


@dataclass(frozen=True)
class Command:
    """A subcommand: `module` (imported only when the command runs or shows its help) provides the functions
    named `add_arguments` (adds its arguments to a parser) and `run` (the handler, returning the exit status)."""

    name: str
    help: str
    module: str
    add_arguments: str
    run: str

    def load(self) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
        module = importlib.import_module(self.module)
        return getattr(module, self.add_arguments), getattr(module, self.run)


def _connect(args: argparse.Namespace, *, with_signer: bool = True) -> ChainClient:
    from .chain import ChainClient, load_signer

    # The key is loaded before connecting: a missing key is reported without touching the network.
    return ChainClient(args.rpc, load_signer() if with_signer else None)


# ---------------------------------------------------------------- stake


def _stake_arguments(parser: argparse.ArgumentParser) -> None:
    from .chain.roles import ROLES

    parser.add_argument("role", metavar="ROLE", help=f"one of {', '.join(ROLES)} (any case)")
    parser.add_argument("amount", metavar="AMOUNT", help="DSH to stake, a decimal such as 1,000 or 12.5")
    parser.add_argument("--permit", action="store_true", help="authorise with an EIP-2612 permit instead of approve")


def _stake_run(args: argparse.Namespace) -> int:
    from .chain import format_dsh, parse_dsh, parse_role, stake

    parse_role(args.role)  # validated before the key is loaded or the node is contacted
    parse_dsh(args.amount)
    client = _connect(args)
    result = stake(client, args.role, args.amount, use_permit=args.permit)
    print(f"tx {result.tx_hash}")
    print(f"new {result.role} stake of {result.account}: {format_dsh(result.new_stake, grouped=True)} DSH")
    return 0


# ---------------------------------------------------------------- deploy


def _deploy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--governance", metavar="ADDR", help="receives the admin role; the deployer renounces it")
    parser.add_argument("--force", action="store_true", help="replace a recorded deployment that is still live")


def _deploy_run(args: argparse.Namespace) -> int:
    from .chain import DeployParams, deploy_network, deployment_path

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
    from eth_utils import is_address, to_checksum_address

    from .chain import ROLES, InvalidRequest, format_dsh
    from .chain.units import format_eth
    from .tables import format_table

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
            f"{role}={format_dsh(amount, grouped=True)}"
            for role, amount in ((r, registry.functions.stakeOf(address, i).call()) for i, r in enumerate(ROLES))
            if amount
        ]
        rows.append(
            [
                address,
                format_eth(client.w3.eth.get_balance(address)),
                format_dsh(token.functions.balanceOf(address).call(), grouped=True),
                " ".join(stakes) or "-",
            ]
        )
    print(format_table(["ACCOUNT", "ETH", "DSH", "STAKES (DSH)"], rows, numeric=(1, 2)))
    return 0


# ---------------------------------------------------------------- transfer


def _transfer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("to", metavar="TO", help="the recipient's address")
    parser.add_argument("amount", metavar="AMOUNT", help="DSH to send, a decimal such as 1,000 or 1000.5")


def _transfer_run(args: argparse.Namespace) -> int:
    from .chain import format_dsh, parse_dsh
    from .chain.tokens import transfer_dsh

    parse_dsh(args.amount)  # validated before the key is loaded or the node is contacted
    result = transfer_dsh(_connect(args), args.to, args.amount)
    print(f"tx {result.tx_hash}")
    print(
        f"sent {format_dsh(result.amount, grouped=True)} DSH from {result.sender} to {result.recipient}; "
        f"{result.sender} now holds {format_dsh(result.sender_balance, grouped=True)} DSH"
    )
    return 0


HERE = __name__
COMMANDS: list[Command] = [
    Command("stake", "stake DSH in a role", HERE, "_stake_arguments", "_stake_run"),
    Command("transfer", "send DSH to another account", HERE, "_transfer_arguments", "_transfer_run"),
    Command(
        "deploy",
        "deploy the contracts and record them in deployments/<chain-id>.json",
        HERE,
        "_deploy_arguments",
        "_deploy_run",
    ),
    Command("balances", "show ETH, DSH and stakes of accounts", HERE, "_balances_arguments", "_balances_run"),
    Command(
        "status",
        "the network at a glance: stakes, submissions, the current round, the latest version, emission",
        "workers.node.overview",
        "add_arguments",
        "run",
    ),
    Command(
        "data",
        "validate, normalise and measure datasets; submit, list, vote on and settle them on-chain",
        "workers.data.cli",
        "add_arguments",
        "run",
    ),
    Command(
        "model", "the model's versions: list them, get one's weights", "workers.node.model_cli", "add_arguments", "run"
    ),
    Command("storage", "the content-addressed store: add, get", "workers.storage.cli", "add_arguments", "run"),
    Command(
        "weights",
        "a version's weights: price, buy its key, deliver key shares, fetch and assemble",
        "workers.shards.cli",
        "add_arguments",
        "run",
    ),
    Command(
        "round",
        "training rounds: status, open, draw, finalize, claim, join the evaluator pool",
        "workers.node.cli",
        "add_arguments",
        "run",
    ),
    Command(
        "worker",
        "run a Celery worker for one role (trainer, evaluator, curator or keeper)",
        "workers.node.cli",
        "add_worker_arguments",
        "run_worker",
    ),
    Command(
        "watch",
        "turn contract events into Celery tasks (the watcher)",
        "workers.node.cli",
        "add_watch_arguments",
        "run_watch",
    ),
    Command(
        "serve",
        "serve a model version through an OpenAI-compatible HTTP API (the inference node)",
        "workers.serve.cli",
        "add_serve_arguments",
        "run_serve",
    ),
    Command(
        "verify-response",
        "check the deepshard_proof of a saved response against the weights, by one prefill",
        "workers.serve.cli",
        "add_verify_arguments",
        "run_verify",
    ),
    Command(
        "devnet",
        "a local network in the background: up, status, down, env",
        "workers.devnet.cli",
        "add_arguments",
        "run",
    ),
]


def _selected(argv: Sequence[str]) -> str | None:
    """The subcommand named in `argv` (the first word that is not an option or --rpc's value), if any."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--rpc":
            skip = True
        elif not word.startswith("-"):
            return word
    return None


def build_parser(selected: str | None = "*") -> argparse.ArgumentParser:
    """The parser; only the `selected` command's module is imported to add its arguments ("*": every one)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--rpc",
        metavar="URL",
        default=None,
        help="node JSON-RPC URL: http://HOST:PORT, https://..., or HOST:PORT for http (default: "
        "$DEEPSHARD_RPC_URL, else http://127.0.0.1:8545)",
    )
    parser = argparse.ArgumentParser(
        prog="deepshard",
        description="Deepshard network command line.",
        epilog="New here? `deepshard devnet up` starts a local network (README: Run your own network); "
        "`deepshard COMMAND --help` tells more.",
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = subcommands.add_parser(command.name, help=command.help, description=command.help, parents=[common])
        if selected in ("*", command.name):
            add_arguments, run = command.load()
            add_arguments(sub)
            sub.set_defaults(handler=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `deepshard` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_selected(argv)).parse_args(argv)
    from .chain.endpoint import default_rpc_url, normalise_rpc_url
    from .chain.errors import ChainError

    try:
        args.rpc = normalise_rpc_url(args.rpc or default_rpc_url())
        return args.handler(args)
    except ChainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        requests = sys.modules.get("requests")  # loaded by the commands that talk to a node
        if requests is None or not isinstance(exc, (requests.ConnectionError, requests.Timeout)):
            raise
        from .chain.endpoint import display_url

        # The node answered the first request and died later, between our own checks.
        print(f"error: the node at {display_url(args.rpc)} stopped answering ({type(exc).__name__})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
