"""The dataset format (deepshard-jsonl v1): one pass that reads, validates and normalises a dataset.

A dataset is JSON Lines, UTF-8: one JSON object per line,
    {"text": "...", "source": "...", "license": "...", "lang": "en"}
`text` is required and must hold something besides whitespace; `source` (where the content comes from,
or where its claims can be checked), `license` (an SPDX id such as CC-BY-4.0) and `lang` (a BCP 47 tag)
are optional strings. Any other field is an error rather than silently dropped: the bytes an informant
pins are exactly the bytes the curators judged, and a typo such as "txt" is caught instead of losing the
record. Blank lines are ignored, a UTF-8 byte order mark before the first line is tolerated and either
LF or CRLF may end a line.

Normalisation (see `normalise_text`) makes equal content equal bytes, hence one CID:
    - line breaks (CRLF, CR, VT, FF, NEL, U+2028, U+2029 ...) become LF;
    - control characters other than LF and TAB are removed;
    - every run of horizontal whitespace (tabs, no-break and other Unicode spaces) becomes one space,
      and lines are stripped: indentation is not kept, the format is for prose;
    - single line breaks are kept (lists, verse), two or more (with only whitespace between them)
      become one blank line, the paragraph break; leading and trailing blank lines go;
    - Unicode NFC, last, so that removed characters cannot leave a decomposed sequence behind.
A text with nothing visible after that (only whitespace and default-ignorable code points, below) is empty.
Metadata fields are normalised the same way but onto one line; a metadata field empty after that is
dropped, so `"source": ""` and no source are the same record. `lang` gets the BCP 47 canonical case
(`pt-br` -> `pt-BR`). Each record is then serialised canonically: keys sorted, no spaces, non-ASCII
characters written as themselves (UTF-8), one record per line, every line ending in "\\n".
The rules depend on Python's Unicode tables (Unicode 14.0 on Python 3.11, which the project pins).

Two records are duplicates when their texts have the same `comparison_form`, whatever their metadata: a
model learns the same thing from both. That form goes further than the stored text (which keeps what was
submitted, normalised as above): NFKC folds compatibility forms (fullwidth letters, ligatures, superscripts),
casefold folds case, Unicode's default-ignorable code points (soft hyphen, zero-width space and joiners,
bidi controls, variation selectors, the BOM, tags: invisible when rendered) are removed, and every
whitespace run becomes one space. Otherwise an invisible U+00AD inside every word would make a copy a new
record (the kind of tatoeba2 issue 2139 and garak PR 1937). The MinHash near-duplicate signals
(`workers.data.quality`) shingle the same form.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _encode_string
from pathlib import Path
from typing import BinaryIO

from ..safejson import JsonRejected, parse_json

FORMAT_NAME = "deepshard-jsonl"
FORMAT_VERSION = 1

TEXT_FIELD = "text"
METADATA_FIELDS = ("source", "license", "lang")
ALLOWED_FIELDS = (TEXT_FIELD, *METADATA_FIELDS)

KiB = 1024
MiB = 1024 * KiB

#: What a dataset may be read from: a path, or the file's bytes themselves.
Source = str | os.PathLike | bytes | bytearray | memoryview


@dataclass(frozen=True)
class Limits:
    """Bounds on one dataset. They keep validation, pinning and curating cheap and predictable."""

    max_file_bytes: int = 16 * MiB
    max_records: int = 100_000
    #: bytes of one line as stored, its line terminator excluded
    max_record_bytes: int = 64 * KiB
    #: problems listed in a report; the rest are only counted
    max_problems: int = 50

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_records", "max_record_bytes", "max_problems"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Problem:
    """One reason a dataset is invalid, at a 1-based line of the file."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class Record:
    """A valid record: its line in the file, its normalised fields and their canonical serialisation."""

    line: int
    fields: dict[str, str]
    canonical: bytes = field(repr=False)

    @property
    def text(self) -> str:
        return self.fields[TEXT_FIELD]


# ---------------------------------------------------------------- text normalisation

# Cc characters except TAB and the line breaks that str.splitlines() knows (LF, VT, FF, CR, FS, GS, RS, NEL).
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f]")


def normalise_text(text: str) -> str:
    """The normalised form of a record's text (rules in the module docstring); idempotent."""
    if not text.isprintable():  # holds a line break, a control, or whitespace other than ' '
        text = _CONTROLS.sub("", text)
        # str.splitlines() breaks exactly on the line breaks listed in the module docstring.
        lines = [" ".join(line.split()) for line in text.splitlines()]
        if len(lines) == 1:
            text = lines[0]
        else:
            parts: list[str] = []
            blank_before = False
            for line in lines:
                if not line:
                    blank_before = True
                    continue
                if parts:
                    parts.append("\n\n" if blank_before else "\n")
                parts.append(line)
                blank_before = False
            text = "".join(parts)
    elif "  " in text or text.startswith(" ") or text.endswith(" "):
        text = " ".join(text.split())
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", text)


# Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt; unchanged from Unicode 14, the
# tables Python 3.11 ships, through 16). The `re` module has no property classes; a test checks this list
# against the `regex` module's \p{Default_Ignorable_Code_Point}.
DEFAULT_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff]+"
)


def comparison_form(text: str) -> str:
    """The form in which texts are compared for duplicates (exact and MinHash), never stored: NFKC, casefold,
    default-ignorable code points removed, NFKC again (a removal can bring combinable characters together),
    whitespace runs as one space, stripped. Idempotent; rules in the module docstring."""
    if text.isascii():
        return " ".join(text.lower().split())
    folded = unicodedata.normalize("NFKC", text).casefold()
    visible = DEFAULT_IGNORABLE.sub("", folded)
    if len(visible) != len(folded):
        visible = unicodedata.normalize("NFKC", visible)
    return " ".join(visible.split())


def _visible(normalised: str) -> bool:
    """Whether a normalised text shows anything: a character other than whitespace and the default-ignorable
    code points (`comparison_form` removes those, so fifty U+200B would otherwise be an empty text with a CID)."""
    return normalised.isascii() or bool(DEFAULT_IGNORABLE.sub("", normalised).strip())


def normalise_inline(value: str) -> str:
    """A metadata value on one line: like `normalise_text`, with every whitespace run one space."""
    if not value.isprintable():
        value = _CONTROLS.sub("", value)
    value = " ".join(value.split())
    return value if value.isascii() else unicodedata.normalize("NFC", value)


_LANG_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*\Z")


def canonical_lang(tag: str) -> str:
    """BCP 47 canonical case: language lower, script title (`Latn`), region upper (`BR`), rest lower."""
    parts = tag.split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha() and len(out) == 1:
            out.append(part.title())
        elif (len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit()):
            out.append(part.upper())
        else:
            out.append(part.lower())
    return "-".join(out)


def canonical_record_bytes(fields: dict[str, str]) -> bytes:
    """The record's line in a normalised file: sorted keys, no spaces, UTF-8, ending in LF.

    Byte-for-byte `json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":"))` plus
    LF (a test holds it to that); written out because every value is a string and it is 3x faster.
    """
    body = ",".join(f'"{name}":{_encode_string(fields[name])}' for name in sorted(fields))
    return ("{" + body + "}\n").encode("utf-8")


# ---------------------------------------------------------------- reading

_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


#: Nesting a line may have (levels): a record is one flat object of strings; one level more lets a misplaced
#: array or object get its own message ("must be a string"); anything deeper is refused before it is parsed.
MAX_RECORD_DEPTH = 2


def _parse(line: bytes, line_no: int, problems: list[Problem]) -> dict | None:
    """The line's JSON object, or None after appending why it is not one (workers.safejson's strict rules)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(
            Problem(line_no, f"not valid UTF-8 (byte 0x{line[exc.start]:02x} at byte {exc.start + 1} of the line)")
        )
        return None
    try:
        value = parse_json(text, what=f"line {line_no}", max_depth=MAX_RECORD_DEPTH)
    except JsonRejected as exc:
        problems.append(Problem(line_no, exc.reason))
        return None
    if not isinstance(value, dict):
        problems.append(Problem(line_no, f"a record must be a JSON object, not {_json_type(value)}"))
        return None
    return value


def _check_fields(value: dict, line_no: int, problems: list[Problem]) -> dict[str, str] | None:
    """The normalised fields of a parsed object, or None after appending every problem found."""
    before = len(problems)
    unknown = sorted(key for key in value if key not in ALLOWED_FIELDS)
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        problems.append(
            Problem(
                line_no,
                f"unknown field{'s' if len(unknown) > 1 else ''} {names} (allowed: {', '.join(ALLOWED_FIELDS)})",
            )
        )
    fields: dict[str, str] = {}
    for name in ALLOWED_FIELDS:
        if name not in value:
            if name == TEXT_FIELD:
                problems.append(Problem(line_no, "missing field 'text'"))
            continue
        raw = value[name]
        if not isinstance(raw, str):
            problems.append(Problem(line_no, f"field '{name}' must be a string, not {_json_type(raw)}"))
            continue
        if name == TEXT_FIELD:
            normalised = normalise_text(raw)
            if not normalised:
                problems.append(Problem(line_no, "field 'text' is empty" + (" (only whitespace)" if raw else "")))
                continue
            if not _visible(normalised):
                problems.append(Problem(line_no, "field 'text' is empty (no visible characters)"))
                continue
        else:
            normalised = normalise_inline(raw)
            if not normalised:
                continue  # an empty optional field is the same as an absent one
            if name == "lang":
                if not _LANG_TAG.match(normalised):
                    problems.append(
                        Problem(
                            line_no,
                            f"field 'lang' must be a BCP 47 language tag such as "
                            f"'en' or 'pt-BR', not {normalised[:40]!r}",
                        )
                    )
                    continue
                normalised = canonical_lang(normalised)
        fields[name] = normalised
    return fields if len(problems) == before else None


def _lines(stream: BinaryIO, max_line_bytes: int) -> Iterator[tuple[bytes | None, int]]:
    """(line without its terminator or None if longer than `max_line_bytes`, bytes consumed) per line.

    Reads at most max_line_bytes + 2 bytes of a line into memory: an oversized line is skipped in chunks.
    """
    limit = max_line_bytes + 2  # room for CRLF
    while True:
        chunk = stream.readline(limit)
        if not chunk:
            return
        consumed = len(chunk)
        if not chunk.endswith(b"\n") and len(chunk) == limit:
            while True:  # skip the rest of the oversized line
                rest = stream.readline(1 * MiB)
                consumed += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None, consumed
            continue
        line = chunk[:-1] if chunk.endswith(b"\n") else chunk
        if line.endswith(b"\r"):
            line = line[:-1]
        yield (line if len(line) <= max_line_bytes else None), consumed


@dataclass
class Scan:
    """What one pass over a dataset found: problems (all counted, `max_problems` kept) and totals."""

    limits: Limits
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    lines: int = 0
    records: int = 0
    bytes_read: int = 0
    stopped_early: bool = False

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < self.limits.max_problems:
            self.problems.append(problem)


def scan_records(
    stream: BinaryIO, limits: Limits = DEFAULT_LIMITS, scan: Scan | None = None, *, report_duplicates: bool = True
) -> Iterator[Record]:
    """Yields the valid records of a binary stream, recording every problem in `scan`.

    Streams: memory is bounded by one line plus a 16-byte digest per record (for duplicates). Reading
    stops at the first line past the file-size or record-count limit. With `report_duplicates=False`
    duplicates are yielded like any record (the quality signals want to see them).
    """
    scan = scan if scan is not None else Scan(limits)
    first_line_of: dict[bytes, int] = {}
    line_no = 0
    for line, consumed in _lines(stream, limits.max_record_bytes):
        line_no += 1
        scan.lines = line_no
        scan.bytes_read += consumed
        if scan.bytes_read > limits.max_file_bytes:
            scan.add(
                Problem(
                    line_no,
                    f"the file is over the size limit of {_size(limits.max_file_bytes)} "
                    f"(reached on this line); stopped reading",
                )
            )
            scan.stopped_early = True
            return
        if line is None:
            scan.records += 1
            scan.add(Problem(line_no, f"record is over the size limit of {_size(limits.max_record_bytes)}"))
            continue
        if line_no == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if not line.strip(b" \t\r\n"):
            continue  # blank lines are not records
        scan.records += 1
        if scan.records > limits.max_records:
            scan.add(Problem(line_no, f"more than {limits.max_records:,} records (the limit); stopped reading"))
            scan.stopped_early = True
            return
        problems: list[Problem] = []
        value = _parse(line, line_no, problems)
        fields = _check_fields(value, line_no, problems) if value is not None else None
        for problem in problems:
            scan.add(problem)
        if fields is None:
            continue
        if report_duplicates:
            key = hashlib.blake2b(comparison_form(fields[TEXT_FIELD]).encode("utf-8"), digest_size=16).digest()
            first = first_line_of.setdefault(key, line_no)
            if first != line_no:
                scan.add(Problem(line_no, f"duplicate of line {first} (the same text after normalisation)"))
                continue
        yield Record(line_no, fields, canonical_record_bytes(fields))
    if scan.records == 0 and not scan.problem_count:
        scan.add(Problem(max(line_no, 1), "the file holds no records"))


def _size(n: int) -> str:
    for unit, size in (("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n:,} bytes"


def open_source(source: Source) -> BinaryIO:
    """A binary stream over a dataset given as a path or as its bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    return open(Path(source), "rb")


def read_records(
    source: Source, limits: Limits = DEFAULT_LIMITS, *, report_duplicates: bool = True
) -> tuple[list[Record], Scan]:
    """All valid records of a dataset and the scan that found them (problems included)."""
    scan = Scan(limits)
    with open_source(source) as stream:
        records = list(scan_records(stream, limits, scan, report_duplicates=report_duplicates))
    return records, scan
