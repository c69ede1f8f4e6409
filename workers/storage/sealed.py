"""Content whose CID is known now and whose bytes become readable later: sealed in the store until published.

    sealed = add_sealed(store, data)        # pins AES-256-GCM(fresh key, data); `data` itself is not in the store
    ... sealed.cid is committed somewhere (it reveals nothing that is not already committed) ...
    publish_sealed(store, sealed)           # fetches the sealed blob, opens it, checks its CID, pins `data`

Why: a trainer commits its delta's CID before a deadline; honest deltas are byte-identical, so anyone who could
read that CID in the store (a shared node, provider records of an online one) could commit it without training.
The plaintext's CID is computed locally (`unixfs.cid_of_bytes`, the CID `add_bytes` gives); what goes into the
store before the deadline is a ciphertext under a fresh random key: its CID differs per seal and tells nothing
about the plaintext. The sealed blob lets the bytes travel from the machine that made them (the training worker)
to the one that publishes them (the trainer's step) through any store both reach; the key travels with the
job's result.

Format (the shape of `workers.shards.crypto`'s replicas): `nonce (12 random bytes) ‖ AES-256-GCM(key, nonce,
data, aad = SEAL_LABEL ‖ the plaintext's binary CID)` (ciphertext ‖ 16-byte tag), the key 32 random bytes from
the OS CSPRNG (`secrets`). The associated data binds a blob to the CID it was sealed for, so a blob opened under
another CID fails the tag check. Library: `cryptography` (pyca), `AESGCM`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .base import ContentStore
from .cids import Cid, parse_cid
from .errors import IntegrityError, StorageError
from .unixfs import cid_of_bytes

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
SEAL_LABEL = b"deepshard/sealed"
# cryptography's AESGCM refuses data of 2^31 bytes or more.
MAX_SEALED_PLAINTEXT = 2**31 - 1


class SealRejected(IntegrityError):
    """A sealed blob that does not open under its key, or opens to bytes whose CID is not the one expected."""


@dataclass(frozen=True)
class Sealed:
    """`cid`: the plaintext's CID (base32 CIDv1); `sealed_cid`: the stored ciphertext's; `key`: 32 bytes."""

    cid: str
    sealed_cid: str
    key: bytes

    @classmethod
    def from_parts(cls, cid: str | Cid, sealed_cid: str | Cid, key_hex: str) -> Sealed:
        """From the JSON parts; SealRejected for a malformed key, InvalidCid for a malformed CID."""
        try:
            key = bytes.fromhex(key_hex) if isinstance(key_hex, str) else b""
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise SealRejected(f"a sealing key is {2 * KEY_BYTES} hex digits, not {key_hex!r}")
        return cls(str(parse_cid(cid)), str(parse_cid(sealed_cid)), key)


def _aad(cid: Cid) -> bytes:
    return SEAL_LABEL + cid.v1().to_bytes()


def seal(data: bytes) -> tuple[Cid, bytes, bytes]:
    """(the CID of `data`, the sealed blob, the fresh key); StorageError for data AES-GCM cannot take."""
    if len(data) > MAX_SEALED_PLAINTEXT:
        raise StorageError(f"cannot seal {len(data)} bytes: AES-GCM takes at most {MAX_SEALED_PLAINTEXT}")
    cid = cid_of_bytes(data)
    key = secrets.token_bytes(KEY_BYTES)
    nonce = secrets.token_bytes(NONCE_BYTES)
    return cid, nonce + AESGCM(key).encrypt(nonce, data, _aad(cid)), key


def unseal(blob: bytes, key: bytes, cid: str | Cid) -> bytes:
    """The plaintext sealed in `blob` for `cid`, checked against `cid`; SealRejected otherwise."""
    expected = parse_cid(cid)
    if len(blob) < NONCE_BYTES + TAG_BYTES or len(key) != KEY_BYTES:
        raise SealRejected(f"the sealed content for {expected} is malformed ({len(blob)} bytes, a {len(key)}-byte key)")
    try:
        data = AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(expected))
    except InvalidTag:
        raise SealRejected(f"the sealed content for {expected} does not open under its key") from None
    actual = cid_of_bytes(data)
    if actual.v1() != expected.v1():  # only a blob sealed by someone who lied about its CID gets here
        raise SealRejected(f"the sealed content opens to {actual}, not {expected}")
    return data


def add_sealed(store: ContentStore, data: bytes) -> Sealed:
    """Pins `data` sealed under a fresh key; `data` itself stays out of the store (see the module's doc)."""
    cid, blob, key = seal(data)
    return Sealed(str(cid), store.add_bytes(blob), key)


def publish_sealed(store: ContentStore, sealed: Sealed, *, max_size: int | None = None) -> str:
    """Opens `sealed` from the store and pins the plaintext; returns its CID (`sealed.cid`). A plaintext already
    pinned is not fetched again (a publication interrupted after its pin resumes at once). SealRejected for a
    blob that does not open or whose plaintext is not `sealed.cid`; the store's errors (NotFound, FileTooLarge
    past `max_size` bytes of ciphertext) as they come."""
    if store.is_pinned(sealed.cid):
        return sealed.cid
    blob = store.get(sealed.sealed_cid, max_size=max_size)
    added = store.add_bytes(unseal(blob, sealed.key, sealed.cid))
    if added != sealed.cid:
        raise IntegrityError(f"{store.location} named the published content {added}, not {sealed.cid}")
    return added
