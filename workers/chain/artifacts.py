"""Compiled contract artifacts (ABI and bytecode) from brownie's build folder.

`make setup` compiles contracts/ into build/contracts/<Name>.json (brownie's format: "abi", "bytecode",
"deployedBytecode", "linkReferences", ...). Workers read those files directly so that they run without brownie's
runtime. A contract that calls external libraries (TrainingRounds calls FingerprintAggregation and TrainerBonds) is
compiled with a placeholder where each library's address goes; `Artifact.link` writes the deployed addresses in.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from eth_utils import is_address, to_checksum_address

from ..safejson import load_json_file
from .errors import ArtifactMissing, InvalidRequest

PROJECT_ROOT_ENV = "DEEPSHARD_PROJECT_ROOT"
ARTIFACTS_SUBDIR = Path("build") / "contracts"
# An artifact carries the compiler's AST, nested as deep as the source (32 levels for FingerprintAggregation):
# a generous bound, still far below where Python's json would recurse out.
ARTIFACT_MAX_DEPTH = 256
#: The largest compiled artifact is ~3 MB (sources and ASTs included).
MAX_ARTIFACT_BYTES = 64 << 20


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
    """What the client needs of one compiled contract.

    `creation_code` is 0x-prefixed (empty for interfaces) and, while `libraries` is not empty, holds a 20-byte
    placeholder at each offset listed there (library name -> byte offsets into the creation code).
    """

    name: str
    abi: list[dict[str, Any]] = field(repr=False)
    creation_code: str = field(repr=False)
    path: Path
    libraries: Mapping[str, tuple[int, ...]] = field(default_factory=dict, repr=False)

    @property
    def bytecode(self) -> str:
        """The creation code, ready to deploy; `ArtifactMissing` while a library is still unlinked."""
        if self.libraries:
            raise ArtifactMissing(
                f"{self.name} calls the external libraries {', '.join(sorted(self.libraries))}: deploy them and "
                "link their addresses with Artifact.link (workers.chain.deploy does both)"
            )
        return self.creation_code

    def link(self, addresses: Mapping[str, str]) -> Artifact:
        """This artifact with each library's deployed address (`addresses`: library name -> address) written over
        its placeholders. Raises `InvalidRequest` if a library it calls has no address, or one is not an address."""
        missing = sorted(set(self.libraries) - set(addresses))
        if missing:
            raise InvalidRequest(f"{self.name} needs the address of {', '.join(missing)} to be linked")
        code = self.creation_code
        for library, offsets in self.libraries.items():
            address = addresses[library]
            if not is_address(address):
                raise InvalidRequest(f"{address!r} (for {library}) is not an address")
            hex_address = to_checksum_address(address)[2:].lower()
            for offset in offsets:
                start = 2 + 2 * offset  # past "0x", two hex digits a byte
                code = code[:start] + hex_address + code[start + 40 :]
        return replace(self, creation_code=code, libraries={})


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
        data = load_json_file(path, what="its JSON", max_bytes=MAX_ARTIFACT_BYTES, max_depth=ARTIFACT_MAX_DEPTH)
        abi, bytecode = data["abi"], data.get("bytecode") or ""
        libraries = {
            library: tuple(int(reference["start"]) for reference in references)
            for by_library in (data.get("linkReferences") or {}).values()
            for library, references in by_library.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArtifactMissing(f"artifact {path} is unreadable ({exc}): run `make setup`") from exc
    if bytecode and not bytecode.startswith("0x"):
        bytecode = "0x" + bytecode
    return Artifact(name=name, abi=abi, creation_code=bytecode, path=path, libraries=libraries)


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
