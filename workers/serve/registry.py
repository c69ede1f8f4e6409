"""Which weights a node may serve as version N of the ModelRegistry.

What identifies a version: version 1 (the genesis) records the genesis model's CID; every later version records the
CID of the LoRA delta that turned its parent into it, so a version's weights are fixed by its lineage of delta CIDs:
the base model with the deltas merged in order (what trainers and evaluators rebuild,
workers.tasks.training.base_version), and their `weights_hash` (workers.ml.models) is what the node announces.
Once a version's encrypted shards are published, the registry also records that hash (`publishShards`).

A version folder is what `deepshard model get VERSION --out DIR` (a rebuild from the lineage) or `deepshard weights
fetch VERSION -o DIR` (a bought copy) writes: a model folder with `deepshard-version.json`, `{"version": N,
"base_model": NAME, "lineage": [{"cid": delta CID, "round": R, ...}, ...], "weights_hash": "0x...", ...}`, the
lineage oldest first without the genesis. The folder's record is the folder's own claim, never evidence: editing
it costs nothing. The node refuses to start unless version N exists in the registry, the folder's record (when
there is one) names N, and the weights are bound to N by something outside the folder:
- when the registry records N's weights hash (its shards are published), the loaded weights hash to it, and a
  folder's loader files (config, tokenizer) are byte for byte those its shard manifest lists;
- otherwise, for version 1 (the genesis), they hash to the base model the node loads by name (the registry's
  genesis CID names the GGUF file it is built from, not a weights hash), and a folder's loader files are byte for
  byte those `save_pretrained` writes for that base model (`workers.ml.models.loader_file_bytes`);
- otherwise (an unpublished N > 1, whose only record on chain is its lineage of delta CIDs), the folder's delta CIDs
  equal the registry's and the node rebuilds N from that lineage itself (`workers.tasks.versions.fetch_version`,
  each delta checked against its CID: what `deepshard model get` does), the loaded weights hash to the rebuild and
  the folder's loader files are byte for byte the rebuild's.
  A node that cannot rebuild (no content store or spec book) refuses; `--dev` serves without any of these checks.
Without a folder only the genesis can be served, from the named base model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..chain import ChainClient, ChainError, InvalidRequest, registry
from ..ml.models import VERSION_FILE
from ..protocol.constants import GENESIS_VERSION
from ..safejson import FileTooLarge, JsonRejected, load_json_file, read_limited
from ..shards.manifest import PUBLIC_FILE, PublicFile
from ..storage import ContentStore

MAX_VERSION_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class BuiltVersion:
    """A version the node built itself (the base model, or a rebuild from the lineage): its weights hash and its
    loader files (`workers.ml.models.loader_file_bytes`: file name to bytes), what a folder must match."""

    weights_hash: str
    loader_files: Mapping[str, bytes]


class VersionRefused(ChainError):
    """Weights the node must not serve as the requested version (printed as one `error:` line)."""


@dataclass(frozen=True)
class VersionRecord:
    """A version folder's claim: which registry version it is, built from which base and deltas (their CIDs,
    oldest first, the genesis left out), and its weights hash."""

    version: int
    base_model: str
    delta_cids: list[str]
    weights_hash: str


def read_version_record(folder: Path) -> VersionRecord:
    """The folder's `deepshard-version.json`; VersionRefused when missing or malformed."""
    path = Path(folder) / VERSION_FILE
    try:
        data: Any = load_json_file(path, what=str(path), max_bytes=MAX_VERSION_FILE_BYTES)
    except OSError as exc:
        raise VersionRefused(f"{path} cannot be read ({exc.strerror})") from None
    except JsonRejected as exc:
        raise VersionRefused(str(exc)) from None
    try:
        record = VersionRecord(
            version=int(data["version"]),
            base_model=str(data["base_model"]),
            delta_cids=[str(step["cid"]) for step in data["lineage"]],
            weights_hash=str(data["weights_hash"]),
        )
    except (KeyError, TypeError, ValueError):
        raise VersionRefused(
            f"{path} needs version (int), base_model, lineage (a list of {{cid, ...}}) and weights_hash"
        ) from None
    return record


def registered_deltas(chain: ChainClient, version: int) -> list[str]:
    """The delta CIDs that make `version` from the genesis, oldest first, read from the ModelRegistry;
    VersionRefused if the registry has no such version."""
    models = chain.contract("ModelRegistry")
    try:
        registry.check_registered(models, version)
    except InvalidRequest as exc:
        raise VersionRefused(str(exc)) from None
    return [cid for cid, _ in registry.base_deltas(models, version)]


def check_version(
    chain: ChainClient,
    version: int,
    weights_hash: str,
    record: VersionRecord | None,
    *,
    base: Callable[[], BuiltVersion] | None = None,
    rebuild: Callable[[int], BuiltVersion] | None = None,
    folder: Path | None = None,
    published_files: Callable[[int, str], Sequence[PublicFile]] | None = None,
) -> None:
    """Refuses (VersionRefused) weights that are not version `version` by the rules in this module's docstring.

    Args:
        weights_hash: the loaded weights' hash (`workers.ml.models.weights_hash`, 0x-hex).
        record: the version folder's record, None without a folder.
        base: gives the base model the node serves the genesis from (called only for version 1 when the registry
            records no hash for it; its loader files are compared only with a folder's); None refuses such a
            version 1.
        rebuild: rebuilds `version` from the registry's lineage (called only for an unpublished version > 1);
            None refuses such a version.
        folder: the version folder the weights were loaded from, None without one.
    """
    deltas = registered_deltas(chain, version)
    if record is not None and record.version != version:
        raise VersionRefused(f"the version folder holds version {record.version}, not {version}")
    published = registry.published(chain.contract("ModelRegistry"), version)
    if published is not None:
        if weights_hash != published[1]:
            raise VersionRefused(
                f"the weights hash to {weights_hash}; the registry records {published[1]} for version {version}: "
                "refusing to serve"
            )
        if folder is not None:
            if published_files is None:
                raise VersionRefused(
                    f"version {version}'s loader files (config, tokenizer) cannot be checked against its shard "
                    "manifest: refusing to serve the folder"
                )
            check_public_files(folder, version, published_files(version, published[0]))
        return
    if version == GENESIS_VERSION:
        if base is None:
            raise VersionRefused("the registry records no weights hash for version 1 and no base model was given")
        genesis = base()
        if weights_hash != genesis.weights_hash:
            raise VersionRefused(
                f"the weights hash to {weights_hash}; version 1 is the base model, which hashes to "
                f"{genesis.weights_hash}: refusing to serve"
            )
        if folder is not None:
            check_loader_files(folder, _expected(genesis), "the base model's")
        return
    if record is None:
        raise VersionRefused(
            f"version {version} is the genesis plus {len(deltas)} deltas: serve it from a version folder "
            "(--weights DIR, written by `deepshard model get`)"
        )
    if record.delta_cids != deltas:
        raise VersionRefused(f"the version folder's lineage differs from the registry's for version {version}")
    if record.weights_hash != weights_hash:
        raise VersionRefused(
            f"the folder's weights hash to {weights_hash}, its record says {record.weights_hash}: refusing to serve"
        )
    if rebuild is None:
        raise VersionRefused(
            f"the registry records no weights hash for version {version} (its shards are not published) and this "
            "node cannot rebuild it from its lineage: refusing to serve a folder nothing on chain binds"
        )
    rebuilt = rebuild(version)
    if rebuilt.weights_hash != weights_hash:
        raise VersionRefused(
            f"the weights hash to {weights_hash}; version {version} rebuilt from the registry's lineage hashes to "
            f"{rebuilt.weights_hash}: refusing to serve"
        )
    if folder is not None:
        check_loader_files(folder, _expected(rebuilt), f"version {version} rebuilt from its lineage's")


def check_public_files(folder: Path, version: int, files: Sequence[PublicFile]) -> None:
    """VersionRefused unless the folder's loader files are exactly `files`, the ones the shard manifest of
    `version` lists (`check_loader_files`)."""
    expected = {entry.name: (entry.size, entry.sha256) for entry in files}
    check_loader_files(folder, expected, f"version {version}'s shard manifest's")


def check_loader_files(folder: Path, expected: Mapping[str, tuple[int, bytes]], whose: str) -> None:
    """VersionRefused unless the folder's loader files (names `PUBLIC_FILE` matches: config, tokenizer, chat
    template) are exactly `expected` (name to size in bytes and sha256; `whose` names where they come from): none
    missing, none added, each with the expected sha256 (read no further than the expected size). The weights hash
    binds only the tensors; a config or tokenizer changes what the same tensors serve."""
    added = sorted(p.name for p in Path(folder).iterdir() if PUBLIC_FILE.fullmatch(p.name) and p.name not in expected)
    if added:
        raise VersionRefused(f"{folder} holds {added[0]}, which is not among {whose} loader files: refusing to serve")
    for name, (size, sha256) in sorted(expected.items()):
        path = Path(folder) / name
        try:
            data = read_limited(path, what=str(path), max_bytes=size)
        except FileNotFoundError:
            raise VersionRefused(f"{path} is missing: it is one of {whose} loader files") from None
        except OSError as exc:
            raise VersionRefused(f"{path} cannot be read ({exc.strerror})") from None
        except FileTooLarge:
            data = b""  # longer than the expected file: it differs
        if hashlib.sha256(data).digest() != sha256:
            raise VersionRefused(f"{path} differs from {whose}: refusing to serve")


def _expected(built: BuiltVersion) -> dict[str, tuple[int, bytes]]:
    """`built`'s loader files (names `PUBLIC_FILE` matches) as `check_loader_files` takes them."""
    return {
        name: (len(data), hashlib.sha256(data).digest())
        for name, data in built.loader_files.items()
        if PUBLIC_FILE.fullmatch(name)
    }


def shard_manifest_files(store: ContentStore, version: int, cid: str) -> tuple[PublicFile, ...]:
    """The loader files listed by the shard manifest at `cid` (what the registry records for `version`), fetched
    from `store` and checked against its CID; VersionRefused in one line when it cannot be had or is refused."""
    from ..shards.errors import ShardError
    from ..shards.manifest import recorded_manifest
    from ..storage import StorageError

    try:
        return recorded_manifest(store, cid, version).files
    except (StorageError, ShardError) as exc:
        raise VersionRefused(f"cannot check the folder against version {version}'s shard manifest: {exc}") from None


def rebuilt_version(chain: ChainClient, version: int) -> BuiltVersion:
    """`version` rebuilt from the registry's lineage (`workers.tasks.versions.fetch_version`,
    deltas from the content store `open_store` opens, specs from the broker's spec book); VersionRefused in one
    line when a delta or spec cannot be had or is rejected."""
    import redis as redis_lib

    from ..rounds.chain import TrainingRoundsClient
    from ..rounds.specs import SpecBook, SpecUnknown
    from ..storage import StorageError, open_store
    from ..tasks.errors import QueueUnavailable, TaskInputError
    from ..tasks.runner import broker_redis, redis_unavailable
    from ..tasks.versions import fetch_version

    what = f"cannot rebuild version {version} from its lineage to check the folder"
    try:
        with open_store() as store:
            model, _ = fetch_version(TrainingRoundsClient(chain), version, store, SpecBook(broker_redis()))
    except redis_lib.exceptions.RedisError as exc:
        raise VersionRefused(f"{what}: {redis_unavailable(exc)}") from None
    except (TaskInputError, StorageError, SpecUnknown, QueueUnavailable) as exc:
        raise VersionRefused(f"{what}: {exc}") from None
    from ..ml.models import loader_file_bytes

    return BuiltVersion(str(model.weights_hash), loader_file_bytes(model))
