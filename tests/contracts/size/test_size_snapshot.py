"""Bytecode-size snapshot (beside the gas one): the deployed size of every production contract, from brownie's
build artifacts, against the committed `benchmarks/size/snapshot.json`. A contract fails when it is within
3 KB of EIP-170's 24,576-byte limit (room the next change to it will need) or more than 2% larger than its
snapshot. `DEEPSHARD_SIZE_UPDATE=1` rewrites the snapshot (`make sizes`), so a deliberate change shows up in
review as a diff of that file.
"""

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
BUILD = ROOT / "build" / "contracts"
SNAPSHOT = ROOT / "benchmarks" / "size" / "snapshot.json"
EIP170_LIMIT = 24_576
HEADROOM = 3_072
TOLERANCE = 1.02
# Test harnesses and interfaces are never deployed to a network.
NOT_DEPLOYED = ("contracts/test/", "contracts/interfaces/")


def deployed_sizes():
    """Deployed bytes of each contract (and linked library) under contracts/, by name."""
    artifacts = [json.loads(path.read_text()) for path in sorted(BUILD.glob("*.json"))]
    # A library is deployed on its own when a contract links it; one with no public function is inlined into its
    # callers. (The ABI cannot tell: it leaves out public library functions that take storage references.)
    linked = {
        library
        for artifact in artifacts
        for libraries in (artifact.get("linkReferences") or {}).values()
        for library in libraries
    }
    sizes = {}
    for artifact in artifacts:
        source = artifact.get("sourcePath", "")
        if not source.startswith("contracts/") or source.startswith(NOT_DEPLOYED):
            continue
        code = artifact.get("deployedBytecode", "").removeprefix("0x")
        if not code:
            continue  # abstract
        if artifact["type"] == "library" and artifact["contractName"] not in linked:
            continue
        # Link placeholders stand for 20-byte addresses: 40 characters either way.
        sizes[artifact["contractName"]] = len(code) // 2
    return sizes


def test_production_contracts_fit_with_room_and_did_not_grow():
    sizes = deployed_sizes()
    assert {"DataConsensus", "TrainingRounds", "FingerprintAggregation", "TrainerBonds", "StakeRegistry"} <= set(sizes)
    too_large = {name: size for name, size in sizes.items() if size > EIP170_LIMIT - HEADROOM}
    assert not too_large, f"within {HEADROOM} bytes of the {EIP170_LIMIT}-byte limit (bytes): {too_large}"

    if os.environ.get("DEEPSHARD_SIZE_UPDATE"):
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(json.dumps(sizes, indent=2, sort_keys=True) + "\n")
        return

    committed = json.loads(SNAPSHOT.read_text())
    missing = sorted(set(sizes) - set(committed))
    assert not missing, f"contracts missing from the size snapshot (run `make sizes`): {missing}"
    grown = {name: (committed[name], size) for name, size in sizes.items() if size > committed[name] * TOLERANCE}
    assert not grown, f"deployed size grew more than 2% over the snapshot (committed, now): {grown}"
