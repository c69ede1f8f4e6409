"""Fixtures of the content-task tests: real Celery workers against the real local Redis, on a database of their
own (the step runner's tests use the node tests' database and fixtures, tests/workers/conftest.py).

Each worker is `python -m celery -A workers.tasks.app worker` as a child process, with its own store in its
environment; it is stopped by its PID. The tests use Redis database `TEST_REDIS_DB` and, at the end, delete
exactly the keys that appeared there while they ran.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from services import ChildProcess, redis_test_database, redis_url_for, start_child

TEST_REDIS_DB = 12
TEST_REDIS_URL = redis_url_for(TEST_REDIS_DB)
WORKER_READY_TIMEOUT = 120.0  # a generous bound, not a target: it only ends a wait


@pytest.fixture(scope="session")
def redis_test_db():
    """A client of the test database; on exit, deletes the keys the tests created there."""
    with redis_test_database(TEST_REDIS_URL, "the task tests") as client:
        yield client


@pytest.fixture(scope="session")
def start_worker(redis_test_db, tmp_path_factory):
    """Factory: start_worker(queues, env) -> a ready ChildProcess; every worker started is stopped at the end."""
    workers: list[ChildProcess] = []

    def start(queues: str, env: dict[str, str], pool: str = "solo") -> ChildProcess:
        name = f"test-{uuid.uuid4().hex[:8]}@%h"
        log_path = tmp_path_factory.mktemp("worker") / "worker.log"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.tasks.app",
            "worker",
            f"--pool={pool}",
            "--concurrency=1",
            "-Q",
            queues,
            "-n",
            name,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ]
        worker = start_child(name, command, env, log_path, TEST_REDIS_URL, " ready.", WORKER_READY_TIMEOUT)
        workers.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def data_worker(start_worker, store_dir):
    """A prefork worker of the `data` queue on an embedded store in a temporary folder."""
    worker = start_worker("data", {"DEEPSHARD_STORE_DIR": str(store_dir)}, pool="prefork")
    yield worker
    worker.stop()
