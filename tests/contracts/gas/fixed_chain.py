"""Runs a command (`brownie test tests/contracts/gas --network development`) against an anvil whose block
hashes are the same on every run, so that the gas snapshot is exact.

Draws (panels, evaluators, audits) are seeded by block hashes, and how much gas a draw costs depends on what it
draws (redraws on collisions, zero or non-zero slots). Anvil's hashes move with wall-clock timestamps: here the
genesis timestamp is fixed (`--timestamp`) and every later block is the previous one plus a fixed interval
(`anvil_setBlockTimestampInterval`), so the same transactions give the same hashes. Brownie attaches to a node
already listening on the network's port instead of launching its own; this process stops the node it started,
by PID.

Usage: python -m tests.contracts.gas.fixed_chain COMMAND...   (exits with COMMAND's status)
"""

import json
import subprocess
import sys
import time
import urllib.request

PORT = 8545  # brownie's `development` network
GENESIS_TIMESTAMP = 1_767_225_600  # 2026-01-01T00:00:00Z
BLOCK_INTERVAL_S = 12
STARTUP_TIMEOUT_S = 30.0


def rpc(method: str, params: list) -> object:
    """One JSON-RPC call to the local node; raises OSError when it does not answer, RuntimeError on an error."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


def main(command: list[str]) -> int:
    try:
        rpc("eth_chainId", [])
    except OSError:
        pass
    else:
        print(f"fixed_chain: a node already listens on port {PORT}; stop it first", file=sys.stderr)
        return 2
    # The flags of brownie's `development` network (see ~/.brownie/network-config.yaml), plus the fixed genesis.
    node = subprocess.Popen(
        [
            "anvil",
            "--quiet",
            "--port",
            str(PORT),
            "--gas-limit",
            "12000000",
            "--accounts",
            "10",
            "--block-base-fee-per-gas",
            "0",
            "--timestamp",
            str(GENESIS_TIMESTAMP),
        ]
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                rpc("eth_chainId", [])
                break
            except OSError:
                if node.poll() is not None or time.monotonic() > deadline:
                    print(f"fixed_chain: anvil did not start on port {PORT}", file=sys.stderr)
                    return 2
                time.sleep(0.2)
        rpc("anvil_setBlockTimestampInterval", [BLOCK_INTERVAL_S])
        return subprocess.call(command)
    finally:
        if node.poll() is None:
            node.terminate()
            node.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
