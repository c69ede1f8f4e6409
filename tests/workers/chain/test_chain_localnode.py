"""Throwaway local nodes: never adopt someone else's node, and stop exactly the process started."""

import pytest

from workers.chain import NodeUnavailable
from workers.chain.localnode import start_anvil


def test_refuses_a_port_in_use(anvil):
    with pytest.raises(NodeUnavailable, match=f"port {anvil.port} is already in use"):
        start_anvil(port=anvil.port)


def test_stop_ends_the_started_process():
    node = start_anvil()
    process = node.process
    node.stop()
    assert process.poll() is not None
    node.stop()  # idempotent
