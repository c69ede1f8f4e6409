"""`deepshard data ...`: check, normalise and measure datasets.

    deepshard data validate FILE                          exit 0 and a summary line, or 1 and every problem
    deepshard data normalise FILE -o OUT [--manifest M]   write the canonical file (and its manifest JSON)
    deepshard data signals FILE [--corpus PATH ...]       quality signals and baseline scores, as JSON

Problems print as `FILE:LINE: reason`, one a line (as compilers do, so editors can jump to them), then a
summary. Exit status: 0 success, 1 invalid dataset, 2 unreadable file or bad usage.

`workers.cli` wires it in as `Command("data", HELP, add_arguments, run)`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .dataset import DataError, InvalidDataset, ValidationReport, normalise_file, validate
from .records import DEFAULT_LIMITS, Limits

HELP = "validate, normalise and measure datasets"

EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return number


def _limits_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("limits")
    group.add_argument("--max-file-bytes", type=_positive_int, default=DEFAULT_LIMITS.max_file_bytes, metavar="N",
                       help="largest file (default: %(default)s)")
    group.add_argument("--max-records", type=_positive_int, default=DEFAULT_LIMITS.max_records, metavar="N",
                       help="most records (default: %(default)s)")
    group.add_argument("--max-record-bytes", type=_positive_int, default=DEFAULT_LIMITS.max_record_bytes, metavar="N",
                       help="longest line (default: %(default)s)")


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(max_file_bytes=args.max_file_bytes, max_records=args.max_records,
                  max_record_bytes=args.max_record_bytes)


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the `validate`, `normalise` and `signals` subcommands to the `data` parser."""
    commands = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    sub = commands.add_parser("validate", help="check a dataset; list every problem with its line",
                              description="Check a JSON Lines dataset against the deepshard-jsonl format.")
    sub.add_argument("file", metavar="FILE")
    _limits_arguments(sub)
    sub.set_defaults(data_handler=_validate_run)

    sub = commands.add_parser("normalise", aliases=["normalize"], help="write the canonical form of a dataset",
                              description="Write the normalised (canonical) dataset; its bytes fix its CID.")
    sub.add_argument("file", metavar="FILE")
    sub.add_argument("-o", "--output", required=True, metavar="OUT", help="normalised file to write (may be FILE)")
    sub.add_argument("--manifest", metavar="PATH", help="also write the manifest JSON here")
    _limits_arguments(sub)
    sub.set_defaults(data_handler=_normalise_run)

    sub = commands.add_parser("signals", help="print quality signals and baseline curator scores as JSON",
                              description="Quality signals (near-duplicates, junk, provenance) and the "
                                          "baseline CuratorPolicy scores, as JSON.")
    sub.add_argument("file", metavar="FILE")
    sub.add_argument("--corpus", nargs="+", default=[], metavar="DIR_OR_FILE",
                     help="accepted datasets (files, or folders of *.jsonl) to measure novelty against")
    _limits_arguments(sub)
    sub.set_defaults(data_handler=_signals_run)


def run(args: argparse.Namespace) -> int:
    """Runs the chosen subcommand; expected failures print `error: ...` on stderr."""
    try:
        return args.data_handler(args)
    except (OSError, DataError) as exc:
        if isinstance(exc, OSError) and exc.filename:
            detail = f"cannot use {exc.filename}: {exc.strerror or exc}"
        else:
            detail = str(exc)
        print(f"error: {detail}", file=sys.stderr)
        return EXIT_UNREADABLE
