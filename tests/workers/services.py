"""What the worker tests share around real services: the Redis database of a group of tests (one per group,
on the local server, shared with others: never restarted or flushed), and child processes (Celery
workers, the watcher) stopped by their own PIDs only."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from workers.chain.artifacts import project_root
from workers.tasks.app import REDIS_URL_ENV, app, point_app_at

# The Redis server the tests use (a database of it per group): the local one unless DEEPSHARD_TEST_REDIS names
# another, so two checkouts can run their worker tests at once against two servers.
TEST_REDIS_SERVER = os.environ.get("DEEPSHARD_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/")


def redis_url_for(db: int) -> str:
    """The URL of database `db` (0-15) on the test Redis server."""
    return f"{TEST_REDIS_SERVER}/{db}"


@contextmanager
def redis_test_database(url: str, who: str, *, point_app: bool = True) -> Iterator[redis.Redis]:
    """A client of the database at `url`; on exit, exactly the keys that appeared meanwhile are deleted.
    With `point_app`, this process's Celery app (the one `.delay()` uses) points at it meanwhile."""
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"{who} need the local Redis at {url} ({exc})")
    existing = set(client.keys("*"))
    previous = app.conf.broker_url
    if point_app:
        point_app_at(url)
    try:
        yield client
    finally:
        if point_app:
            point_app_at(previous)
        created = set(client.keys("*")) - existing
        if created:
            client.delete(*created)
        client.close()


@dataclass
class ChildProcess:
    """A child process of the tests (a worker, the watcher), stopped by its PID only."""

    name: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def kill(self) -> None:
        """SIGKILL this process and its pool children (by PID): no warm shutdown, nothing acknowledged."""
        children = self.children()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for pid in children:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def start_child(
    name: str,
    command: list[str],
    env: dict[str, str],
    log_path: Path,
    redis_url: str,
    ready: str | None,
    timeout: float,
) -> ChildProcess:
    """Starts `command` from the repository root with the environment minus DEEPSHARD_* plus `env`, on the Redis at
    `redis_url`, its output in `log_path`; with `ready`, waits up to `timeout` s for that marker in its log (the
    test fails with the log's tail if it exits or times out first)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEEPSHARD_")}
    environment.update({REDIS_URL_ENV: redis_url, "PYTHONUNBUFFERED": "1", **env})
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=project_root(), env=environment, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    child = ChildProcess(name, process, log_path)
    if ready is not None:
        deadline = time.monotonic() + timeout
        while ready not in child.log():
            if process.poll() is not None or time.monotonic() > deadline:
                child.stop()
                pytest.fail(f"{name} did not start:\n{child.log()[-3000:]}")
            time.sleep(0.1)
    return child


#: The bound of the "fails at once / within its timeout, does not hang" checks, in seconds: far above any delay
#: a loaded machine adds to a refused connection or a local lookup, far below a hang or a retry loop. Tests never
#: assert a speed (a timing target belongs in benchmarks/, as a ratio against a baseline run side by side).
NO_HANG_SECONDS = 60.0
