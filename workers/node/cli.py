"""`deepshard round ...`, `deepshard worker` and `deepshard watch`: the commands of a node's operator.

    deepshard round status [ID] [--json]      phases, deadlines, datasets, trainers (deltas, distances, outcome,
                                              payout), the evaluator panel, the outcome and the new version
    deepshard round open [--spec FILE] [--datasets 1,2]   anyone: open a round on pending accepted datasets
    deepshard round draw ID                   anyone: draw the evaluator panel once its seed block is mined (256
                                              blocks later the draw fails the round, every trainer penalised)
    deepshard round finalize ID               anyone: aggregate the fingerprints and settle the round
    deepshard round claim ID [--seat N]       settle this account's trainer seat, or an evaluator seat
    deepshard round join-pool AMOUNT          evaluator: lock EVALUATOR stake in the evaluator pool

    deepshard worker --role trainer|evaluator|curator|keeper [--account KEYSTORE]   a role's Celery worker
    deepshard worker --role storage [--endpoint E --capacity BYTES] [--source S]
                                              the storage node: hold, confirm and audit replicas
    deepshard watch                           the watcher: contract events -> Celery tasks

Failures print one `error: ...` line and exit 1, having sent nothing. The chain is --rpc (else
$DEEPSHARD_RPC_URL), the signer the environment's (or --account), Redis $DEEPSHARD_REDIS_URL.
`workers.cli` wires these in as `Command`s. Celery and the task modules are imported by the commands that use
them, inside their handlers: every other `deepshard` command starts without paying for them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

from ..chain.units import format_dsh, parse_dsh
from ..protocol.constants import NODE_ROLES
from ..tables import format_table

if TYPE_CHECKING:
    from ..rounds.chain import RoundStatus, TrainingRoundsClient

# web3, torch and Celery are imported by the handlers that use them: `--help` and argument errors start fast.


def _rounds(args: argparse.Namespace, *, with_signer: bool = True) -> TrainingRoundsClient:
    from ..chain import ChainClient, load_signer
    from ..rounds.chain import TrainingRoundsClient

    # The key is loaded before connecting: a missing key is reported without touching the network.
    signer = load_signer() if with_signer else None
    return TrainingRoundsClient(ChainClient(args.rpc, signer))


def positive_int(value: str) -> int:
    """argparse type: an integer of at least 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return number


def add_rpc_option(parser: argparse.ArgumentParser) -> None:
    """--rpc after a subcommand too (`round draw 3 --rpc URL`); absent, the parent parser's value stands."""
    parser.add_argument(
        "--rpc",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="node JSON-RPC URL (default: $DEEPSHARD_RPC_URL, else http://127.0.0.1:8545)",
    )


def _id_list(value: str) -> list[int]:
    try:
        ids = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ids separated by commas, such as 1,2,3, not {value!r}") from None
    if not ids or any(i < 1 for i in ids):
        raise argparse.ArgumentTypeError(f"expected positive ids separated by commas, not {value!r}")
    return ids


# ---------------------------------------------------------------- round status


def _status_run(args: argparse.Namespace) -> int:
    rounds = _rounds(args, with_signer=False)
    round_id = args.id
    if round_id is None:
        current = rounds.current_round()
        if current is None:
            print(
                f"no training round has been opened yet; {len(rounds.pending_datasets())} accepted datasets are pending"
            )
            return 0
        round_id = current.id
    status = rounds.status(round_id)
    if args.json:
        print(json.dumps(status_json(status), sort_keys=True))
        return 0
    print(format_status(status))
    return 0


def status_json(status: RoundStatus) -> dict[str, Any]:
    """The status as plain JSON (bytes as 0x-hex, amounts in wei)."""

    def plain(value):
        if isinstance(value, bytes):
            return "0x" + value.hex()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    data = plain(dataclasses.asdict(status))
    data["datasets"] = [{"id": i, "manifest_cid": cid} for i, cid in status.datasets]
    return data


def format_status(status: RoundStatus) -> str:
    state, outcome = status.round, status.outcome
    lines = [
        ("round", f"#{state.id} ({state.status})"),
        ("phase", f"{status.phase} (chain at block {status.block})"),
        ("base version", str(state.base_version)),
        ("spec hash", "0x" + state.spec_hash.hex()),
        ("seed", state.seed_hex),
        ("datasets", ", ".join(f"#{i} {cid}" for i, cid in status.datasets)),
        (
            "trainers",
            f"{state.trainer_count} committed, {state.delta_count} revealed; commit until block "
            f"{state.train_commit_deadline}, reveal until block {state.train_reveal_deadline}",
        ),
    ]
    if state.panel_size:
        lines.append(
            (
                "evaluators",
                f"{state.panel_size} drawn; commit until block {state.eval_commit_deadline}, "
                f"reveal until block {state.eval_reveal_deadline}",
            )
        )
    else:
        lines.append(("evaluators", f"panel drawn from block {state.panel_seed_block + 1}"))
    if outcome is not None:
        if outcome.status == "Finalized":
            accepted = bin(outcome.accepted_mask).count("1")
            pool = format_dsh(outcome.trainer_reward_pool, grouped=True)
            bonded = format_dsh(state.accepted_bond, grouped=True)
            lines.append(
                (
                    "outcome",
                    f"Finalized: {accepted} of {state.delta_count} deltas accepted; a reward pool of {pool} DSH "
                    f"shared by their {bonded} DSH of bonds in proportion to each bond",
                )
            )
            lines.append(("new version", f"{outcome.new_version} ({status.new_version_cid})"))
        else:
            lines.append(("outcome", "Failed: too few accepted deltas; revealed trainers reclaim their bonds"))
    text = "\n".join(f"{name:<13}{value}" for name, value in lines)
    tolerance = status.params["tolerance"]
    if status.trainers:
        rows = []
        for seat in status.trainers:
            if seat.accepted is None:
                verdict = "revealed" if seat.delta is not None else "committed"
            elif seat.accepted:
                verdict = "accepted"
            else:
                verdict = "slashed" if seat.slashed else "released"
            payout = "-"
            if seat.reward:
                payout = f"+{format_dsh(seat.reward, grouped=True)}"
            elif seat.slashed:
                payout = f"-{format_dsh(seat.slashed, grouped=True)}"
            distance = "-" if seat.distance is None else f"{seat.distance:,}"
            rows.append(
                [
                    seat.slot,
                    seat.trainer,
                    format_dsh(seat.bond, grouped=True),
                    "-" if seat.delta is None else seat.delta,
                    seat.delta_cid or "-",
                    distance,
                    verdict,
                    payout,
                    _yes(seat.settled),
                ]
            )
        text += "\n\n" + format_table(
            [
                "SLOT",
                "TRAINER",
                "BOND (DSH)",
                "DELTA",
                "DELTA CID",
                f"DISTANCE (tol {tolerance:,})",
                "OUTCOME",
                "PAYOUT (DSH)",
                "SETTLED",
            ],
            rows,
            numeric=(0, 2, 3, 5, 7),
        )
    if status.panel:
        rows = []
        for member in status.panel:
            coherent = "-" if member.coherent is None else ("yes" if member.coherent else "no")
            rows.append(
                [
                    member.seat,
                    member.evaluator,
                    member.weight,
                    _yes(member.committed),
                    _yes(member.revealed),
                    coherent,
                    "-" if member.reward is None else format_dsh(member.reward, grouped=True),
                    "-" if member.penalty is None else format_dsh(member.penalty, grouped=True),
                    _yes(member.settled),
                ]
            )
        text += "\n\n" + format_table(
            [
                "SEAT",
                "EVALUATOR",
                "VOTES",
                "COMMITTED",
                "REVEALED",
                "COHERENT",
                "REWARD (DSH)",
                "PENALTY (DSH)",
                "SETTLED",
            ],
            rows,
            numeric=(0, 2, 6, 7),
        )
    return text


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


# ---------------------------------------------------------------- round actions


def _open_run(args: argparse.Namespace) -> int:
    from ..ml.spec import SpecError, TrainingSpec
    from ..rounds.specs import SpecBook, SpecUnknown, configured_spec

    if args.spec:
        try:
            with open(args.spec, "rb") as handle:
                spec = TrainingSpec.from_json(handle.read())
        except OSError as exc:
            print(f"error: cannot read {args.spec}: {exc.strerror}", file=sys.stderr)
            return 1
        except SpecError as exc:
            print(f"error: {args.spec} is not a valid TrainingSpec: {exc}", file=sys.stderr)
            return 1
    else:
        configured = configured_spec()
        if configured is None:
            raise SpecUnknown("give the round's TrainingSpec with --spec FILE or $DEEPSHARD_TRAINING_SPEC")
        spec = configured
    rounds = _rounds(args)
    if not args.no_publish:
        import redis as redis_lib

        from ..tasks.runner import broker_redis, redis_unavailable

        try:
            SpecBook(broker_redis(), use_env=False).publish(spec)  # before opening: workers must find it
        except redis_lib.exceptions.RedisError as exc:
            raise redis_unavailable(exc) from None
    result = rounds.open_round(spec.spec_hash(), args.datasets)
    print(f"tx {result.tx_hash}")
    print(
        f"round {result.round_id} opened on datasets {result.dataset_ids} with spec {spec.spec_hash_hex()}; "
        f"trainers commit until block {result.commit_deadline} and reveal until block {result.reveal_deadline}"
    )
    return 0


def _draw_run(args: argparse.Namespace) -> int:
    result = _rounds(args).draw_evaluators(args.id)
    print(f"tx {result.tx_hash}")
    if result.result == "expired":
        print(
            f"round {args.id} failed: its seed block {result.seed_block} is more than 256 blocks old, so no panel "
            "can be drawn; every trainer lost the round's trainer penalty, the rest of each bond is unlocked"
        )
    elif result.result == "failed":
        print(f"round {args.id} failed: too few revealed deltas; revealed trainers reclaim their bonds")
    else:
        print(
            f"panel of round {args.id}: {len(result.panel)} evaluators; commit until block "
            f"{result.commit_deadline}, reveal until block {result.reveal_deadline}"
        )
        for evaluator in result.panel:
            print(f"  {evaluator}")
    return 0


def _finalize_run(args: argparse.Namespace) -> int:
    outcome = _rounds(args).finalize(args.id)
    print(f"tx {outcome.tx_hash}")
    if outcome.status == "Finalized":
        print(
            f"round {args.id} Finalized: accepted deltas {bin(outcome.accepted_mask)}, new version "
            f"{outcome.new_version}, a reward pool of {format_dsh(outcome.trainer_reward_pool)} DSH shared by the "
            "accepted trainers in proportion to their bonds"
        )
    else:
        print(f"round {args.id} Failed: too few accepted deltas")
    return 0


def _claim_run(args: argparse.Namespace) -> int:
    rounds = _rounds(args)
    if args.seat is not None:
        result = rounds.claim_evaluator(args.id, args.seat)
    elif rounds.seat_of(args.id) is not None and rounds.trainer_slot(rounds.round(args.id)) is None:
        result = rounds.claim_evaluator(args.id)
    else:
        result = rounds.claim_trainer(args.id)
    print(f"tx {result.tx_hash}")
    print(
        f"round {args.id}: {result.account} reward {format_dsh(result.reward)} DSH, "
        f"penalty {format_dsh(result.penalty)} DSH"
    )
    return 0


def _join_pool_run(args: argparse.Namespace) -> int:
    rounds = _rounds(args)
    bond = rounds.join_pool(parse_dsh(args.amount))
    print(f"evaluator pool bond of {rounds.chain.address}: {format_dsh(bond)} DSH")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="round_command", metavar="SUBCOMMAND", required=True)
    subs = []
    sub = commands.add_parser(
        "status",
        help="phases, submissions, distances, outcome and payouts of a round",
        description="Show a round (default: the newest): phases and deadlines, datasets, "
        "each trainer's delta, distance, outcome and payout, the evaluator "
        "panel, the outcome and the new model version.",
    )
    sub.add_argument("id", nargs="?", type=positive_int, metavar="ID")
    sub.add_argument("--json", action="store_true", help="one line of JSON instead of tables")
    sub.set_defaults(round_handler=_status_run)
    subs.append(sub)

    sub = commands.add_parser(
        "open",
        help="open a round on the pending accepted datasets (anyone)",
        description="Open a training round on pending accepted datasets (the oldest, up to "
        "the batch size) with a TrainingSpec, published in Redis for the workers.",
    )
    sub.add_argument("--spec", metavar="FILE", help="TrainingSpec JSON (default: $DEEPSHARD_TRAINING_SPEC)")
    sub.add_argument("--datasets", type=_id_list, metavar="ID,ID", help="these accepted datasets instead")
    sub.add_argument("--no-publish", action="store_true", help="do not publish the spec in Redis")
    sub.set_defaults(round_handler=_open_run)
    subs.append(sub)

    for name, help_text, handler in (
        ("draw", "draw the evaluator panel of a round (anyone)", _draw_run),
        ("finalize", "aggregate the fingerprints and settle a round (anyone)", _finalize_run),
    ):
        sub = commands.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        sub.add_argument("id", type=positive_int, metavar="ID")
        sub.set_defaults(round_handler=handler)
        subs.append(sub)

    sub = commands.add_parser(
        "claim",
        help="settle this account's seat in an ended round",
        description="Settle this account's trainer seat (bond and reward), or its evaluator "
        "seat; --seat settles any evaluator seat (anyone may).",
    )
    sub.add_argument("id", type=positive_int, metavar="ID")
    sub.add_argument("--seat", type=int, metavar="N", help="settle evaluator seat N")
    sub.set_defaults(round_handler=_claim_run)
    subs.append(sub)

    sub = commands.add_parser(
        "join-pool",
        help="lock EVALUATOR stake in the evaluator pool (evaluator)",
        description="Lock AMOUNT DSH more of EVALUATOR stake as pool bond: the weight with "
        "which panels are drawn, and what penalties are taken from.",
    )
    sub.add_argument("amount", metavar="AMOUNT", help="DSH, e.g. 1000")
    sub.set_defaults(round_handler=_join_pool_run)
    subs.append(sub)
    for sub in subs:
        add_rpc_option(sub)


def _reported(action):
    """Runs `action`, printing a dead Redis as one `error: ...` line (chain errors: `workers.cli.main`)."""

    def run(args: argparse.Namespace) -> int:
        from ..tasks.errors import QueueUnavailable

        try:
            return action(args)
        except QueueUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


@_reported
def run(args: argparse.Namespace) -> int:
    return args.round_handler(args)


# ---------------------------------------------------------------- worker and watch


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--role",
        required=True,
        type=str.lower,
        choices=NODE_ROLES,
        help="the role whose queue this worker consumes (any case)",
    )
    parser.add_argument(
        "--account",
        metavar="KEYSTORE",
        help="sign with this encrypted JSON keystore (default: $DEEPSHARD_PRIVATE_KEY or "
        "$DEEPSHARD_KEYSTORE); its password is asked once, or read from "
        "$DEEPSHARD_KEYSTORE_PASSWORD",
    )
    parser.add_argument(
        "--pool",
        choices=("prefork", "solo", "threads"),
        help="Celery pool (default: prefork for trainer and evaluator, solo otherwise)",
    )
    parser.add_argument("--concurrency", type=positive_int, default=1, metavar="N", help="processes (default 1)")
    parser.add_argument("--no-watch", action="store_true", help="keeper: do not run the watcher in this worker")
    parser.add_argument("--loglevel", default="INFO", help="Celery log level (default INFO)")
    storage = parser.add_argument_group("storage role")
    storage.add_argument("--endpoint", help="where this node serves replicas (a multiaddr or URL), to register with")
    storage.add_argument("--capacity", type=positive_int, metavar="BYTES", help="bytes offered, to register with")
    storage.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="STORE",
        help="also fetch replicas from this store: an IPFS RPC API address or an embedded store "
        "folder (repeatable; the publisher's store)",
    )
    storage.add_argument("--no-keep", action="store_true", help="no keeper duties: challenges, slashMissed, expire")
    storage.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="step interval (default 2)")


@_reported
def run_worker(args: argparse.Namespace) -> int:
    from .service import StorageOptions, run_storage_worker
    from .service import run_worker as start

    if args.role == "storage":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
        options = StorageOptions(
            endpoint=args.endpoint,
            capacity=args.capacity,
            sources=tuple(args.source),
            keeper=not args.no_keep,
            interval=args.interval,
        )
        return run_storage_worker(args.rpc, options, account=args.account, out=lambda line: print(line, flush=True))
    return start(
        args.role,
        args.rpc,
        account=args.account,
        pool=args.pool,
        concurrency=args.concurrency,
        loglevel=args.loglevel,
        watch=not args.no_watch,
    )


def add_watch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--confirmations",
        type=int,
        default=None,
        metavar="N",
        help="blocks an event must be buried under before it is dispatched (default 0 on the dev chains 31337 "
        "and 1337, 12 elsewhere)",
    )
    parser.add_argument(
        "--reset-cursor",
        action="store_true",
        help="forget the stored cursors of this chain id first (after the chain was replaced, e.g. a restarted "
        "dev chain) and scan from --from-block, else the deployment block",
    )
    parser.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="poll interval (default 2)")
    parser.add_argument(
        "--max-range",
        type=positive_int,
        default=1_000,
        metavar="BLOCKS",
        help="most blocks per eth_getLogs request (default 1000)",
    )
    parser.add_argument(
        "--from-block",
        type=int,
        metavar="N",
        help="where to start when no cursor is stored (default: the deployment block)",
    )


@_reported
def run_watch(args: argparse.Namespace) -> int:
    from .service import run_watch as watch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    return watch(
        args.rpc,
        confirmations=args.confirmations,
        max_range=args.max_range,
        start_block=args.from_block,
        interval=args.interval,
        reset_cursor=args.reset_cursor,
        out=lambda line: print(line, flush=True),
        err=lambda line: print(line, file=sys.stderr, flush=True),
    )
