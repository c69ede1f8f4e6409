"""Hostile datasets through `deepshard data ...`: copies disguised with invisible or compatibility characters
are caught as duplicates (exact and MinHash), and lines built to crash a parser get a clear problem naming
their line. Issue 10's cases; the kinds are fixed in `workers.data.records.comparison_form` and
`workers.safejson.parse_json`."""

from __future__ import annotations

import json
import re
import sys

import pytest
import regex

from workers.cli import main
from workers.data import SAMPLES_DIR, normalise
from workers.data.records import DEFAULT_IGNORABLE, comparison_form

GOOD = SAMPLES_DIR / "good.jsonl"
TEXT = "Photosynthesis converts sunlight, water and carbon dioxide into glucose and oxygen inside chloroplasts."
SOFT_HYPHEN = "\u00ad"


def run(capsys, *argv):
    status = main(["data", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    return status, out, err


def hyphenate(text: str) -> str:
    """`text` with a soft hyphen (U+00AD, invisible when rendered) inside every word of 6 letters or more."""
    return re.sub(r"\b(\w{3})(\w{3,})", lambda m: m[1] + SOFT_HYPHEN + m[2], text)


def lines(*texts: str) -> bytes:
    return b"".join(json.dumps({"text": text}, ensure_ascii=False).encode() + b"\n" for text in texts)


@pytest.mark.parametrize(
    "disguised",
    [
        pytest.param(hyphenate(TEXT), id="soft hyphen in every long word"),
        pytest.param(TEXT.replace("o", "o\u200b"), id="zero-width space"),
        pytest.param(TEXT.replace("n", "n\u200d").replace("a", "a\ufe0f"), id="joiner and variation selector"),
        pytest.param("\ufeff" + TEXT.replace(" ", " \ufeff"), id="BOM inside the text"),
        pytest.param(TEXT.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)}), id="fullwidth forms"),
        pytest.param(TEXT.upper(), id="case"),
        pytest.param(TEXT.replace("fi", "\ufb01").replace(" ", "\u3000"), id="ligature and ideographic space"),
        pytest.param(TEXT.replace("e", "e\U000e0041"), id="tag characters"),
    ],
)
def test_a_disguised_copy_is_a_duplicate_of_its_line(capsys, tmp_path, disguised):
    assert disguised != TEXT
    path = tmp_path / "data.jsonl"
    path.write_bytes(lines(TEXT, disguised))
    status, out, _ = run(capsys, "validate", path)
    assert status == 1, out
    assert f"{path}:2: duplicate of line 1" in out and out.rstrip().endswith("invalid: 1 problem")


def test_the_stored_text_stays_as_submitted(capsys, tmp_path):
    """Only the comparison folds case and invisible characters: what is pinned keeps them."""
    path, normalised = tmp_path / "data.jsonl", tmp_path / "norm.jsonl"
    submitted = hyphenate(TEXT).replace("Photo", "PHOTO")
    path.write_bytes(lines(submitted, "An unrelated record about the tides of the North Sea and the Moon."))
    status, out, _ = run(capsys, "normalise", path, "-o", normalised)
    assert status == 0, out
    assert json.loads(normalised.read_bytes().splitlines()[0])["text"] == submitted
    assert normalise(path) == normalised.read_bytes()


def test_different_texts_stay_distinct(capsys, tmp_path):
    path = tmp_path / "data.jsonl"
    # Visible differences are not folded away: a letter, a digit, an accent (NFKC keeps é distinct from e).
    path.write_bytes(lines(TEXT, TEXT.replace("water", "wafer"), TEXT + " 2", TEXT.replace("glucose", "glucosé")))
    status, out, _ = run(capsys, "validate", path)
    assert status == 0, out


def test_a_resubmitted_corpus_with_soft_hyphens_is_a_near_duplicate(capsys, tmp_path):
    """The issue's case: an accepted dataset resubmitted with U+00AD in every long word scored 0% overlap."""
    resubmitted = tmp_path / "resubmitted.jsonl"
    records = [json.loads(line) for line in GOOD.read_bytes().splitlines() if line.strip()]
    resubmitted.write_bytes(b"".join(json.dumps({**r, "text": hyphenate(r["text"])}).encode() + b"\n" for r in records))
    status, out, _ = run(capsys, "signals", resubmitted, "--corpus", GOOD)
    assert status == 0
    signals = json.loads(out)["signals"]
    assert signals["near_duplicate_rate_corpus"] >= 0.95, signals
    # Within one dataset too: each disguised record is a near-duplicate of its original.
    both = tmp_path / "both.jsonl"
    both.write_bytes(GOOD.read_bytes() + resubmitted.read_bytes())
    status, out, _ = run(capsys, "signals", both)
    assert json.loads(out)["signals"]["near_duplicate_rate_internal"] >= 0.45


def test_the_ignorable_list_is_unicodes_default_ignorable_code_points():
    """The code points `comparison_form` removes are exactly the Default_Ignorable_Code_Point set of the
    Unicode data the `regex` module ships (every code point checked)."""
    ignorable = regex.compile(r"\p{Default_Ignorable_Code_Point}")
    ours = [code for code in range(sys.maxunicode + 1) if DEFAULT_IGNORABLE.match(chr(code))]
    assert ours == [code for code in range(sys.maxunicode + 1) if ignorable.match(chr(code))]
    assert all(comparison_form(f"a{chr(code)}b") == "ab" for code in ours)


def test_the_comparison_form_is_idempotent_and_folds_width_and_case():
    for text in (TEXT, hyphenate(TEXT), "ＡＢＣ\u00adＤ", "Straße ﬁle\ufeff", "ǅ Ⅸ ㎒"):
        once = comparison_form(text)
        assert comparison_form(once) == once
    assert comparison_form("ＡＢＣ\u00adＤ  Straße\u200b") == "abcd strasse"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        # The nesting-depth kind: json recursed once per level and raised RecursionError, ending the command.
        pytest.param(b'{"text": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "nested more than 2 levels deep", id="deep"),
        pytest.param(b'{"text": "a", "source": {"x": {"y": 1}}}', "nested more than 2 levels deep", id="object"),
        pytest.param(b'{"text": "a\\ud800b"}', "field 'text' contains an unpaired surrogate (\\ud800)", id="surrogate"),
        pytest.param(b'{"text": "a\\udc00", "x\\ud800": "b"}', "unpaired surrogate (\\ud800)", id="surrogate key"),
        pytest.param(b'{"text": "NUL\x00byte"}', "not valid JSON (Invalid control character", id="raw NUL"),
        pytest.param(
            b'{"text": "x"} {"text": "y"}', "not valid JSON (extra data after the JSON value", id="two values"
        ),
        pytest.param(b'{"text": 1e999999}', "the number 1e999999 is out of a double's range", id="huge number"),
        pytest.param(b'{"text": ' + b"1" * 5000 + b"}", "not valid JSON (Exceeds the limit", id="5000 digits"),
    ],
)
def test_a_hostile_line_is_a_problem_on_its_line(capsys, tmp_path, line, reason):
    path = tmp_path / "data.jsonl"
    path.write_bytes(lines(TEXT) + line + b"\n" + lines("A last record, to show reading went on."))
    status, out, err = run(capsys, "validate", path)
    assert status == 1 and err == "", err
    problems = out.splitlines()[:-1]
    assert len(problems) == 1 and problems[0].startswith(f"{path}:2: "), out
    assert reason in problems[0], problems[0]


def test_an_escaped_nul_is_removed_like_any_control(capsys, tmp_path):
    path, normalised = tmp_path / "data.jsonl", tmp_path / "norm.jsonl"
    path.write_bytes(b'{"text": "NUL\\u0000 byte"}\n')
    status, out, _ = run(capsys, "normalise", path, "-o", normalised)
    assert status == 0, out
    assert json.loads(normalised.read_bytes())["text"] == "NUL byte"
