"""Fixtures of the training-round orchestration tests: a network of their own on a local anvil, Redis
database 14, and child processes (Celery workers, the watcher) stopped by PID.

Redis: the tests use `TEST_REDIS_DB` of the local server (shared with others: it is never restarted or
flushed) and, at the end, delete exactly the keys that appeared there while they ran.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from roundkit import TEST_REDIS_URL, WORKER_READY_TIMEOUT, RoundsNet, deploy_rounds_net
from services import ChildProcess, redis_test_database
from workers.chain.artifacts import project_root
from workers.chain.localnode import start_anvil
from workers.tasks.app import REDIS_URL_ENV


@pytest.fixture(scope="module")
def rounds_anvil():
    node = start_anvil()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def net(rounds_anvil, tmp_path_factory) -> RoundsNet:
    return deploy_rounds_net(rounds_anvil.url, tmp_path_factory.mktemp("rounds"))


# ---------------------------------------------------------------- Redis and Celery workers

@pytest.fixture(scope="session")
def redis_db():
    """A client of the test database; on exit, deletes the keys the tests created there."""
    with redis_test_database(TEST_REDIS_URL, "the round tests") as client:
        yield client


@pytest.fixture
def redis_clean(redis_db):
    """The test database, from which the keys this test created are deleted when it ends."""
    existing = set(redis_db.keys("*"))
    try:
        yield redis_db
    finally:
        created = set(redis_db.keys("*")) - existing
        if created:
            redis_db.delete(*created)


@pytest.fixture
def spawn(redis_clean, tmp_path_factory):
    """Factory: spawn(command, env, ready=marker) -> a ChildProcess; all are stopped (by PID) when the test ends,
    before its Redis keys are deleted."""
    started: list[ChildProcess] = []

    def start(command: list[str], env: dict[str, str], ready: str | None = None, name: str = "proc") -> ChildProcess:
        log_path = tmp_path_factory.mktemp(name) / f"{name}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("DEEPSHARD_")}
        environment.update({REDIS_URL_ENV: TEST_REDIS_URL, "PYTHONUNBUFFERED": "1", **env})
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, cwd=project_root(), env=environment, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        proc = ChildProcess(name, process, log_path)
        started.append(proc)
        if ready is not None:
            deadline = time.monotonic() + WORKER_READY_TIMEOUT
            while ready not in proc.log():
                if process.poll() is not None or time.monotonic() > deadline:
                    proc.stop()
                    pytest.fail(f"{name} did not start:\n{proc.log()[-3000:]}")
                time.sleep(0.1)
        return proc

    try:
        yield start
    finally:
        for proc in started:  # warm shutdowns in parallel, then wait for each
            if proc.process.poll() is None:
                proc.process.terminate()
        for proc in started:
            proc.stop()


