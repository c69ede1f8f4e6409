"""Validation names the line and the reason of every problem, streams, and respects its limits."""

import json

import pytest

from workers.data import DEFAULT_LIMITS, Limits, validate
from workers.data.records import KiB, MiB


def problems(report):
    return [(p.line, p.reason) for p in report.problems]


def only_problem(report):
    assert not report.ok and report.problem_count == 1, problems(report)
    return report.problems[0].line, report.problems[0].reason


GOOD = {"text": "Water boils at 100 degrees Celsius at sea level."}


def test_valid_file_has_manifest_and_no_problems(jsonl):
    report = validate(
        jsonl(GOOD, {"text": "The Moon orbits Earth.", "source": "x", "license": "CC0-1.0", "lang": "en"})
    )
    assert report.ok and report.problems == [] and report.manifest.records == 2
    assert report.summary().startswith("valid: 2 records")


def test_invalid_utf8_names_line_and_byte(jsonl):
    line, reason = only_problem(validate(jsonl(GOOD, b'{"text": "caf\xe9"}')))
    assert line == 2 and "not valid UTF-8" in reason and "0xe9" in reason and "byte 14" in reason


def test_truncated_utf8_sequence(jsonl):
    line, reason = only_problem(validate(jsonl(GOOD, GOOD | {"text": "x"}, b'{"text": "\xe2\x82"}')))
    assert line == 3 and "not valid UTF-8" in reason


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (b'{"text": "no closing brace"', "not valid JSON"),
        (b'{"text": "a",}', "not valid JSON"),
        (b"text: plain words", "not valid JSON"),
        (b'{"text": "a"} {"text": "b"}', "extra data"),
        (b'{"text": "a", "source": NaN}', "NaN is not valid JSON"),
        (b'{"text": "raw\ttab"}', "not valid JSON"),  # JSON forbids unescaped control characters
    ],
)
def test_broken_json(jsonl, raw, fragment):
    line, reason = only_problem(validate(jsonl(GOOD | {"text": "first"}, raw)))
    assert line == 2 and fragment in reason, reason


@pytest.mark.parametrize(
    "value, kind", [([GOOD], "an array"), ("text", "a string"), (3, "a number"), (None, "null"), (True, "a boolean")]
)
def test_record_must_be_an_object(jsonl, value, kind):
    line, reason = only_problem(validate(jsonl(GOOD, json.dumps(value))))
    assert (line, reason) == (2, f"a record must be a JSON object, not {kind}")


def test_missing_text(jsonl):
    line, reason = only_problem(validate(jsonl(GOOD, {"source": "https://example.org"})))
    assert (line, reason) == (2, "missing field 'text'")


@pytest.mark.parametrize(
    "text",
    # the last two: nothing visible, only default-ignorable code points (zero-width space, soft hyphen, joiner, BOM)
    ["", "   ", "\t\r\n \u00a0\u3000", "\u0000\u0007", "\u200b" * 50, "\u00ad \u200d\ufeff\n\u2060"],
)
def test_empty_text(jsonl, text):
    line, reason = only_problem(validate(jsonl(GOOD, {"text": text})))
    assert line == 2 and reason.startswith("field 'text' is empty")


@pytest.mark.parametrize(
    "record, field, kind",
    [
        ({"text": 42}, "text", "a number"),
        ({"text": ["a"]}, "text", "an array"),
        ({"text": "ok", "source": {"url": "x"}}, "source", "an object"),
        ({"text": "ok", "license": None}, "license", "null"),
        ({"text": "ok", "lang": False}, "lang", "a boolean"),
    ],
)
def test_wrong_field_types(jsonl, record, field, kind):
    line, reason = only_problem(validate(jsonl(GOOD, record)))
    assert (line, reason) == (2, f"field '{field}' must be a string, not {kind}")


def test_every_problem_of_a_line_is_reported(jsonl):
    report = validate(jsonl(GOOD, {"source": 1, "extra": "x"}))
    assert problems(report) == [
        (2, "unknown field 'extra' (allowed: text, source, license, lang)"),
        (2, "missing field 'text'"),
        (2, "field 'source' must be a string, not a number"),
    ]


def test_unknown_fields_are_rejected(jsonl):
    line, reason = only_problem(validate(jsonl(GOOD, {"text": "b", "txt": "typo", "id": 7})))
    assert line == 2 and reason.startswith("unknown fields 'id', 'txt'")


def test_repeated_key_is_rejected(jsonl):
    line, reason = only_problem(validate(jsonl(GOOD, b'{"text": "a", "text": "b"}')))
    assert (line, reason) == (2, "field 'text' appears more than once")


def test_unpaired_surrogate_is_rejected(jsonl):
    line, reason = only_problem(validate(jsonl(GOOD, b'{"text": "half \\ud800 a pair"}')))
    assert line == 2 and "unpaired surrogate" in reason and "\\ud800" in reason
    assert validate(jsonl(b'{"text": "a real pair \\ud83d\\ude00"}')).ok  # an escaped astral character is fine


def test_bad_language_tag(jsonl):
    line, reason = only_problem(validate(jsonl(GOOD, {"text": "b", "lang": "English"})))
    assert line == 2 and "BCP 47" in reason


def test_duplicate_names_both_lines(jsonl):
    report = validate(
        jsonl(
            GOOD,
            {"text": "other"},
            {"text": "  Water boils at 100 degrees\tCelsius at sea level.\r\n", "source": "metadata do not matter"},
        )
    )
    line, reason = only_problem(report)
    assert (line, reason) == (3, "duplicate of line 1 (the same text after normalisation)")


def test_nfc_variants_are_duplicates(jsonl):
    line, reason = only_problem(validate(jsonl({"text": "caf\u00e9"}, {"text": "cafe\u0301"})))
    assert (line, reason) == (2, "duplicate of line 1 (the same text after normalisation)")


def test_oversized_record(jsonl):
    limits = Limits(max_record_bytes=1 * KiB)
    big = {"text": "x" * 2000}
    report = validate(jsonl(GOOD, big, {"text": "after the big one"}), limits)
    assert problems(report) == [(2, "record is over the size limit of 1 KiB")]
    # exactly at the limit is fine, with or without CRLF
    exact = json.dumps({"text": "y" * (1024 - 12)}).encode()
    assert len(exact) == 1024
    assert validate(exact + b"\r\n" + exact.replace(b"y", b"z") + b"\n", limits).ok


def test_oversized_record_default_limit_is_64_kib(jsonl):
    assert DEFAULT_LIMITS.max_record_bytes == 64 * KiB
    line, reason = only_problem(validate(jsonl(GOOD, {"text": "word " * 14000})))
    assert (line, reason) == (2, "record is over the size limit of 64 KiB")


def test_too_many_records(jsonl):
    records = [{"text": f"record number {i}"} for i in range(6)]
    report = validate(jsonl(*records), Limits(max_records=5))
    line, reason = only_problem(report)
    assert line == 6 and reason == "more than 5 records (the limit); stopped reading"
    assert report.stopped_early
    assert validate(jsonl(*records[:5]), Limits(max_records=5)).ok


def test_oversized_file(jsonl):
    records = [{"text": f"record number {i} " + "padding " * 10} for i in range(100)]
    data = jsonl(*records)
    first_ten = len(jsonl(*records[:10]))
    report = validate(data, Limits(max_file_bytes=first_ten + 5))
    line, reason = only_problem(report)
    assert line == 11 and reason.startswith("the file is over the size limit") and report.stopped_early
    assert validate(data, Limits(max_file_bytes=len(data))).ok


def test_empty_file_and_blank_lines(jsonl):
    assert problems(validate(b"")) == [(1, "the file holds no records")]
    assert problems(validate(b"\n  \n\r\n")) == [(3, "the file holds no records")]
    report = validate(b"\n" + jsonl(GOOD) + b"   \n\n" + jsonl({"text": "b"}))
    assert report.ok and report.manifest.records == 2


def test_bom_crlf_and_missing_final_newline(jsonl):
    data = b"\xef\xbb\xbf" + jsonl(GOOD).replace(b"\n", b"\r\n") + b'{"text": "last line, no newline"}'
    assert validate(data).ok


def test_all_problems_reported_and_capped(jsonl):
    lines = [GOOD] + [b"not json"] * 120
    report = validate(jsonl(*lines))
    assert report.problem_count == 120 and len(report.problems) == DEFAULT_LIMITS.max_problems == 50
    assert [p.line for p in report.problems] == list(range(2, 52))
    assert "first 50 listed" in report.summary()


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        Limits(max_records=0)


def test_reads_from_a_path(write, jsonl):
    assert validate(write(jsonl(GOOD))).ok
    assert validate(str(write(b"[]\n"))).problems[0].line == 1


def test_a_16_mib_dataset_at_the_limit_validates(write):
    # Worst case for normalisation: tabs, double spaces and non-ASCII in every record.
    line = json.dumps(
        {"text": "Caf\u00e9  with\tmilk, " + "word " * 30 + "{}", "source": "https://example.org/x", "lang": "en"},
        ensure_ascii=False,
    )
    count = (16 * MiB - 1024) // (len(line.encode()) + 8)
    data = "".join(line.replace("{}", str(i)) + "\n" for i in range(count)).encode()
    assert len(data) <= 16 * MiB
    path = write(data)
    report = validate(path)
    assert report.ok, report.problems[:3]
    assert report.manifest.records == count
