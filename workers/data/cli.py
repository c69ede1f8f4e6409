"""`deepshard data ...`: check, normalise and measure datasets, and take part in the data consensus.

    deepshard data validate FILE                          exit 0 and a summary line, or 1 and every problem
    deepshard data normalise FILE -o OUT [--manifest M]   write the canonical file (and its manifest JSON)
    deepshard data signals FILE [--corpus PATH ...]       quality signals and baseline scores, as JSON

    deepshard data submit FILE --bond N      informant: validate, pin, submit; prints the submission id
    deepshard data join-pool AMOUNT          curator: lock AMOUNT DSH of CURATOR stake in the panel pool
    deepshard data draw ID                   anyone: draw the panel once the seed block is mined
    deepshard data vote ID --scores a,b,c,d,e   panel curator: commit (the salt is kept on disk)
    deepshard data reveal ID                 panel curator: reveal the stored vote
    deepshard data finalize ID               anyone: close the vote after the reveal window
    deepshard data claim ID                  settle this account's seat and/or informant reward
    deepshard data status ID                 phase, deadlines, panel, consensus, value, outcome
    deepshard data list [--json]             every submission: phase, informant, bond, value, used by a round

Problems print as `FILE:LINE: reason`, one a line (as compilers do, so editors can jump to them), then a
summary. Exit status: 0 success, 1 invalid dataset, 2 unreadable file or bad usage.
The consensus commands print one `error: ...` line and exit 1 on failure, having sent nothing; they
use the chain of --rpc, the signer of the environment (see workers.chain.accounts), the content store
of the environment (see workers.storage) and the vote folder $DEEPSHARD_VOTES_DIR.

`workers.cli` wires it in as a `Command` (`add_arguments`, `run`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..chain.units import format_dsh, parse_dsh
from ..tables import format_table
from .dataset import DataError, InvalidDataset, ValidationReport, normalise_file, validate
from .records import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from .chain import DataConsensusClient

# The chain client (web3) and the content stores are imported by the commands that use them: `data validate`,
# `normalise` and `signals` start without them.

EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return number


def _limits_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("limits")
    group.add_argument(
        "--max-file-bytes",
        type=_positive_int,
        default=DEFAULT_LIMITS.max_file_bytes,
        metavar="N",
        help="largest file (default: %(default)s)",
    )
    group.add_argument(
        "--max-records",
        type=_positive_int,
        default=DEFAULT_LIMITS.max_records,
        metavar="N",
        help="most records (default: %(default)s)",
    )
    group.add_argument(
        "--max-record-bytes",
        type=_positive_int,
        default=DEFAULT_LIMITS.max_record_bytes,
        metavar="N",
        help="longest line (default: %(default)s)",
    )


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(
        max_file_bytes=args.max_file_bytes, max_records=args.max_records, max_record_bytes=args.max_record_bytes
    )


def _print_problems(name: str, report: ValidationReport) -> None:
    for problem in report.problems:
        print(f"{name}:{problem.line}: {problem.reason}")
    print(f"{name}: {report.summary()}")


def _validate_run(args: argparse.Namespace) -> int:
    report = validate(args.file, _limits(args))
    if report.ok:
        print(f"{args.file}: {report.summary()}")
        return EXIT_OK
    _print_problems(args.file, report)
    return EXIT_INVALID


def _normalise_run(args: argparse.Namespace) -> int:
    try:
        manifest = normalise_file(args.file, args.output, _limits(args))
    except InvalidDataset as exc:
        _print_problems(args.file, exc.report)
        return EXIT_INVALID
    if args.manifest:
        Path(args.manifest).write_bytes(manifest.canonical_json() + b"\n")
    print(f"{args.output}: {manifest.records:,} records, {manifest.size_bytes:,} bytes, sha256 {manifest.sha256}")
    return EXIT_OK


def _signals_run(args: argparse.Namespace) -> int:
    from .quality import CuratorPolicy, compute_signals, corpus_index  # numpy only when needed

    limits = _limits(args)
    for path in [args.file, *args.corpus]:
        if not Path(path).exists():
            raise FileNotFoundError(2, "No such file or directory", path)
    corpus = corpus_index(args.corpus, limits=limits) if args.corpus else None
    signals = compute_signals(args.file, corpus=corpus, limits=limits)
    scores = CuratorPolicy().score(signals)
    # `vote` is the scores in the order DataConsensus takes them.
    report = {"signals": signals.to_dict(), "scores": dataclasses.asdict(scores), "vote": scores.as_list()}
    print(json.dumps(report, indent=2, sort_keys=True))
    return EXIT_OK


# ---------------------------------------------------------------- the data consensus


def _consensus(args: argparse.Namespace, *, with_signer: bool = True) -> DataConsensusClient:
    from ..chain import ChainClient, load_signer
    from .chain import DataConsensusClient

    # The key is loaded before connecting: a missing key is reported without touching the network.
    signer = load_signer() if with_signer else None
    return DataConsensusClient(ChainClient(args.rpc, signer))


def _submission_id(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"a submission id is a positive integer, not {value}")
    return number


def _chain_command(action: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """One `error: ...` line and exit 1 for dataset and storage failures, as `workers.cli.main` does for
    `ChainError`s."""

    def run(args: argparse.Namespace) -> int:
        from ..storage import StorageError

        try:
            return action(args)
        except InvalidDataset as exc:
            from .chain import describe_invalid

            print(f"error: {args.file}: {describe_invalid(exc)}; nothing was submitted", file=sys.stderr)
        except (StorageError, DataError) as exc:
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID

    return run


def _submit_run(args: argparse.Namespace) -> int:
    bond = parse_dsh(args.bond)
    if not Path(args.file).is_file():
        raise FileNotFoundError(2, "No such file", args.file)
    from ..storage import open_store

    consensus = _consensus(args)
    with open_store() as store:
        result = consensus.submit(args.file, bond, store, _limits(args))
    manifest = result.pinned.manifest
    print(f"dataset   {manifest.cid} ({manifest.records:,} records, {manifest.approx_tokens:,} approx tokens)")
    print(f"manifest  {result.pinned.manifest_cid}")
    print(f"tx {result.tx_hash}")
    print(
        f"submission {result.submission_id}: bond of {format_dsh(result.bond, grouped=True)} DSH locked; a keeper "
        f"draws its panel from block {result.seed_block + 1} (or anyone: `deepshard data draw {result.submission_id}`)"
    )
    return EXIT_OK


def _join_pool_run(args: argparse.Namespace) -> int:
    amount = parse_dsh(args.amount)
    consensus = _consensus(args)
    bond = consensus.join_pool(amount)
    print(f"pool bond of {consensus.chain.address}: {format_dsh(bond)} DSH")
    return EXIT_OK


def _draw_run(args: argparse.Namespace) -> int:
    result = _consensus(args).draw(args.id)
    print(f"tx {result.tx_hash}")
    if result.expired_slash is not None:
        print(
            f"the seed block of #{args.id} was too old: the submission expired undrawn and "
            f"{format_dsh(result.expired_slash, grouped=True)} DSH of its bond went to the treasury"
        )
        return EXIT_OK
    print(
        f"panel of #{args.id}: {len(result.panel)} curators; commit until block {result.commit_deadline}, "
        f"reveal until block {result.reveal_deadline}"
    )
    for curator in result.panel:
        print(f"  {curator}")
    return EXIT_OK


def _vote_run(args: argparse.Namespace) -> int:
    from .chain import parse_scores

    scores = parse_scores(args.scores)  # checked before the key is loaded or the node is contacted
    result = _consensus(args).vote(args.id, scores)
    print(f"tx {result.tx_hash}")
    print(f"committed {result.value} on #{args.id}; the salt is kept in {result.salt_path}")
    print(f"reveal from block {result.reveal_from} to {result.reveal_deadline} with `deepshard data reveal {args.id}`")
    return EXIT_OK


def _reveal_run(args: argparse.Namespace) -> int:
    result = _consensus(args).reveal(args.id)
    print(f"tx {result.tx_hash}")
    print(f"revealed {result.scores} on #{args.id}")
    return EXIT_OK


def _finalize_run(args: argparse.Namespace) -> int:
    outcome = _consensus(args).finalize(args.id)
    print(f"tx {outcome.tx_hash}")
    print(
        f"#{args.id} {outcome.status}: consensus {outcome.consensus}, value {outcome.value:,}, "
        f"threshold {outcome.threshold_before:,} -> {outcome.threshold_after:,}"
    )
    return EXIT_OK


def _claim_run(args: argparse.Namespace) -> int:
    result = _consensus(args).claim(args.id)
    for tx_hash in result.tx_hashes:
        print(f"tx {tx_hash}")
    print(
        f"#{args.id}: seat reward {format_dsh(result.seat_reward)} DSH, "
        f"penalty {format_dsh(result.seat_penalty)} DSH, "
        f"informant reward {format_dsh(result.informant_reward)} DSH"
    )
    return EXIT_OK


def _status_run(args: argparse.Namespace) -> int:
    status = _consensus(args, with_signer=False).status(args.id)
    submission, outcome = status.submission, status.outcome
    lines = [
        ("submission", f"#{submission.id}"),
        ("informant", submission.informant),
        ("manifest", status.manifest_cid),
        ("bond", f"{format_dsh(submission.bond, grouped=True)} DSH"),
        ("phase", f"{status.phase} (chain at block {status.block})"),
        ("seed block", str(submission.seed_block)),
    ]
    if submission.panel_size:
        lines += [
            ("commit until", f"block {submission.commit_deadline}"),
            ("reveal until", f"block {submission.reveal_deadline}"),
        ]
    if outcome is not None:
        lines += [
            ("outcome", outcome.status),
            ("consensus", str(outcome.consensus)),
            (
                "value",
                f"{outcome.value:,} of 10,000 (threshold {outcome.threshold_before:,} -> {outcome.threshold_after:,})",
            ),
        ]
        if submission.informant_reward:
            lines.append(("unclaimed", f"{format_dsh(submission.informant_reward)} DSH informant reward"))
    lines.append(("threshold", f"{status.threshold:,} now"))
    for name, value in lines:
        print(f"{name:<13}{value}")
    if status.panel:
        rows = [
            [
                seat.seat,
                seat.curator,
                seat.weight,
                _yes(seat.committed),
                _yes(seat.revealed),
                _yes(seat.settled),
            ]
            for seat in status.panel
        ]
        print()
        print(format_table(["SEAT", "CURATOR", "VOTES", "COMMITTED", "REVEALED", "SETTLED"], rows, numeric=(0, 2)))
    return EXIT_OK


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"


def _list_run(args: argparse.Namespace) -> int:
    consensus = _consensus(args, with_signer=False)
    latest = consensus.latest_block()
    submissions = [consensus.submission(i) for i in range(1, consensus.submission_count() + 1)]
    rows = [
        {
            "id": s.id,
            "status": s.status,
            "phase": s.phase(latest),
            "informant": s.informant,
            "bond": s.bond,
            "value": s.value if s.finalized else None,
            "in_round": s.consumed,
            "manifest_cid": consensus.manifest_cid(s.id),
        }
        for s in submissions
    ]
    if args.json:
        print(json.dumps(rows, sort_keys=True))
        return EXIT_OK
    if not rows:
        print("no dataset has been submitted yet: `deepshard data submit FILE --bond 200`")
        return EXIT_OK
    table = [
        [
            r["id"],
            r["phase"],
            r["informant"],
            format_dsh(s.bond, grouped=True),
            "-" if r["value"] is None else f"{r['value']:,}",
            "yes" if r["in_round"] else "-",
            r["manifest_cid"],
        ]
        for r, s in zip(rows, submissions, strict=True)
    ]
    print(
        format_table(
            ["ID", "PHASE", "INFORMANT", "BOND (DSH)", "VALUE", "TRAINED ON", "MANIFEST CID"], table, numeric=(0, 3, 4)
        )
    )
    return EXIT_OK


def _add_chain_commands(commands) -> None:
    parsers = []
    sub = commands.add_parser(
        "submit",
        help="validate, pin and submit a dataset with a bond (informant)",
        description="Validate and normalise FILE, pin it and its manifest, then submit the "
        "manifest CID with a bond of INFORMANT stake. Nothing is sent if any "
        "step before fails.",
    )
    sub.add_argument("file", metavar="FILE")
    sub.add_argument("--bond", required=True, metavar="N", help="DSH of INFORMANT stake to lock, e.g. 200")
    _limits_arguments(sub)
    sub.set_defaults(data_handler=_chain_command(_submit_run))
    parsers.append(sub)

    sub = commands.add_parser(
        "join-pool",
        help="lock CURATOR stake in the curator pool (curator)",
        description="Lock AMOUNT DSH more of CURATOR stake as pool bond: the weight with "
        "which panels are drawn, and what penalties are taken from.",
    )
    sub.add_argument("amount", metavar="AMOUNT", help="DSH, e.g. 1000")
    sub.set_defaults(data_handler=_chain_command(_join_pool_run))
    parsers.append(sub)

    sub = commands.add_parser(
        "vote",
        help="commit scores on a submission (panel curator)",
        description="Commit five scores 0..100 (novelty, reproducibility, alignment, "
        "truthfulness, objectivity). A random salt is stored on disk first "
        "($DEEPSHARD_VOTES_DIR); `data reveal` needs it.",
    )
    sub.add_argument("id", type=_submission_id, metavar="ID")
    sub.add_argument("--scores", required=True, metavar="a,b,c,d,e", help="five integers 0..100")
    sub.set_defaults(data_handler=_chain_command(_vote_run))
    parsers.append(sub)

    sub = commands.add_parser(
        "list",
        help="every submission: phase, informant, bond, value, whether a round trained on it",
        description="List every submitted dataset: its phase, informant, bond, value (0..10,000 once "
        "finalized), whether a training round used it, and its manifest CID.",
    )
    sub.add_argument("--json", action="store_true", help="one line of JSON (bonds in wei)")
    sub.set_defaults(data_handler=_chain_command(_list_run))
    parsers.append(sub)

    for name, help_text, handler in (
        ("draw", "draw the panel of a submission (anyone)", _draw_run),
        ("reveal", "reveal the stored vote on a submission (panel curator)", _reveal_run),
        ("finalize", "close the vote and settle the informant's bond (anyone)", _finalize_run),
        ("claim", "settle this account's seat and/or claim the informant reward", _claim_run),
        ("status", "show a submission's phase, deadlines, panel and outcome", _status_run),
    ):
        sub = commands.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        sub.add_argument("id", type=_submission_id, metavar="ID")
        sub.set_defaults(data_handler=_chain_command(handler))
        parsers.append(sub)
    for sub in parsers:
        # Also after the subcommand (`data vote 1 --rpc URL`); absent, the `data` parser's value stands.
        sub.add_argument(
            "--rpc",
            metavar="URL",
            default=argparse.SUPPRESS,
            help="node JSON-RPC URL (default: $DEEPSHARD_RPC_URL, else http://127.0.0.1:8545)",
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the dataset subcommands and the consensus subcommands to the `data` parser."""
    commands = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    sub = commands.add_parser(
        "validate",
        help="check a dataset; list every problem with its line",
        description="Check a JSON Lines dataset against the deepshard-jsonl format.",
    )
    sub.add_argument("file", metavar="FILE")
    _limits_arguments(sub)
    sub.set_defaults(data_handler=_validate_run)

    sub = commands.add_parser(
        "normalise",
        aliases=["normalize"],
        help="write the canonical form of a dataset",
        description="Write the normalised (canonical) dataset; its bytes fix its CID.",
    )
    sub.add_argument("file", metavar="FILE")
    sub.add_argument("-o", "--output", required=True, metavar="OUT", help="normalised file to write (may be FILE)")
    sub.add_argument("--manifest", metavar="PATH", help="also write the manifest JSON here")
    _limits_arguments(sub)
    sub.set_defaults(data_handler=_normalise_run)

    sub = commands.add_parser(
        "signals",
        help="print quality signals and baseline curator scores as JSON",
        description="Quality signals (near-duplicates, junk, provenance) and the "
        "baseline CuratorPolicy scores, as JSON.",
    )
    sub.add_argument("file", metavar="FILE")
    sub.add_argument(
        "--corpus",
        nargs="+",
        default=[],
        metavar="DIR_OR_FILE",
        help="accepted datasets (files, or folders of *.jsonl) to measure novelty against",
    )
    _limits_arguments(sub)
    sub.set_defaults(data_handler=_signals_run)

    _add_chain_commands(commands)


def run(args: argparse.Namespace) -> int:
    """Runs the chosen subcommand; expected failures print `error: ...` on stderr."""
    try:
        return args.data_handler(args)
    except (OSError, DataError) as exc:
        requests = sys.modules.get("requests")  # loaded by the commands that talk to a node or an IPFS API
        if requests is not None and isinstance(exc, requests.RequestException):
            raise  # the chain's node stopped answering: `workers.cli.main` reports it
        if isinstance(exc, OSError) and exc.filename:
            detail = f"cannot use {exc.filename}: {exc.strerror or exc}"
        else:
            detail = str(exc)
        print(f"error: {detail}", file=sys.stderr)
        return EXIT_UNREADABLE
