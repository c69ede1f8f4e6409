"""What the worker tests share around real services: the Redis database of a group of tests (one per group,
on the local server, shared with others: never restarted or flushed), and child processes (Celery
workers, the watcher) stopped by their own PIDs only."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from workers.tasks.app import app, point_app_at


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
