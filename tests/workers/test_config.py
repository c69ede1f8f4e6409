"""workers.config.env_number: the one parser of a number from the environment (timeouts, sizes, counts)."""

from __future__ import annotations

import pytest

from workers.chain.errors import InvalidRequest
from workers.config import env_number
from workers.storage import StorageError

NAME = "DEEPSHARD_TEST_NUMBER"

# (value, kind, minimum, expected): a number is what env_number returns, None that it refuses the value.
TABLE = [
    # unset or empty: the default (7 below)
    ("", float, None, 7),
    ("", int, 0, 7),
    # not a number
    ("soon", float, None, None),
    ("soon", int, None, None),
    ("1.5", int, None, None),  # a count is whole
    ("1e3", int, 0, None),
    ("0x10", int, 0, None),
    # zero: refused where the value must be positive, accepted where 0 is the minimum
    ("0", float, None, None),
    ("0", int, None, None),
    ("0", int, 0, 0),
    ("0.5", float, 1.0, None),
    # negative
    ("-3", float, None, None),
    ("-1", int, 0, None),
    ("-0.0", float, None, None),
    # not finite
    ("inf", float, None, None),
    ("-inf", float, None, None),
    ("nan", float, None, None),
    ("NaN", float, 1.0, None),
    ("1e309", float, None, None),  # overflows to inf
    # whitespace: around a number ignored (as int() and float() do), alone refused
    (" 60 ", float, None, 60.0),
    ("\t4\n", int, None, 4),
    ("   ", float, None, None),
    ("\n", int, 0, None),
    ("6 0", int, None, None),
    # huge: a finite float and an int within the interpreter's digit limit stand; past it, refused
    ("1e308", float, None, 1e308),
    ("9" * 30, int, 0, int("9" * 30)),
    ("9" * 5000, int, 0, None),
    # ordinary values and the minimum itself
    ("60", float, None, 60.0),
    ("2.5", float, 1.0, 2.5),
    ("1", float, 1.0, 1.0),
    ("1", int, None, 1),
]


@pytest.mark.parametrize(("value", "kind", "minimum", "expected"), TABLE)
def test_env_number_table(monkeypatch, value, kind, minimum, expected):
    monkeypatch.setenv(NAME, value)
    if expected is None:
        with pytest.raises(ValueError) as refused:
            env_number(NAME, kind(7), kind, unit="things", minimum=minimum)
        # One line with the variable, the value as given and what was expected.
        message = str(refused.value)
        assert message.startswith(f"{NAME} must be a ")
        assert message.endswith(f", not {value!r}")
        assert "number of things" in message
        assert ("whole number" in message) == (kind is int)
        assert ("positive" in message) == (minimum is None)
        assert ("at least" in message) == (minimum is not None)
        assert refused.value.__context__ is None  # no chained traceback from int() or float()
    else:
        got = env_number(NAME, kind(7), kind, unit="things", minimum=minimum)
        assert got == expected and type(got) is kind


def test_unset_gives_the_default(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)
    assert env_number(NAME, 2.5, float, unit="seconds") == 2.5
    assert env_number(NAME, 3, int, unit="deliveries") == 3


@pytest.mark.parametrize("error", [InvalidRequest, StorageError, ValueError])
def test_the_callers_error_type_is_raised(monkeypatch, error):
    monkeypatch.setenv(NAME, "-1")
    with pytest.raises(error, match=rf"^{NAME} must be a positive number of seconds, not '-1'$"):
        env_number(NAME, 1.0, float, unit="seconds", error=error)


def test_a_minimum_is_named_in_the_message(monkeypatch):
    monkeypatch.setenv(NAME, "0.5")
    with pytest.raises(ValueError, match=rf"^{NAME} must be a number of seconds, at least 1, not '0.5'$"):
        env_number(NAME, 60.0, float, unit="seconds", minimum=1.0)
    with pytest.raises(ValueError, match=rf"^{NAME} must be a whole number of bytes, at least 0, not '0.5'$"):
        env_number(NAME, 1024, int, unit="bytes", minimum=0)
