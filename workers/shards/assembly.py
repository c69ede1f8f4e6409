"""The buyer's side: fetch every shard from any of its holders, verify it, decrypt it, rebuild the state dict, check
the registry's weights hash, and write a folder `transformers` loads (model.safetensors + config + tokenizer).

A replica is accepted only if, in this order: its size is the manifest's, its bytes hash to the manifest's CID, its
chunk Merkle root (workers.protocol.merkle) is the manifest's, it decrypts under the key derived for its holder
(the AES-GCM tag also authenticates version, shard and node), its plaintext's sha256 is the manifest's, and it
holds exactly the listed tensors. A holder that is down or serves a bad copy is skipped and the next one tried;
a shard no holder can serve is refused naming the shard and each holder's fault.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from workers.chain import registry
from workers.chain.client import ChainClient
from workers.ml.models import VERSION_FILE, state_dict_hash, version_record_bytes
from workers.protocol.merkle import merkle_root
from workers.storage import ContentStore, StorageError, cid_of_bytes, parse_cid

from .crypto import key_hash, open_replica
from .errors import KeyRejected, ManifestRejected, ShardError, ShardRejected, WeightsMismatch
from .layout import load_shard
from .manifest import Manifest, PublicFile, Replica, ShardEntry, recorded_manifest

if TYPE_CHECKING:
    from .access import Custody

# fetch(node address, CID, max_size) -> the bytes that node serves for that CID, at most max_size (the manifest's
# size: a holder cannot make the buyer read more). Raises StorageError (or OSError) when the node cannot serve it
# or serves more; the bytes are verified here, so the callable need not verify anything.
Fetch = Callable[[str, str, int], bytes]
WEIGHTS_FILE = "model.safetensors"


def fetch_from_stores(stores: Mapping[str, ContentStore]) -> Fetch:
    """A Fetch over one content store per node address (0x-hex, any case); an unknown node raises StorageError."""
    by_node = {node.lower(): store for node, store in stores.items()}

    def fetch(node: str, cid: str, max_size: int) -> bytes:
        store = by_node.get(node.lower())
        if store is None:
            raise StorageError(f"no store is known for node {node}")
        return store.get(cid, max_size=max_size)

    return fetch


@dataclass
class Assembly:
    """What `assemble` did: the folder written, the weights hash checked, the node each shard came from, and
    every holder fault seen on the way (unavailable or bad copies that were skipped)."""

    folder: Path
    weights_hash: str
    served_by: dict[int, str] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)


def _shard_label(entry: ShardEntry) -> str:
    if entry.layers is not None:
        return f"shard {entry.index} (layers {entry.layers[0]}-{entry.layers[1]})"
    return f"shard {entry.index} ({entry.part})"


def check_replica(entry: ShardEntry, replica: Replica, data: bytes, version_key: bytes, version: int) -> bytes:
    """The plaintext of `data`, served as `replica` of shard `entry`, after every check in the module docstring.

    Raises ShardRejected naming the shard, the holder and the first check that failed."""
    label = f"{_shard_label(entry)} from {replica.node}"
    if len(data) != replica.size:
        raise ShardRejected(f"{label}: {len(data):,} bytes, the manifest says {replica.size:,}")
    if cid_of_bytes(data) != parse_cid(replica.cid).v1():
        raise ShardRejected(f"{label}: the bytes do not match the CID {replica.cid}")
    if merkle_root(data) != replica.merkle_root:
        raise ShardRejected(f"{label}: the chunk Merkle root is not the manifest's")
    try:
        plaintext = open_replica(data, version_key, version=version, shard=entry.index, node=replica.node)
    except ShardRejected:
        raise ShardRejected(f"{label}: does not decrypt (AES-GCM tag) under the version key") from None
    if hashlib.sha256(plaintext).digest() != entry.sha256:
        raise ShardRejected(f"{label}: the decrypted plaintext's sha256 is not the manifest's")
    return plaintext


def fetch_shard(
    entry: ShardEntry, version_key: bytes, version: int, fetch: Fetch, faults: list[str]
) -> tuple[dict[str, torch.Tensor], str]:
    """(tensors, serving node) of one shard from the first holder whose copy verifies; the faults of holders tried
    before are appended to `faults`. Raises ShardRejected naming the shard when no holder serves a valid copy."""
    tried = []
    for replica in entry.replicas:
        try:
            data = fetch(replica.node, replica.cid, replica.size)
        except (StorageError, OSError) as exc:
            tried.append(f"{replica.node} unavailable ({exc})")
            continue
        try:
            plaintext = check_replica(entry, replica, data, version_key, version)
            tensors = load_shard(entry.index, plaintext, entry.tensors)
        except ShardRejected as exc:
            tried.append(str(exc))
            continue
        faults.extend(f"{_shard_label(entry)}: {fault}" for fault in tried)
        return tensors, replica.node
    raise ShardRejected(f"{_shard_label(entry)}: no holder served a valid copy: " + "; ".join(tried))


def fetch_file(manifest: Manifest, entry: PublicFile, fetch: Fetch, public: ContentStore | None = None) -> bytes:
    """A public loader file from the first holder that serves the right bytes (size and sha256), else from the
    `public` store (the files are public: any copy that hashes right will do). Raises ShardError if none does."""
    sources: list[tuple[str, Callable[[], bytes]]] = [
        (node, partial(fetch, node, entry.cid, entry.size)) for node in manifest.holders
    ]
    if public is not None:
        sources.append(("the buyer's own store", partial(public.get, entry.cid, max_size=entry.size)))
    tried = []
    for name, get in sources:
        try:
            content = get()
        except (StorageError, OSError) as exc:
            tried.append(f"{name} unavailable ({exc})")
            continue
        if len(content) == entry.size and hashlib.sha256(content).digest() == entry.sha256:
            return content
        tried.append(f"{name} served other bytes")
    raise ShardError(f"file {entry.name}: nobody served it: " + "; ".join(tried))


def assemble(
    manifest: Manifest,
    version_key: bytes,
    fetch: Fetch,
    target: str | Path,
    *,
    weights_hash: str,
    record: Mapping[str, Any] | None = None,
    public: ContentStore | None = None,
) -> Assembly:
    """Fetch, verify, decrypt and assemble a version into the new folder `target` (model.safetensors, config and
    tokenizer files), loadable with `AutoModelForCausalLM.from_pretrained(target)`.

    Args:
        version_key: the 32-byte key (from `combine_shares`); must hash to the manifest's key hash.
        fetch: where replicas come from (see `Fetch`, `fetch_from_stores`).
        weights_hash: the hash the weights must have (0x-hex): the one the registry records, not the manifest's
            word (`assemble_version` reads it from the chain).
        record: written as `deepshard-version.json` (workers.ml.models.VERSION_FILE) once the weights checked out.
        public: a store to take the public loader files from when no holder serves them.
    Returns an Assembly. Raises KeyRejected (wrong key), ShardRejected (a shard no holder serves intact, named),
    WeightsMismatch (the manifest or the assembled weights do not have `weights_hash`), ShardError (target
    exists, a loader file is missing). Nothing is left at `target` on any error.
    """
    if manifest.weights_hash != weights_hash:
        raise WeightsMismatch(f"the manifest is for weights {manifest.weights_hash}, not {weights_hash}")
    if key_hash(version_key) != manifest.key_hash:
        raise KeyRejected("the version key does not hash to the manifest's key hash")
    target = Path(target)
    if target.exists():
        raise ShardError(f"{target} already exists; assemble writes a new folder")
    check_creatable(target)  # before the downloads, not after them
    result = Assembly(folder=target, weights_hash=weights_hash)
    state: dict[str, torch.Tensor] = {}
    for entry in manifest.shards:
        tensors, node = fetch_shard(entry, version_key, manifest.version, fetch, result.faults)
        state.update(tensors)
        result.served_by[entry.index] = node
    files = {entry.name: fetch_file(manifest, entry, fetch, public) for entry in manifest.files}
    if record is not None:
        files[VERSION_FILE] = version_record_bytes(record)
    full = dict(state)
    for alias, stored in manifest.aliases:
        full[alias] = full[stored]
    assembled = state_dict_hash(full)
    if assembled != weights_hash:
        raise WeightsMismatch(f"the assembled weights hash to {assembled}, not {weights_hash}")
    _write_folder(target, state, files)
    return result


def published_manifest(chain: ChainClient, store: ContentStore, version: int) -> tuple[Manifest, str]:
    """(manifest, weights hash) the publisher recorded for `version` in the ModelRegistry (`publishShards`): the
    manifest fetched from `store` and checked by `recorded_manifest`, the weights hash as 0x-hex. Raises
    InvalidRequest (a ChainError) for a version that is not registered, ShardError when its shards are not
    published yet, StorageError when the store cannot serve the manifest, ManifestRejected (a ShardError) when it
    does not parse or is another version's or for other weights."""
    recorded = registry.published(chain.contract("ModelRegistry"), version)
    if recorded is None:
        raise ShardError(f"version {version} has no shards published yet (the publisher's step records them)")
    cid, weights_hash = recorded
    manifest = recorded_manifest(store, cid, version)
    if manifest.weights_hash != weights_hash:
        raise ManifestRejected(
            f"the shard manifest {cid} is for weights {manifest.weights_hash}; the registry records {weights_hash}"
        )
    return manifest, weights_hash


def assemble_version(
    chain: ChainClient,
    store: ContentStore,
    version: int,
    version_key: bytes,
    target: str | Path,
    *,
    fetch: Fetch | None = None,
    custody: Custody | None = None,
) -> Assembly:
    """`assemble` of a version on sale into a folder `deepshard serve --weights` serves: the manifest and the
    weights hash its publisher recorded in the ModelRegistry (`published_manifest`), the key checked against the
    key hash WeightAccess publishes before anything is fetched, and a `deepshard-version.json` (version, base
    model, the registry's lineage, the checked weights hash) written with the weights.

    Args:
        fetch: where replicas come from (default: `store` for every holder: an IPFS node reaches them all).
            Public loader files come from the holders or, when none serves one, from `store`.
        custody: the version's key custody when the caller has read it already (`deepshard weights fetch` rebuilds
            the key with its key hash); None reads it from WeightAccess.
    Raises what `published_manifest` and `assemble` raise, InvalidRequest (a ChainError) when the version has no
    key custody, KeyRejected when `version_key` is not the key it publishes."""
    from .access import WeightAccessClient

    manifest, weights_hash = published_manifest(chain, store, version)
    if custody is None:
        custody = WeightAccessClient(chain).custody(version)
    if key_hash(version_key) != custody.key_hash:
        raise KeyRejected(f"the version key is not version {version}'s: it does not hash to the on-chain key hash")
    if manifest.key_hash != custody.key_hash:
        raise ManifestRejected(f"the shard manifest of version {version} names another key than its key custody")
    record = {
        "version": version,
        "base_model": manifest.base_model,
        "lineage": [
            {"cid": cid, "round": round_id}
            for cid, round_id in registry.base_deltas(chain.contract("ModelRegistry"), version)
        ],
        "weights_hash": weights_hash,
        "source": "assembled from the version's encrypted shards (deepshard weights fetch)",
    }
    replicas = fetch or fetch_from_stores(dict.fromkeys(manifest.holders, store))
    return assemble(manifest, version_key, replicas, target, weights_hash=weights_hash, record=record, public=store)


def check_creatable(target: Path) -> None:
    """Raises ShardError unless a folder can be made at `target` (missing parents included): a probe folder is
    made and removed in its nearest existing ancestor, which must be a writable folder. Nothing is left behind."""
    ancestor = target.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ShardError(f"cannot create {target}: {ancestor} is not a folder")
    probe = ancestor / f".deepshard-probe-{secrets.token_hex(4)}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise ShardError(f"cannot create {target}: {exc.strerror} (in {ancestor})") from None


def _write_folder(target: Path, state: dict[str, torch.Tensor], files: Mapping[str, bytes]) -> None:
    """Write into a staging folder beside `target`, then rename it: `target` appears whole or not at all. An OS
    error (disk full, permissions changed meanwhile) is a ShardError naming `target`; the staging folder goes."""
    staging = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except OSError as exc:
        raise ShardError(f"cannot create {target}: {exc.strerror}") from None
    try:
        # Aliases (tied weights) are left out, as transformers' save_pretrained does; loading ties them again.
        save_file(state, staging / WEIGHTS_FILE, metadata={"format": "pt"})
        for name, content in files.items():
            (staging / name).write_bytes(content)
        # os.rename would replace an empty folder made at `target` meanwhile: refuse it instead.
        if target.exists():
            raise ShardError(f"{target} appeared while assembling; assemble writes a new folder")
        os.rename(staging, target)
    except (OSError, SafetensorError) as exc:  # safetensors reports its own write's OS error as SafetensorError
        shutil.rmtree(staging, ignore_errors=True)
        raise ShardError(f"cannot write {target}: {getattr(exc, 'strerror', None) or exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
