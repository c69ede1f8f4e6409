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
    """A chain of its own whose last 200 blocks came exactly 3 s apart. The timestamps are set, not left to
    the node's clock: under load `anvil_mine`'s interval alone once gave a block time of 3.01 s."""
    with start_anvil() as node:
        chain = ChainClient(node.url)
        genesis = chain.w3.eth.get_block("latest")["timestamp"]
        chain.w3.provider.make_request("anvil_setBlockTimestampInterval", [3])
        chain.w3.provider.make_request("evm_setNextBlockTimestamp", [genesis + 3])
        chain.w3.provider.make_request("anvil_mine", [hex(200)])
        blocks = [chain.w3.eth.get_block(number) for number in (1, 100, 200)]
        assert [block["timestamp"] - genesis for block in blocks] == [3, 300, 600]
        yield chain


def test_a_block_already_mined_needs_only_the_minimum_wait(three_second_chain):
    assert WAIT.seconds_until(three_second_chain, 0) == 2.0


def test_the_wait_follows_the_chains_block_time(three_second_chain, monkeypatch):
    monkeypatch.delenv("DEEPSHARD_TEST_MAX_WAIT", raising=False)
    latest = three_second_chain.w3.eth.block_number
    assert WAIT.seconds_until(three_second_chain, latest + 10) == 30.0
    assert WAIT.seconds_until(three_second_chain, latest + 1) == 3.0
    monkeypatch.setenv("DEEPSHARD_TEST_MAX_WAIT", "20")
    assert WAIT.seconds_until(three_second_chain, latest + 10) == 20.0  # capped
