"""What the inference node's tests share: the server child's settings and a handle on it (raw requests, its
queue's state, a request that holds a slot). A module of its own, not conftest, so tests can import it by name."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import openai
from services import ChildProcess, redis_url_for, start_child

from workers.ml.models import MODEL_CACHE_ENV

API_KEY = "test-key-serve"
#: More keys, from the environment as an operator would list them: spaces around the commas.
ENV_API_KEYS = ("env-key-alpha", "env-key-beta")
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


def start_node(name: str, port: int, options: list[str], log_dir, env: dict[str, str] | None = None) -> ChildProcess:
    """`deepshard serve --dev --model tiny --port PORT OPTIONS...` in a child process (its log in `log_dir`, `env`
    added to its environment), once it announces it serves; stop it with `.stop()` (by its PID)."""
    env = dict(env or {})
    if os.environ.get(MODEL_CACHE_ENV):
        env[MODEL_CACHE_ENV] = os.environ[MODEL_CACHE_ENV]
    command = [sys.executable, "-m", "workers.cli", "serve", "--dev", "--model", "tiny", "--port", str(port), *options]
    ready = f"serving {MODEL_ID}"
    return start_child(name, command, env, log_dir / "serve.log", redis_url_for(0), ready=ready, timeout=WAIT_SECONDS)
