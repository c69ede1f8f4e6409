"""A throwaway real IPFS node for tests: js-ipfs (npm `ipfs`), the only IPFS daemon installable offline here.

`start_js_ipfs()` makes a fresh repo in a temporary directory (the `test` profile, every address on
127.0.0.1, no bootstrap peers), starts `jsipfs daemon --offline` and waits until the RPC API answers.
Ports are chosen by the OS (port 0) and the API address is read back from the repo's `api` file, so
parallel test runs never race for a port. `stop()` ends exactly that process, by its PID.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60.0
LOOPBACK_ANY_PORT = "/ip4/127.0.0.1/tcp/0"


def sample_bytes(size: int, seed: int = 0) -> bytes:
    """Pseudo-random test content, the same for the same (size, seed) on every machine."""
    return random.Random(f"deepshard-storage-{seed}-{size}").randbytes(size)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (the OS picks it): an unreachable node for tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_jsipfs() -> str:
    """The `jsipfs` executable from the project's node_modules/.bin, else from PATH."""
    local = PROJECT_ROOT / "node_modules" / ".bin" / "jsipfs"
    if local.exists():
        return str(local)
    found = shutil.which("jsipfs")
    if found is None:
        raise FileNotFoundError("jsipfs not found in node_modules/.bin or PATH: run `make setup` (npm install)")
    return found


def multiaddr_to_url(multiaddr: str) -> str:
    """/ip4/127.0.0.1/tcp/5001/http -> http://127.0.0.1:5001 (the only form js-ipfs writes)."""
    parts = multiaddr.strip().split("/")
    if len(parts) < 5 or parts[1] not in ("ip4", "dns", "dns4") or parts[3] != "tcp":
        raise ValueError(f"unexpected API multiaddr {multiaddr!r}")
    return f"http://{parts[2]}:{parts[4]}"


@dataclass
class JsIpfsNode:
    """A running js-ipfs daemon; use as a context manager or call `stop()`."""

    repo: Path
    api: str  # multiaddr of the RPC API, the form DEEPSHARD_IPFS_API takes
    process: subprocess.Popen = field(repr=False)
    _owned_dir: Path | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return multiaddr_to_url(self.api)

    def log(self) -> str:
        try:
            return (self.repo.parent / "daemon.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Ends this daemon's process (and only it), escalating to SIGKILL; removes a repo it created."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)

    def __enter__(self) -> JsIpfsNode:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _configure(repo: Path) -> None:
    config_path = repo / "config"
    config = json.loads(config_path.read_text())
    addresses = config.setdefault("Addresses", {})
    addresses["API"] = LOOPBACK_ANY_PORT
    addresses["Gateway"] = LOOPBACK_ANY_PORT
    addresses["RPC"] = LOOPBACK_ANY_PORT  # js-ipfs' gRPC websocket; its default 5003 would collide
    addresses["Swarm"] = [LOOPBACK_ANY_PORT]
    config["Bootstrap"] = []
    config.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
    config_path.write_text(json.dumps(config, indent=2))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{url}/api/v0/id", method="POST"), timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_js_ipfs(*, startup_timeout: float = STARTUP_TIMEOUT) -> JsIpfsNode:
    """Starts an offline js-ipfs daemon on a fresh repo; raises RuntimeError if it is not ready in time."""
    executable = find_jsipfs()
    workdir = Path(tempfile.mkdtemp(prefix="deepshard-ipfs-"))
    repo = workdir / "repo"
    env = {**os.environ, "IPFS_PATH": str(repo)}
    try:
        subprocess.run(
            [executable, "init", "--profile", "test"],
            env=env,
            check=True,
            timeout=startup_timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _configure(repo)
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(f"jsipfs init failed: {getattr(exc, 'stderr', None) or exc}") from None
    with open(workdir / "daemon.log", "wb") as log:
        process = subprocess.Popen(
            [executable, "daemon", "--offline"], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    node = JsIpfsNode(repo, api="", process=process, _owned_dir=workdir)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_text = node.log()
            node.stop()
            raise RuntimeError(f"jsipfs daemon exited with {process.returncode}:\n{log_text[-2000:]}")
        api_file = repo / "api"
        if api_file.exists():
            api = api_file.read_text().strip()
            if api and _answers(multiaddr_to_url(api)):
                node.api = api
                return node
        time.sleep(0.2)
    log_text = node.log()
    node.stop()
    raise RuntimeError(f"jsipfs daemon not ready within {startup_timeout:g} s:\n{log_text[-2000:]}")
