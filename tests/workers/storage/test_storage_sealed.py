"""Sealed content (`workers.storage.sealed`) in a real embedded store: the plaintext's CID names nothing until it
is published, equal contents seal differently, and a blob that was tampered with, opened under another key or
sealed for another CID is refused before anything is pinned."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from workers.storage import NotFound, cid_of_bytes
from workers.storage.sealed import (
    KEY_BYTES,
    NONCE_BYTES,
    SEAL_LABEL,
    Sealed,
    SealRejected,
    add_sealed,
    publish_sealed,
    seal,
    unseal,
)
from workers.storage.testing import sample_bytes

# Over one 256 KiB chunk: the plaintext's CID is a DAG root, not a single block.
DATA = sample_bytes(300_000, seed=7)


def test_sealed_until_published_then_readable_by_its_cid(embedded_store):
    sealed = add_sealed(embedded_store, DATA)
    again = add_sealed(embedded_store, DATA)
    assert sealed.cid == again.cid == str(cid_of_bytes(DATA))
    assert sealed.sealed_cid != again.sealed_cid and sealed.key != again.key and len(sealed.key) == KEY_BYTES
    assert not embedded_store.has(sealed.cid)
    with pytest.raises(NotFound):
        embedded_store.get(sealed.cid)
    assert DATA[1000:1064] not in embedded_store.get(sealed.sealed_cid)

    assert publish_sealed(embedded_store, sealed) == sealed.cid
    assert embedded_store.is_pinned(sealed.cid) and embedded_store.get(sealed.cid) == DATA
    assert publish_sealed(embedded_store, again) == sealed.cid  # already pinned: nothing fetched or opened


def test_tampered_or_mismatched_blobs_are_refused_and_nothing_is_pinned(embedded_store):
    sealed = add_sealed(embedded_store, DATA)
    blob = embedded_store.get(sealed.sealed_cid)
    flipped = bytearray(blob)
    flipped[100] ^= 1
    tampered = Sealed(sealed.cid, embedded_store.add_bytes(bytes(flipped)), sealed.key)
    other_key = Sealed(sealed.cid, sealed.sealed_cid, bytes(KEY_BYTES))
    other_data = add_sealed(embedded_store, b"another delta")
    other_cid = Sealed(sealed.cid, other_data.sealed_cid, other_data.key)  # sealed for another CID
    for bad in (tampered, other_key, other_cid):
        with pytest.raises(SealRejected, match=f"the sealed content for {sealed.cid} does not open under its key"):
            publish_sealed(embedded_store, bad)
    assert not embedded_store.has(sealed.cid)
    with pytest.raises(SealRejected, match="is malformed"):
        unseal(b"short", sealed.key, sealed.cid)
    with pytest.raises(SealRejected, match="a sealing key is 64 hex digits"):
        Sealed.from_parts(sealed.cid, sealed.sealed_cid, "00ff")


def test_a_blob_whose_plaintext_is_not_the_cid_it_names_is_refused():
    """A sealer that names the wrong CID (the associated data is that CID, so the blob opens): the plaintext's
    own CID is checked too."""
    cid, blob, key = seal(b"the real content")
    claimed = cid_of_bytes(b"what the sealer claims")
    nonce = blob[:NONCE_BYTES]
    lying = nonce + AESGCM(key).encrypt(nonce, b"the real content", SEAL_LABEL + claimed.to_bytes())
    assert unseal(blob, key, cid) == b"the real content"
    with pytest.raises(SealRejected, match=f"opens to {cid}, not {claimed}"):
        unseal(lying, key, claimed)
