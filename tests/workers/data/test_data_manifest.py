"""The manifest: canonical JSON with a stable digest, parsed back strictly; approx_tokens is fixed."""

import hashlib

import pytest

from workers.data import DatasetManifest, ManifestError, approx_tokens, normalise, validate

DATA = b'{"text": "Hello, world.", "lang": "en"}\r\n{"text": "Caf\\u00e9  au lait costs 3.50 euros."}'
NORMALISED = '{"lang":"en","text":"Hello, world."}\n{"text":"Caf\u00e9 au lait costs 3.50 euros."}\n'.encode()
SHA256 = "97a26f2a8298fb2170ea3ecb2552f574794ab1033d88049a4d0133c1584c43f0"
CANONICAL = (
    b'{"approx_tokens":12,"cid":null,"format":"deepshard-jsonl","format_version":1,"records":2,'
    b'"sha256":"' + SHA256.encode() + b'","size_bytes":80}'
)
# Pinned: changing any of these changes every dataset's manifest digest on chain.
KECCAK = "4ded812cec1b56f50fc3d8377747d79abebc43c4995ce512c39c9f88f968d0c8"
KECCAK_WITH_CID = "cd198671660fc21c9dce24e32e881e9dc72b43bffce193d2969a1dea472195eb"


def test_manifest_of_a_known_dataset():
    assert normalise(DATA) == NORMALISED
    assert hashlib.sha256(NORMALISED).hexdigest() == SHA256
    manifest = validate(DATA).manifest
    assert manifest == DatasetManifest(records=2, approx_tokens=12, size_bytes=len(NORMALISED), sha256=SHA256)
    assert manifest.canonical_json() == CANONICAL
    assert manifest.keccak256().hex() == KECCAK
    assert manifest.sha256_digest() == hashlib.sha256(CANONICAL).digest()


def test_digest_covers_the_cid():
    manifest = validate(DATA).manifest.with_cid("bafkreiexample")
    assert manifest.cid == "bafkreiexample"
    assert manifest.keccak256().hex() == KECCAK_WITH_CID
    assert len(manifest.keccak256()) == 32


def test_same_content_same_manifest():
    spelled_otherwise = (
        b'{"lang": "EN", "text": " Hello,\\tworld. "}\n\n{"text": "Cafe\xcc\x81 au lait costs 3.50 euros."}\n'
    )
    assert validate(spelled_otherwise).manifest == validate(DATA).manifest


def test_round_trip_and_strict_parsing():
    manifest = validate(DATA).manifest.with_cid("bafkreiexample")
    assert DatasetManifest.from_json(manifest.canonical_json()) == manifest
    assert DatasetManifest.from_json(manifest.canonical_json().decode()) == manifest
    bad = [
        b"not json",
        b"[]",
        CANONICAL.replace(b'"records":2', b'"records":-2'),
        CANONICAL.replace(b'"records":2', b'"records":"2"'),
        CANONICAL.replace(b'"records":2', b'"records":true'),
        CANONICAL.replace(SHA256.encode(), b"ABC"),
        CANONICAL.replace(b'"format_version":1', b'"format_version":2'),
        CANONICAL.replace(b'"cid":null', b'"cid":7'),
        CANONICAL.replace(b'"cid":null,', b""),
        CANONICAL.replace(b'"cid":null', b'"cid":null,"extra":1'),
    ]
    for data in bad:
        with pytest.raises(ManifestError):
            DatasetManifest.from_json(data)


@pytest.mark.parametrize(
    "text, count",
    [
        ("Hello, world.", 4),
        ("one two  three", 3),
        ("don't stop", 3),
        ("3.14 is pi", 4),
        ("caf\u00e9 na\u00efve \u2014 ok", 4),  # the em dash is a word of its own, not ASCII punctuation
        ("line one\n\nline two", 4),
        ("", 0),
    ],
)
def test_approx_tokens(text, count):
    assert approx_tokens(text) == count
