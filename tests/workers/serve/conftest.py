"""Fixtures of the inference node's tests: one real `deepshard serve --dev --model tiny` in a child process on a
free port (stopped by its PID), the real `openai` client pointed at it, and the tiny model in this process for
the proof checks.

The server runs with a queue of ONE request, so the tests can fill it deterministically: a request whose body
is still being sent holds its slot (workers.serve.app.Admission).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servekit import API_KEY, ENV_API_KEYS, MAX_BODY_BYTES, Server, start_node

from workers.chain.localnode import free_port
from workers.ml.models import load_base_model
from workers.serve.engine import Engine, torch_threads


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    port = free_port()
    options = ["--queue-size", "1", "--api-key", API_KEY, "--max-body-bytes", str(MAX_BODY_BYTES), "--threads", "1"]
    env = {"DEEPSHARD_API_KEYS": " , ".join(ENV_API_KEYS)}
    child = start_node("inference node", port, options, tmp_path_factory.mktemp("serve"), env)
    try:
        yield Server(f"http://127.0.0.1:{port}", port, child)
    finally:
        child.stop()


@pytest.fixture(scope="session")
def tiny_engine() -> Iterator[Engine]:
    # One intra-op thread: the suite shares two cores with the server child (tests that compare thread counts
    # set their own with workers.serve.engine.torch_threads).
    with torch_threads(1):
        yield Engine(load_base_model("tiny", "cpu"))
