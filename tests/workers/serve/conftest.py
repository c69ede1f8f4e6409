"""Fixtures of the inference node's tests: one real `deepshard serve --dev --model tiny` in a child process on a
free port (stopped by its PID), the real `openai` client pointed at it, and the tiny model in this process for
the proof checks.

The server runs with a queue of ONE request, so the tests can fill it deterministically: a request whose body
is still being sent holds its slot (workers.serve.app.Admission).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import openai
import pytest
from services import ChildProcess, redis_url_for, start_child

from workers.chain.localnode import free_port
from workers.ml.models import MODEL_CACHE_ENV, load_base_model
from workers.serve.engine import Engine, torch_threads

API_KEY = "test-key-serve"
MODEL_ID = "deepshard-v1"
MAX_BODY_BYTES = 65_536
#: Generous bound for conditions the tests wait on (a loaded 2-core machine): never a speed assertion.
WAIT_SECONDS = 120


@dataclass
class Server:
    url: str
    port: int
    child: ChildProcess

    def client(self, api_key: str = API_KEY) -> openai.OpenAI:
        # No retries: a 429 or 5xx must reach the test as it was sent.
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, timeout=WAIT_SECONDS)

    def raw(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
        """POST raw bytes; (status, parsed JSON body)."""
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def health(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/health", timeout=WAIT_SECONDS) as response:
            return json.loads(response.read())

    def wait_idle(self) -> None:
        """Waits until no request holds a queue slot (the condition, with a generous bound)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while self.health()["active"] != 0:
            assert time.monotonic() < deadline, f"the server still holds a request: {self.health()}"
            time.sleep(0.05)

    def hold_slot(self) -> socket.socket:
        """A connection that has sent its headers and half its body: it holds a queue slot until closed."""
        body = json.dumps({"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}]}).encode()
        sock = socket.create_connection(("127.0.0.1", self.port))
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body[: len(body) // 2])
        deadline = time.monotonic() + WAIT_SECONDS
        while self.health()["active"] != 1:
            assert time.monotonic() < deadline, "the half-sent request was never admitted"
            time.sleep(0.05)
        return sock


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[Server]:
    port = free_port()
    env = {MODEL_CACHE_ENV: os.environ[MODEL_CACHE_ENV]} if os.environ.get(MODEL_CACHE_ENV) else {}
    command = [sys.executable, "-m", "workers.cli", "serve", "--dev", "--model", "tiny", "--port", str(port)]
    command += ["--queue-size", "1", "--api-key", API_KEY, "--max-body-bytes", str(MAX_BODY_BYTES), "--threads", "1"]
    child = start_child(
        "inference node",
        command,
        env,
        tmp_path_factory.mktemp("serve") / "serve.log",
        redis_url_for(0),
        ready=f"serving {MODEL_ID}",
        timeout=WAIT_SECONDS,
    )
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
