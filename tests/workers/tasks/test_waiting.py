"""The wait before a task's next step: bounded by the role's minimum and its configured maximum."""

import pytest

from workers.chain import ChainClient
from workers.chain.localnode import start_anvil
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


@pytest.fixture(scope="module")
def three_second_chain():
    """A chain of its own whose last 200 blocks came 3 s apart."""
    with start_anvil() as node:
        chain = ChainClient(node.url)
        chain.w3.provider.make_request("anvil_mine", [hex(200), hex(3)])
        yield chain


def test_a_block_already_mined_needs_only_the_minimum_wait(three_second_chain):
    assert WAIT.seconds_until(three_second_chain, 0) == 2.0


def test_the_wait_follows_the_chains_block_time(three_second_chain, monkeypatch):
    monkeypatch.delenv("DEEPSHARD_TEST_MAX_WAIT", raising=False)
    latest = three_second_chain.w3.eth.block_number
    assert WAIT.seconds_until(three_second_chain, latest + 10) == pytest.approx(30.0, abs=0.01)
    assert WAIT.seconds_until(three_second_chain, latest + 1) == pytest.approx(3.0, abs=0.01)
    monkeypatch.setenv("DEEPSHARD_TEST_MAX_WAIT", "20")
    assert WAIT.seconds_until(three_second_chain, latest + 10) == 20.0  # capped
