"""Validate and normalise a dataset file; the format and its rules are in `workers.data.records`.

    report = validate("data.jsonl")          # every problem with its line, or the manifest
    blob = normalise("data.jsonl")           # canonical bytes (raises InvalidDataset)
    manifest = normalise_file("data.jsonl", "data.norm.jsonl")

All three make one streaming pass; validating is normalising into a hash.
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .manifest import DatasetManifest, ManifestBuilder
from .records import DEFAULT_LIMITS, Limits, Problem, Scan, Source, open_source, scan_records


class DataError(Exception):
    """Base of the data layer's expected failures; `str(error)` is a sentence for the user."""


class InvalidDataset(DataError):
    """The dataset breaks the format; `report` lists the problems with their lines."""

    def __init__(self, report: ValidationReport):
        super().__init__(report.summary())
        self.report = report


@dataclass(frozen=True)
class ValidationReport:
    """The verdict on one dataset. `problems` holds at most `Limits.max_problems`; `problem_count` all."""

    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    lines: int = 0
    stopped_early: bool = False
    #: the normalised dataset's manifest (no CID yet); None when the dataset is invalid
    manifest: DatasetManifest | None = None

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def summary(self) -> str:
        """One line: 'valid, N records, ...' or 'invalid: N problems ...'."""
        m = self.manifest
        if self.ok and m is not None:
            return (
                f"valid: {m.records:,} records, {m.approx_tokens:,} approx tokens, "
                f"{m.size_bytes:,} bytes normalised, sha256 {m.sha256}"
            )
        listed = len(self.problems)
        more = f" (first {listed} listed)" if listed < self.problem_count else ""
        stopped = ", stopped reading early" if self.stopped_early else ""
        return f"invalid: {self.problem_count:,} problem{'s' if self.problem_count != 1 else ''}{more}{stopped}"


def _run(stream: BinaryIO, limits: Limits, sink: BinaryIO | None) -> ValidationReport:
    scan = Scan(limits)
    builder = ManifestBuilder()
    for record in scan_records(stream, limits, scan):
        if scan.problem_count:
            continue  # still read on to report every problem, but stop building output
        builder.add(record.canonical, record.text)
        if sink is not None:
            sink.write(record.canonical)
    ok = scan.problem_count == 0
    return ValidationReport(
        problems=list(scan.problems),
        problem_count=scan.problem_count,
        lines=scan.lines,
        stopped_early=scan.stopped_early,
        manifest=builder.build() if ok else None,
    )


def validate(source: Source, limits: Limits = DEFAULT_LIMITS) -> ValidationReport:
    """Checks a dataset (a path or its bytes) against the format and the limits; never raises on bad data."""
    with open_source(source) as stream:
        return _run(stream, limits, None)


def normalise(source: Source, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The canonical bytes of a valid dataset; raises `InvalidDataset` otherwise."""
    out = io.BytesIO()
    with open_source(source) as stream:
        report = _run(stream, limits, out)
    if not report.ok:
        raise InvalidDataset(report)
    return out.getvalue()


def normalise_file(source: Source, destination: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> DatasetManifest:
    """Streams the normalised dataset into `destination` and returns its manifest.

    The file appears atomically and only when the dataset is valid (else `InvalidDataset`, nothing written).
    `destination` may be the source itself.
    """
    destination = Path(destination)
    if not destination.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such folder", str(destination.parent))
    fd, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
    try:
        with os.fdopen(fd, "wb") as sink, open_source(source) as stream:
            report = _run(stream, limits, sink)
        if not report.ok or report.manifest is None:
            raise InvalidDataset(report)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return report.manifest


def is_canonical(source: Source, limits: Limits = DEFAULT_LIMITS) -> bool:
    """Whether a dataset is valid and already normalised: what a curator checks on fetched bytes."""
    data = source if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).read_bytes()
    try:
        return normalise(data, limits) == bytes(data)
    except InvalidDataset:
        return False
