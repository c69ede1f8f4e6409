"""Content identifiers: the subset of CIDs the stores produce and can verify.

A `Cid` is (version, codec, sha2-256 digest) with codec raw (file chunks) or dag-pb (UnixFS nodes).
Strings are parsed by `multiformats` (any multibase, CIDv0 `Qm...` too); the encoding on the hot path
(one CID per 256 KiB block) is done here because it is ~50x faster than building `multiformats.CID`s.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from multiformats import CID

from .errors import IntegrityError, InvalidCid, UnsupportedContent

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
SHA2_256_LENGTH = 32
CODEC_NAMES = {RAW: "raw", DAG_PB: "dag-pb"}


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, as used by multiformats and protobuf."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes | memoryview, offset: int) -> tuple[int, int]:
    """(value, offset after it); raises ValueError on truncated or over-long input."""
    value = shift = 0
    while True:
        if offset >= len(data):
            raise ValueError("truncated varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 64 bits")


@dataclass(frozen=True)
class Cid:
    version: int
    codec: int
    digest: bytes

    @classmethod
    def for_block(cls, codec: int, data: bytes | memoryview, version: int = 1) -> Cid:
        return cls(version, codec, hashlib.sha256(data).digest())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Cid:
        """Parses a binary CID (as found in dag-pb links)."""
        try:
            if len(raw) == 2 + SHA2_256_LENGTH and raw[0] == SHA2_256 and raw[1] == SHA2_256_LENGTH:
                return cls(0, DAG_PB, bytes(raw[2:]))
            version, offset = decode_varint(raw, 0)
            codec, offset = decode_varint(raw, offset)
            hash_code, offset = decode_varint(raw, offset)
            length, offset = decode_varint(raw, offset)
        except ValueError as exc:
            raise InvalidCid(f"malformed binary CID {bytes(raw).hex()}: {exc}") from None
        if version != 1 or len(raw) - offset != length:
            raise InvalidCid(f"malformed binary CID {bytes(raw).hex()}")
        return _checked(cls(1, codec, bytes(raw[offset:])), hash_code, bytes(raw).hex())

    def to_bytes(self) -> bytes:
        multihash = bytes((SHA2_256, SHA2_256_LENGTH)) + self.digest
        if self.version == 0:
            return multihash
        return b"\x01" + encode_varint(self.codec) + multihash

    def v1(self) -> Cid:
        """The CIDv1 naming the same block; stores key blocks by it so v0 and v1 names agree."""
        return self if self.version == 1 else Cid(1, self.codec, self.digest)

    def verify(self, data: bytes | memoryview) -> None:
        """Raises IntegrityError unless `data` hashes to this CID."""
        if hashlib.sha256(data).digest() != self.digest:
            raise IntegrityError(f"block {self} does not match its CID (corrupt or tampered data)")

    def __str__(self) -> str:
        if self.version == 0:
            return str(CID("base58btc", 0, "dag-pb", ("sha2-256", self.digest)))
        return "b" + base64.b32encode(self.to_bytes()).decode("ascii").rstrip("=").lower()

    def __repr__(self) -> str:
        return f"Cid({self})"


def _checked(cid: Cid, hash_code: int, shown: str) -> Cid:
    if cid.codec not in CODEC_NAMES:
        raise UnsupportedContent(
            f"CID {shown} has codec 0x{cid.codec:x}; only UnixFS files (dag-pb, raw) are supported"
        )
    if hash_code != SHA2_256 or len(cid.digest) != SHA2_256_LENGTH:
        raise UnsupportedContent(f"CID {shown} is not hashed with sha2-256, so it cannot be verified")
    return cid


def parse_cid(value: str | Cid) -> Cid:
    """A `Cid` from its string form (base32 `bafy...`, base58 `Qm...`/`z...`, any multibase).

    Raises InvalidCid for anything malformed, UnsupportedContent for a valid CID of another codec or hash.
    """
    if isinstance(value, Cid):
        return value
    if not isinstance(value, str):
        raise InvalidCid(f"a CID must be a string, not {type(value).__name__}")
    try:
        parsed = CID.decode(value)
    except Exception as exc:  # multiformats raises ValueError, KeyError and its own decoding errors
        raise InvalidCid(f"{value!r} is not a valid CID ({exc})") from None
    return _checked(Cid(parsed.version, parsed.codec.code, bytes(parsed.raw_digest)), parsed.hashfun.code, value)
