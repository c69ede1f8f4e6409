"""The dataset manifest: what an informant claims about a normalised dataset, in canonical JSON.

    {"approx_tokens":1234,"cid":"bafk...","format":"deepshard-jsonl","format_version":1,
     "records":50,"sha256":"<hex of the normalised file>","size_bytes":12345}

The canonical JSON (keys sorted, no spaces, ASCII, no trailing newline) is what gets pinned; its CID is the
`manifestCid` of `DataConsensus.submit`, and `keccak256()` of the same bytes is a bytes32 that a contract
can store or compare. `cid` is the normalised file's CID, set by the storage layer (`with_cid`); the digest
covers it, so compute the digest once the CID is known.

`approx_tokens` is a count that needs no tokenizer, so every node gets the same number: over the
normalised texts, the whitespace-separated words plus the ASCII punctuation characters
(``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~``). "Hello, world." counts 4, as a tokenizer would split it;
subword tokenizers give more on rare words and numbers, and both undercount unspaced scripts (CJK).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import string
from dataclasses import dataclass

from eth_hash.auto import keccak  # eth_utils would load ~0.3 s of modules for this one function

from ..safejson import JsonRejected, parse_json
from .records import FORMAT_NAME, FORMAT_VERSION

#: A manifest is one flat object (levels); anything deeper is refused before it is parsed.
MAX_DEPTH = 1

_ASCII_PUNCTUATION = string.punctuation.encode("ascii")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")


def approx_tokens(text: str) -> int:
    """Words plus ASCII punctuation marks in `text` (see the module docstring); tokenizer-independent."""
    data = text.encode("utf-8")
    # bytes.split() splits on ASCII whitespace, the only whitespace left in normalised text.
    return len(data.split()) + len(data) - len(data.translate(None, _ASCII_PUNCTUATION))


class ManifestError(ValueError):
    """A manifest's JSON is malformed or does not describe the bytes it is checked against."""


@dataclass(frozen=True)
class DatasetManifest:
    """Facts about one normalised dataset file (see the module docstring)."""

    records: int
    approx_tokens: int
    size_bytes: int
    sha256: str
    cid: str | None = None
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def canonical_json(self) -> bytes:
        """The bytes to pin and to hash: sorted keys, no whitespace, ASCII only, no trailing newline."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    def keccak256(self) -> bytes:
        """keccak256 of `canonical_json()`: 32 bytes, Solidity's `keccak256(bytes)` of the pinned manifest."""
        return keccak(self.canonical_json())

    def sha256_digest(self) -> bytes:
        """sha256 of `canonical_json()`, for off-chain checks."""
        return hashlib.sha256(self.canonical_json()).digest()

    def with_cid(self, cid: str) -> DatasetManifest:
        """A copy naming the normalised file's CID (which the storage layer computes)."""
        return dataclasses.replace(self, cid=cid)

    @classmethod
    def from_json(cls, data: bytes | str) -> DatasetManifest:
        """Parses a manifest, checking every field's type; accepts only the current format."""
        try:
            value = parse_json(data, what="dataset manifest", max_depth=MAX_DEPTH)
        except JsonRejected as exc:
            raise ManifestError(str(exc)) from None
        if not isinstance(value, dict):
            raise ManifestError("manifest must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        if set(value) != names:
            raise ManifestError(f"manifest fields must be exactly {sorted(names)}, got {sorted(value)}")
        for name in ("records", "approx_tokens", "size_bytes", "format_version"):
            if type(value[name]) is not int or value[name] < 0:
                raise ManifestError(f"manifest field {name!r} must be a non-negative integer")
        if not isinstance(value["sha256"], str) or not _SHA256_HEX.match(value["sha256"]):
            raise ManifestError("manifest field 'sha256' must be 64 lowercase hex digits")
        if value["cid"] is not None and not isinstance(value["cid"], str):
            raise ManifestError("manifest field 'cid' must be a string or null")
        if (value["format"], value["format_version"]) != (FORMAT_NAME, FORMAT_VERSION):
            raise ManifestError(f"unsupported dataset format {value['format']!r} v{value['format_version']}")
        return cls(**value)


class ManifestBuilder:
    """Accumulates a manifest while the normalised records stream past (one `add` per record line)."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self.records = 0
        self.approx_tokens = 0
        self.size_bytes = 0

    def add(self, line: bytes, text: str) -> None:
        """`line` is the record's canonical line, `text` its normalised text."""
        self._sha256.update(line)
        self.records += 1
        self.size_bytes += len(line)
        self.approx_tokens += approx_tokens(text)

    def build(self) -> DatasetManifest:
        return DatasetManifest(
            records=self.records,
            approx_tokens=self.approx_tokens,
            size_bytes=self.size_bytes,
            sha256=self._sha256.hexdigest(),
        )
