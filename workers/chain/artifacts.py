"""Compiled contract artifacts (ABI and bytecode) from brownie's build folder.

`make setup` compiles contracts/ into build/contracts/<Name>.json (brownie's format: "abi", "bytecode",
"deployedBytecode", ...). Workers read those files directly so that they run without brownie's runtime.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArtifactMissing

PROJECT_ROOT_ENV = "DEEPSHARD_PROJECT_ROOT"
ARTIFACTS_SUBDIR = Path("build") / "contracts"


def project_root() -> Path:
    """The repository root: `$DEEPSHARD_PROJECT_ROOT`, else two levels above this package."""
    override = os.environ.get(PROJECT_ROOT_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parents[2]


def artifacts_dir() -> Path:
    return project_root() / ARTIFACTS_SUBDIR


def artifact_relpath(name: str) -> str:
    """Path of a contract's artifact relative to the project root, as recorded in deployment files."""
    return (ARTIFACTS_SUBDIR / f"{name}.json").as_posix()


@dataclass(frozen=True)
class Artifact:
    """What the client needs of one compiled contract."""

    name: str
    abi: list[dict[str, Any]] = field(repr=False)
    bytecode: str = field(repr=False)  # creation code, 0x-prefixed; empty for interfaces
    path: Path


def load_artifact(name: str) -> Artifact:
    """Loads build/contracts/<name>.json; raises `ArtifactMissing` (pointing at `make setup`) if absent."""
    return _load_artifact(artifacts_dir(), name)


@functools.cache
def _load_artifact(directory: Path, name: str) -> Artifact:
    # Cached per (directory, name): artifacts don't change while a process runs, and the CLI, the
    # client and the revert decoder all ask for the same few files.
    path = directory / f"{name}.json"
    if not path.is_file():
        raise ArtifactMissing(f"no compiled artifact for {name} at {path}: run `make setup`")
    try:
        data = json.loads(path.read_text())
        abi, bytecode = data["abi"], data.get("bytecode") or ""
    except (ValueError, KeyError) as exc:
        raise ArtifactMissing(f"artifact {path} is unreadable ({exc}): run `make setup`") from exc
    if bytecode and not bytecode.startswith("0x"):
        bytecode = "0x" + bytecode
    if "__" in bytecode:
        # Unlinked library placeholders: deploying this would fail in an obscure way.
        raise ArtifactMissing(f"artifact {name} needs library linking, which workers.chain does not do")
    return Artifact(name=name, abi=abi, bytecode=bytecode, path=path)


def error_abis() -> list[dict[str, Any]]:
    """Every custom-error ABI entry of every compiled contract, for decoding revert data.

    A revert can carry an error declared in another contract than the one called (the token's
    ERC20InsufficientAllowance bubbles up through the registry's SafeERC20), so we search them all.
    """
    return _error_abis(artifacts_dir())


@functools.cache
def _error_abis(directory: Path) -> list[dict[str, Any]]:
    if not directory.is_dir():
        raise ArtifactMissing(f"no compiled artifacts in {directory}: run `make setup`")
    entries: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        for entry in _load_artifact(directory, path.stem).abi:
            if entry.get("type") == "error":
                signature = _signature(entry)
                entries.setdefault(signature, entry)
    return list(entries.values())


def _signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(_canonical_type(i) for i in entry.get('inputs', []))})"


def _canonical_type(param: dict[str, Any]) -> str:
    """ABI type as it appears in a selector signature (tuples spelled out)."""
    kind = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind
