"""The wait before a task's next step: bounded by the role's minimum and its configured maximum."""

import pytest

from workers.tasks.waiting import BlockWait

WAIT = BlockWait("DEEPSHARD_TEST_MAX_WAIT", min_wait=2.0)


def test_the_maximum_comes_from_the_environment_and_never_undercuts_the_minimum(monkeypatch):
    monkeypatch.delenv("DEEPSHARD_TEST_MAX_WAIT", raising=False)
    assert WAIT.max_wait() == 300.0
    monkeypatch.setenv("DEEPSHARD_TEST_MAX_WAIT", "30")
    assert WAIT.max_wait() == 30.0
    monkeypatch.setenv("DEEPSHARD_TEST_MAX_WAIT", "0.5")
    assert WAIT.max_wait() == 2.0


def test_a_malformed_maximum_is_named(monkeypatch):
    monkeypatch.setenv("DEEPSHARD_TEST_MAX_WAIT", "soon")
    with pytest.raises(ValueError, match="DEEPSHARD_TEST_MAX_WAIT must be a number of seconds, not 'soon'"):
        WAIT.max_wait()


def test_a_block_already_mined_needs_only_the_minimum_wait(treasury):
    assert WAIT.seconds_until(treasury, 0) == 2.0


def test_a_far_block_waits_within_the_bounds(treasury, monkeypatch):
    monkeypatch.setenv("DEEPSHARD_TEST_MAX_WAIT", "5")
    latest = treasury.w3.eth.block_number
    assert 2.0 <= WAIT.seconds_until(treasury, latest + 1000) <= 5.0
