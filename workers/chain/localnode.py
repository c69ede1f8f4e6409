"""Throwaway local chains (anvil, ganache) for the demo and the tests.

Each node runs on a free port as a child process, and `stop()` ends exactly that process (by its PID,
never by name: another anvil, e.g. brownie's on 8545, may belong to someone else).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from eth_account import Account

from ..safejson import parse_json
from .accounts import LocalSigner
from .artifacts import project_root
from .errors import NodeUnavailable

# Anvil's and Hardhat's default mnemonic. It is PUBLIC: every key derived from it is known to everyone.
# Use it only on throwaway local chains, never for anything holding value.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_executable(name: str) -> str:
    """`name` from node_modules/.bin of the project, else from PATH."""
    local = project_root() / "node_modules" / ".bin" / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found in node_modules/.bin or PATH: run `make setup`")
    return found


@dataclass
class LocalNode:
    """A running local chain; use as a context manager or call `stop()`."""

    kind: str
    port: int
    process: subprocess.Popen = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """Ends this node's process (and only it); escalates to SIGKILL if it ignores SIGTERM."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def __enter__(self) -> LocalNode:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def anvil_executable() -> str:
    """The native anvil binary of the npm package, else `anvil` from node_modules/.bin or PATH.

    node_modules/.bin/anvil is a Node wrapper that spawns the native binary as its child: stopping the
    wrapper's PID can orphan the real node, so we run the binary itself and own its PID.
    """
    native = sorted((project_root() / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil"))
    if native:
        return str(native[0])
    return find_executable("anvil")


def start_anvil(
    port: int | None = None, accounts: int = 10, extra_args: tuple[str, ...] = (), *, new_session: bool = False
) -> LocalNode:
    """Starts anvil (default dev mnemonic, 10,000 ETH per account) and waits until it answers. `new_session`:
    in a session of its own, so that it outlives this process and a Ctrl-C in its terminal (`deepshard devnet`)."""
    executable = anvil_executable()
    return _start(
        "anvil",
        port,
        lambda p: [
            executable,
            "--host",
            "127.0.0.1",
            "--port",
            str(p),
            "--accounts",
            str(accounts),
            "--silent",
            *extra_args,
        ],
        new_session,
    )


def start_ganache(port: int | None = None, accounts: int = 10, extra_args: tuple[str, ...] = ()) -> LocalNode:
    """Starts ganache 7 with the same dev mnemonic as anvil and waits until it answers."""
    executable = find_executable("ganache-cli")
    return _start(
        "ganache",
        port,
        lambda p: [
            executable,
            "--server.host",
            "127.0.0.1",
            "--server.port",
            str(p),
            "--wallet.mnemonic",
            DEV_MNEMONIC,
            "--wallet.totalAccounts",
            str(accounts),
            "--logging.quiet",
            *extra_args,
        ],
    )


def _start(kind: str, port: int | None, command: Callable[[int], list[str]], new_session: bool = False) -> LocalNode:
    # A free port can be taken between choosing and binding it: with an auto-chosen port, try again.
    attempts = 1 if port else 3
    for attempt in range(attempts):
        try:
            return _start_once(kind, port or free_port(), command, new_session)
        except NodeUnavailable:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _start_once(kind: str, port: int, command: Callable[[int], list[str]], new_session: bool) -> LocalNode:
    if _port_in_use(port):
        # Otherwise the node already there would answer our readiness probe and we would adopt it.
        raise NodeUnavailable(f"port {port} is already in use: cannot start {kind} there")
    # The node's output goes nowhere: a full, unread pipe would block it.
    process = subprocess.Popen(
        command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=new_session
    )
    node = LocalNode(kind, port, process)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise NodeUnavailable(f"{kind} exited with status {process.returncode} before answering on port {port}")
            if _answers(node.url):
                return node
            time.sleep(0.05)
        raise NodeUnavailable(f"{kind} did not answer on port {port} within {STARTUP_TIMEOUT:g} s")
    except BaseException:
        node.stop()  # also on Ctrl-C while waiting: never leave a half-started node behind
        raise


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _answers(url: str) -> bool:
    request = urllib.request.Request(
        url,
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            answer = parse_json(response.read(), what=f"answer of {url}")
            return isinstance(answer, dict) and "result" in answer
    except (urllib.error.URLError, OSError, ValueError):
        return False


def dev_account(index: int):
    """Dev account `index` (m/44'/60'/0'/0/index of DEV_MNEMONIC). Its key is public: dev chains only."""
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def dev_signer(index: int) -> LocalSigner:
    """Signer of dev account `index` (see `dev_account`)."""
    return LocalSigner(dev_account(index))
