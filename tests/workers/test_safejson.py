"""The bounded JSON parser every outside document goes through (workers.safejson)."""

import json
import subprocess
import sys

import pytest

from workers.safejson import FileTooLarge, JsonRejected, load_json_file, nesting_depth, parse_json, read_limited


def test_a_deep_document_is_refused_before_the_parser_recurses():
    bomb = '{"t":' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(JsonRejected, match="header of x: nested more than 32 levels"):
        parse_json(bomb, what="header of x")


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"s": "[[[[{{{{" * 50, "e": 'a\\"[[['})
    assert nesting_depth(text, limit=32) == 1
    assert parse_json(text, what="doc") == json.loads(text)


def test_the_depth_limit_is_inclusive():
    assert parse_json("[" * 32 + "]" * 32, what="doc", max_depth=32) is not None
    with pytest.raises(JsonRejected):
        parse_json("[" * 33 + "]" * 33, what="doc", max_depth=32)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff{}", "not UTF-8"),
        ('{"a": }', "not valid JSON"),
        (b"[" + b"1," * 100 + b"1]", "over the 64-byte limit"),
        ("1" * 5000, "digits"),  # Python refuses integer strings over 4,300 digits
    ],
)
def test_each_refusal_names_the_source_and_the_reason(data, reason):
    with pytest.raises(JsonRejected, match=f"line 3 of d.jsonl: .*{reason}"):
        parse_json(data, what="line 3 of d.jsonl", max_bytes=64 if isinstance(data, bytes) and len(data) > 64 else None)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ('{"a": 1, "a": 2}', "field 'a' appears more than once"),
        ('{"a": [NaN]}', "NaN is not valid JSON"),
        ("-Infinity", "-Infinity is not valid JSON"),
        ('{"loss": -1e400}', "the number -1e400 is out of a double's range"),
        ('{"a": {"b": "x\\udc00"}}', "field 'a' field 'b' contains an unpaired surrogate (\\udc00)"),
        ('["ok", "\\ud800"]', "the document item 1 contains an unpaired surrogate (\\ud800)"),
        ('{"\\ud800": 1}', "the document key contains an unpaired surrogate"),
        ('{"a": 1} {"b": 2}', "extra data after the JSON value at column 10"),
        ('{\n"a": }', "Expecting value at line 2 column 6"),
    ],
)
def test_strict_json_refuses_what_other_readers_read_differently(data, reason):
    with pytest.raises(JsonRejected) as caught:
        parse_json(data, what="doc")
    assert caught.value.what == "doc" and reason in caught.value.reason
    assert str(caught.value) == f"doc: {caught.value.reason}"


def test_a_surrogate_pair_and_json_whitespace_are_fine():
    assert parse_json(' \n{"e": "\\ud83d\\ude00"}\r\n', what="doc") == {"e": "\U0001f600"}
    with pytest.raises(JsonRejected, match="not valid JSON"):
        parse_json('\u00a0{"e": 1}', what="doc")  # a no-break space is not JSON whitespace


def test_a_mebibyte_of_unterminated_escaped_quotes_is_scanned_once():
    # Were the string's closing quote required, every escaped quote would start a scan to the end of the text:
    # quadratic, hours for this line. Run apart with a generous bound, so a regression hangs no test run.
    script = (
        "from workers.safejson import JsonRejected, nesting_depth, parse_json\n"
        "text = '\"' + '\\\\\"' * 500_000 + '[' * 40\n"
        "assert nesting_depth(text, limit=32) == 0\n"
        "try:\n"
        "    parse_json(text, what='line 1', max_bytes=2**20)\n"
        "except JsonRejected as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.startswith("line 1: not valid JSON (Unterminated string")


def test_files_are_read_no_further_than_their_limit(tmp_path):
    """`read_limited` stops one byte past the limit: an endless file (/dev/zero) is refused at once instead of
    being read whole first (`verify-response /dev/zero` never ended before)."""
    with pytest.raises(FileTooLarge, match="the response /dev/zero is over 1,024 bytes"):
        read_limited("/dev/zero", what="the response", max_bytes=1024)
    with pytest.raises(JsonRejected, match="^the response: over the 1,024-byte limit$"):
        load_json_file("/dev/zero", what="the response", max_bytes=1024)
    exact = tmp_path / "exact.json"
    exact.write_bytes(b"[" + b" " * 1022 + b"]")
    assert read_limited(exact, what="the file", max_bytes=1024) == exact.read_bytes()
    assert load_json_file(exact, what="the file", max_bytes=1024) == []
    with pytest.raises(FileNotFoundError):
        read_limited(tmp_path / "absent", what="the file", max_bytes=1024)
