"""The shard manifest of a version: what a buyer needs to fetch, verify and assemble it, as canonical JSON.

    {"format": "deepshard/shards/v1", "version": 2, "base_model": "tiny",
     "weights_hash": "0x<32 bytes>",          the registry's weights hash of the version (workers.ml.models)
     "key_hash": "0x<32 bytes>",              keccak256(version key), also on-chain
     "aliases": [["lm_head.weight", "model.embed_tokens.weight"]],   tied weights: alias, stored name
     "files": [{"name": "config.json", "cid": "bafk...", "size": 712, "sha256": "0x..."}],   public, unencrypted
     "shards": [{"index": 0, "part": "embed", "layers": null,         layers: [first, last] for part "layers"
                 "size": 2097232, "sha256": "0x...",                       of the plaintext (safetensors)
                 "tensors": [["model.embed_tokens.weight", "F32", [2048, 256]]],
                 "replicas": [{"node": "0x<20 bytes>", "cid": "bafy...", "merkle_root": "0x...", "size": 2097248}]}]}

Canonical form: `workers.ml.spec.canonical_json` (sorted keys, no whitespace, UTF-8), hex in lowercase with 0x.
A manifest comes from outside (a store, a file): `parse_manifest` reads it through `workers.safejson.parse_json`
(size and depth bounded before parsing) and checks every field's type and range before anything is fetched,
raising ManifestRejected naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workers.ml.spec import canonical_json
from workers.safejson import JsonRejected, parse_json
from workers.storage import ContentStore, StorageError, parse_cid

from .crypto import MAX_PLAINTEXT_BYTES, TAG_BYTES
from .errors import ManifestRejected

MANIFEST_FORMAT = "deepshard/shards/v1"
EMBED, LAYERS, HEAD = "embed", "layers", "head"
PARTS = (EMBED, LAYERS, HEAD)
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
# The files a transformers loader reads besides the weights; nothing executable (no *.py, no pickles).
PUBLIC_FILE = re.compile(
    r"(config|generation_config|tokenizer|tokenizer_config|special_tokens_map|added_tokens|vocab|merges|chat_template)"
    r"\.(json|txt|jinja)"
)


# Bounds far above any model we run (SmolLM2's manifest: 10 shards, 272 stored tensors), far below harm.
MAX_MANIFEST_BYTES = 16 * 1024**2
MAX_DEPTH = 6  # manifest > shards > shard > tensors > tensor > shape
MAX_SHARDS = 4096
MAX_REPLICAS = 64
MAX_TENSORS = 65_536
MAX_NDIM = 8
MAX_NAME = 512
MAX_FILE_BYTES = 64 * 1024**2
MAX_VERSION = 2**64 - 1
_HEX32 = re.compile(r"0x[0-9a-f]{64}")
_ADDRESS = re.compile(r"0x[0-9a-f]{40}")
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a shard: name, safetensors dtype code ("F32", ...) and shape."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count * DTYPE_BYTES[self.dtype]


@dataclass(frozen=True)
class Replica:
    """A storage node's replica of a shard: the node's address (0x, lowercase), the replica's CID, its chunk
    Merkle root (workers.protocol.merkle) and its size in bytes (plaintext + 16-byte tag)."""

    node: str
    cid: str
    merkle_root: bytes
    size: int


@dataclass(frozen=True)
class ShardEntry:
    """Shard `index`: part, layer range, tensors, plaintext size (bytes), sha256 of the plaintext, and one replica
    per holder."""

    index: int
    part: str
    layers: tuple[int, int] | None
    tensors: tuple[TensorInfo, ...]
    size: int
    sha256: bytes
    replicas: tuple[Replica, ...]


@dataclass(frozen=True)
class PublicFile:
    """A loader file (config, tokenizer) stored unencrypted: name, CID, size in bytes, sha256."""

    name: str
    cid: str
    size: int
    sha256: bytes


@dataclass(frozen=True)
class Manifest:
    version: int
    base_model: str
    weights_hash: str
    key_hash: bytes
    aliases: tuple[tuple[str, str], ...]
    files: tuple[PublicFile, ...]
    shards: tuple[ShardEntry, ...]

    @property
    def holders(self) -> tuple[str, ...]:
        """Every node holding a replica of some shard, in order of first appearance."""
        return tuple(dict.fromkeys(replica.node for shard in self.shards for replica in shard.replicas))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "version": self.version,
            "base_model": self.base_model,
            "weights_hash": self.weights_hash,
            "key_hash": _hex(self.key_hash),
            "aliases": [list(pair) for pair in self.aliases],
            "files": [{"name": f.name, "cid": f.cid, "size": f.size, "sha256": _hex(f.sha256)} for f in self.files],
            "shards": [
                {
                    "index": s.index,
                    "part": s.part,
                    "layers": list(s.layers) if s.layers is not None else None,
                    "size": s.size,
                    "sha256": _hex(s.sha256),
                    "tensors": [[t.name, t.dtype, list(t.shape)] for t in s.tensors],
                    "replicas": [
                        {"node": r.node, "cid": r.cid, "merkle_root": _hex(r.merkle_root), "size": r.size}
                        for r in s.replicas
                    ],
                }
                for s in self.shards
            ],
        }

    def to_json(self) -> bytes:
        """The canonical JSON bytes (what is pinned and whose CID is recorded on the version)."""
        return canonical_json(self.to_dict())


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


# ------------------------------------------------------------------------------------------------- parsing


def _reject(where: str, problem: str) -> ManifestRejected:
    return ManifestRejected(f"shard manifest: {where} {problem}")


def _object(value: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _reject(where, "must be an object")
    if set(value) != keys:
        raise _reject(where, f"must have exactly the fields {sorted(keys)}, has {sorted(value)[:20]}")
    return value


def _list(value: Any, where: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise _reject(where, "must be a list")
    if len(value) > limit:
        raise _reject(where, f"has {len(value):,} entries, more than the {limit:,} allowed")
    return value


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _reject(where, "must be an integer")
    if not low <= value <= high:
        raise _reject(where, f"is {value}, outside {low}..{high:,}")
    return value


def _text(value: Any, where: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME or not pattern.fullmatch(value):
        shown = repr(value)[:80]
        raise _reject(where, f"is {shown}, not of the form {pattern.pattern}")
    return value


def _bytes32(value: Any, where: str) -> bytes:
    return bytes.fromhex(_text(value, where, _HEX32)[2:])


def _cid(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > 128:
        raise _reject(where, "must be a CID string")
    try:
        parse_cid(value)
    except StorageError as exc:
        raise _reject(where, f"is not a usable CID ({exc})") from None
    return value


def _tensor(value: Any, where: str) -> TensorInfo:
    entry = _list(value, where, 3)
    if len(entry) != 3:
        raise _reject(where, "must be [name, dtype, shape]")
    name = _text(entry[0], f"{where}[0]", _NAME)
    if entry[1] not in DTYPE_BYTES:
        raise _reject(f"{where}[1]", f"must be one of {sorted(DTYPE_BYTES)}")
    shape = tuple(_int(d, f"{where}[2]", 0, MAX_PLAINTEXT_BYTES) for d in _list(entry[2], f"{where}[2]", MAX_NDIM))
    return TensorInfo(name, entry[1], shape)


def _replica(value: Any, where: str, shard_size: int) -> Replica:
    data = _object(value, where, {"node", "cid", "merkle_root", "size"})
    size = _int(data["size"], f"{where}.size", 0, MAX_PLAINTEXT_BYTES + TAG_BYTES)
    if size != shard_size + TAG_BYTES:
        raise _reject(f"{where}.size", f"is {size}, not the shard's size + {TAG_BYTES} (the AES-GCM tag)")
    return Replica(
        node=_text(data["node"], f"{where}.node", _ADDRESS),
        cid=_cid(data["cid"], f"{where}.cid"),
        merkle_root=_bytes32(data["merkle_root"], f"{where}.merkle_root"),
        size=size,
    )


def _shard(value: Any, where: str, index: int) -> ShardEntry:
    keys = {"index", "part", "layers", "size", "sha256", "tensors", "replicas"}
    data = _object(value, where, keys)
    if _int(data["index"], f"{where}.index", 0, MAX_SHARDS) != index:
        raise _reject(f"{where}.index", f"is {data['index']}, but shards must be listed in index order from 0")
    part = data["part"]
    if part not in PARTS:
        raise _reject(f"{where}.part", f"must be one of {list(PARTS)}")
    layers = None
    if part == LAYERS:
        pair = _list(data["layers"], f"{where}.layers", 2)
        if len(pair) != 2:
            raise _reject(f"{where}.layers", "must be [first, last]")
        layers = (_int(pair[0], f"{where}.layers[0]", 0, 1 << 20), _int(pair[1], f"{where}.layers[1]", 0, 1 << 20))
        if layers[0] > layers[1]:
            raise _reject(f"{where}.layers", "must have first <= last")
    elif data["layers"] is not None:
        raise _reject(f"{where}.layers", f"must be null for part {part!r}")
    size = _int(data["size"], f"{where}.size", 0, MAX_PLAINTEXT_BYTES)
    tensors = tuple(
        _tensor(t, f"{where}.tensors[{i}]")
        for i, t in enumerate(_list(data["tensors"], f"{where}.tensors", MAX_TENSORS))
    )
    if not tensors:
        raise _reject(f"{where}.tensors", "must not be empty")
    if len({t.name for t in tensors}) != len(tensors):
        raise _reject(f"{where}.tensors", "names a tensor twice")
    if sum(t.nbytes for t in tensors) > size:
        raise _reject(f"{where}.tensors", f"hold more bytes than the shard's size {size:,}")
    replicas = tuple(
        _replica(r, f"{where}.replicas[{i}]", size)
        for i, r in enumerate(_list(data["replicas"], f"{where}.replicas", MAX_REPLICAS))
    )
    if not replicas:
        raise _reject(f"{where}.replicas", "must not be empty")
    if len({r.node for r in replicas}) != len(replicas):
        raise _reject(f"{where}.replicas", "names a node twice")
    return ShardEntry(
        index=index,
        part=part,
        layers=layers,
        tensors=tensors,
        size=size,
        sha256=_bytes32(data["sha256"], f"{where}.sha256"),
        replicas=replicas,
    )


def _file(value: Any, where: str) -> PublicFile:
    data = _object(value, where, {"name", "cid", "size", "sha256"})
    return PublicFile(
        name=_text(data["name"], f"{where}.name", PUBLIC_FILE),
        cid=_cid(data["cid"], f"{where}.cid"),
        size=_int(data["size"], f"{where}.size", 0, MAX_FILE_BYTES),
        sha256=_bytes32(data["sha256"], f"{where}.sha256"),
    )


def _alias(value: Any, where: str) -> tuple[str, str]:
    pair = _list(value, where, 2)
    if len(pair) != 2:
        raise _reject(where, "must be [alias, stored name]")
    return _text(pair[0], f"{where}[0]", _NAME), _text(pair[1], f"{where}[1]", _NAME)


def parse_manifest(data: str | bytes, *, what: str = "shard manifest") -> Manifest:
    """A manifest from its JSON (bytes or text from outside), every field checked.

    Raises ManifestRejected naming the field or the JSON problem (size over 16 MiB, nesting, syntax)."""
    try:
        raw = parse_json(data, what=what, max_depth=MAX_DEPTH, max_bytes=MAX_MANIFEST_BYTES)
    except JsonRejected as exc:
        raise ManifestRejected(str(exc)) from None
    top = _object(
        raw,
        "the document",
        {"format", "version", "base_model", "weights_hash", "key_hash", "aliases", "files", "shards"},
    )
    if top["format"] != MANIFEST_FORMAT:
        raise _reject("format", f"is {str(top['format'])[:80]!r}, not {MANIFEST_FORMAT!r}")
    shards = tuple(_shard(s, f"shards[{i}]", i) for i, s in enumerate(_list(top["shards"], "shards", MAX_SHARDS)))
    if not shards:
        raise _reject("shards", "must not be empty")
    _check_order(shards)
    names = [t.name for s in shards for t in s.tensors]
    if len(set(names)) != len(names):
        raise _reject("shards", "name a tensor in two shards")
    aliases = tuple(_alias(a, f"aliases[{i}]") for i, a in enumerate(_list(top["aliases"], "aliases", MAX_TENSORS)))
    for alias, stored in aliases:
        if alias in names or stored not in names:
            raise _reject("aliases", f"entry {alias} -> {stored} must name a new alias of a stored tensor")
    files = tuple(_file(f, f"files[{i}]") for i, f in enumerate(_list(top["files"], "files", 32)))
    if len({f.name for f in files}) != len(files):
        raise _reject("files", "name a file twice")
    if "config.json" not in {f.name for f in files}:
        raise _reject("files", "must include config.json")
    return Manifest(
        version=_int(top["version"], "version", 0, MAX_VERSION),
        base_model=_text(top["base_model"], "base_model", _NAME),
        weights_hash=_text(top["weights_hash"], "weights_hash", _HEX32),
        key_hash=_bytes32(top["key_hash"], "key_hash"),
        aliases=aliases,
        files=files,
        shards=shards,
    )


def _check_order(shards: Sequence[ShardEntry]) -> None:
    """Parts in order embed, layers, head (at most one embed and one head); layer ranges ascending, disjoint."""
    ranks = [PARTS.index(s.part) for s in shards]
    if ranks != sorted(ranks) or ranks.count(PARTS.index(EMBED)) > 1 or ranks.count(PARTS.index(HEAD)) > 1:
        raise _reject("shards", "must be one embed shard, then layer shards, then one head shard")
    last = -1
    for shard in shards:
        if shard.layers is not None:
            if shard.layers[0] <= last:
                raise _reject(f"shards[{shard.index}].layers", "overlap or are out of order")
            last = shard.layers[1]


def recorded_manifest(store: ContentStore, cid: str, version: int) -> Manifest:
    """The manifest at `cid`, which the ModelRegistry records for `version`: fetched from `store` (at most
    MAX_MANIFEST_BYTES, verified against its CID), parsed, and checked to be `version`'s. Raises StorageError from
    the store (FileTooLarge past the bound), ManifestRejected naming the CID."""
    where = f"the shard manifest {cid} recorded for version {version}"
    try:
        manifest = parse_manifest(store.get(cid, max_size=MAX_MANIFEST_BYTES), what=where)
    except ManifestRejected as exc:
        raise ManifestRejected(f"{where} is refused: {exc}") from None
    if manifest.version != version:
        raise ManifestRejected(f"{where} is version {manifest.version}'s")
    return manifest
