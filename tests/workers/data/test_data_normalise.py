"""Normalisation: the same content gives the same bytes, whatever its spelling; it is idempotent."""

import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.data import InvalidDataset, is_canonical, normalise, normalise_file, normalise_text, validate
from workers.data.records import canonical_lang, canonical_record_bytes


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("plain text", "plain text"),
        ("  leading and trailing  ", "leading and trailing"),
        ("tabs\tand  double   spaces", "tabs and double spaces"),
        ("no-break\u00a0space and\u2003em space and\u3000ideographic", "no-break space and em space and ideographic"),
        ("line one\r\nline two\rline three\nline four", "line one\nline two\nline three\nline four"),
        ("para one\n\n\n\npara two", "para one\n\npara two"),
        ("para one\n \t \n  para two  ", "para one\n\npara two"),
        ("\n\n  text between blank lines \n\n", "text between blank lines"),
        ("unicode\u2028line\u2029separators\x85nel\x0cff", "unicode\nline\nseparators\nnel\nff"),
        ("controls\x00 re\x07moved\x1b", "controls removed"),
        ("cafe\u0301", "caf\u00e9"),  # NFC composes
        ("e\x00\u0301", "\u00e9"),  # NFC runs after controls are gone
        ("\u212b", "\u00c5"),  # Angstrom sign is canonically A-ring
        ("\ufb01 ligature stays", "\ufb01 ligature stays"),  # NFC, not NFKC
    ],
)
def test_normalise_text(raw, expected):
    assert normalise_text(raw) == expected


def test_canonical_lang():
    assert [canonical_lang(t) for t in ("EN", "pt-br", "ZH-hant-TW", "es-419", "en-GB-oxendict")] == [
        "en",
        "pt-BR",
        "zh-Hant-TW",
        "es-419",
        "en-GB-oxendict",
    ]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_normalise_text_is_idempotent(text):
    once = normalise_text(text)
    assert normalise_text(once) == once
    assert unicodedata.is_normalized("NFC", once)
    assert "\r" not in once and "\t" not in once and "\n\n\n" not in once and "  " not in once
    assert once == once.strip()


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["text", "source", "license"]),
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
        min_size=1,
    )
)
def test_canonical_record_bytes_is_json_dumps(fields):
    expected = json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
    assert canonical_record_bytes(fields) == expected.encode("utf-8")


RECORDS = [
    {
        "text": "Caf\u00e9 culture began in the 17th century.\n\nCoffee houses spread across Europe.",
        "source": "https://example.org/coffee",
        "lang": "en",
    },
    {"text": "The boiling point of water is 100 \u00b0C at sea level.", "license": "CC0-1.0"},
]


def spelled_differently() -> bytes:
    """RECORDS with decomposed accents, odd whitespace, CRLF, reordered keys, escapes and a BOM."""
    first = {
        "lang": "EN",
        "source": " https://example.org/coffee ",
        "text": "  Cafe\u0301 culture\tbegan in the  17th century.\r\n \r\n\r\nCoffee houses spread across Europe.  ",
    }
    second = {
        "license": "CC0-1.0",
        "text": "The boiling\u00a0point of water is 100 \u00b0C at sea level.\n",
        "source": "",
    }
    lines = [json.dumps(first, ensure_ascii=True), "", json.dumps(second, ensure_ascii=False, indent=None)]
    return b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8")


def test_equal_content_gives_equal_bytes(jsonl):
    canonical = normalise(jsonl(*RECORDS))
    assert normalise(spelled_differently()) == canonical
    assert canonical.decode("utf-8").splitlines()[0] == (
        '{"lang":"en","source":"https://example.org/coffee",'
        '"text":"Caf\u00e9 culture began in the 17th century.\\n\\nCoffee houses spread across Europe."}'
    )
    assert canonical.endswith(b"\n") and canonical.count(b"\n") == 2


def test_normalise_is_idempotent(jsonl):
    once = normalise(spelled_differently())
    assert normalise(once) == once
    assert is_canonical(once)
    assert not is_canonical(spelled_differently())
    assert not is_canonical(b"[]\n")


def test_normalise_keeps_record_order(jsonl):
    records = [{"text": f"record {i}"} for i in (3, 1, 2)]
    assert normalise(jsonl(*records)) == b'{"text":"record 3"}\n{"text":"record 1"}\n{"text":"record 2"}\n'


def test_normalise_raises_with_the_report(jsonl):
    with pytest.raises(InvalidDataset) as caught:
        normalise(jsonl({"text": "ok"}, {"text": 1}))
    assert [(p.line, p.reason) for p in caught.value.report.problems] == [
        (2, "field 'text' must be a string, not a number")
    ]
    assert str(caught.value).startswith("invalid: 1 problem")


def test_normalise_file_streams_and_matches(write, tmp_path, jsonl):
    source = write(spelled_differently())
    out = tmp_path / "out.jsonl"
    manifest = normalise_file(source, out)
    assert out.read_bytes() == normalise(source)
    assert manifest == validate(source).manifest
    assert manifest.size_bytes == out.stat().st_size and manifest.records == 2
    # in place
    assert normalise_file(source, source) == manifest and source.read_bytes() == out.read_bytes()


def test_normalise_file_writes_nothing_for_an_invalid_dataset(write, tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(InvalidDataset):
        normalise_file(write(b'{"text": "a"}\n{"text": "a"}\n'), out)
    assert list(tmp_path.iterdir()) == [tmp_path / "data.jsonl"]  # no output, no temporary left behind
