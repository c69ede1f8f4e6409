"""The embedded store: round trips, pins, tamper detection, limits, configuration."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from services import NO_HANG_SECONDS

from workers.storage import (
    API_ENV,
    MAX_SIZE_ENV,
    STORE_DIR_ENV,
    EmbeddedStore,
    FileTooLarge,
    IntegrityError,
    InvalidCid,
    IpfsStore,
    NotFound,
    StorageError,
    cid_of_file,
    open_store,
    parse_cid,
)
from workers.storage.cids import RAW
from workers.storage.testing import sample_bytes
from workers.storage.unixfs import FileDagBuilder

MISSING = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def block_files(store: EmbeddedStore) -> list[Path]:
    return sorted(p for p in (store.root / "blocks").rglob("*") if p.is_file())


@pytest.mark.parametrize("name", ["empty", "one-byte", "one-chunk", "chunk-plus-one", "50MB"])
def test_round_trip(embedded_store, sample_files, tmp_path, name):
    path = sample_files[name]
    cid = embedded_store.add_file(path)
    assert cid == str(cid_of_file(path))
    out = tmp_path / "out.bin"
    assert embedded_store.get_to_file(cid, out) == path.stat().st_size
    assert out.read_bytes() == path.read_bytes()
    assert embedded_store.has(cid)
    if path.stat().st_size < 1_000_000:
        assert embedded_store.get(cid) == path.read_bytes()


def test_add_bytes_equals_add_file_and_is_idempotent(embedded_store, sample_files):
    data = sample_files["chunk-plus-one"].read_bytes()
    cid = embedded_store.add_bytes(data)
    before = block_files(embedded_store)
    assert embedded_store.add_file(sample_files["chunk-plus-one"]) == cid
    assert block_files(embedded_store) == before
    assert len(before) == 3  # two raw leaves and their dag-pb parent


def test_a_cidv0_name_of_the_same_dag_is_served(embedded_store):
    data = sample_bytes(3000, seed=9)
    builder = FileDagBuilder(embedded_store._put_block, raw_leaves=False, cid_version=0)
    builder.update(data)
    v0 = builder.finish().cid
    assert str(v0).startswith("Qm")
    assert embedded_store.get(str(v0)) == data


def test_tampered_block_is_detected_and_nothing_is_written(embedded_store, tmp_path):
    data = sample_bytes(3 * 262144 + 5, seed=1)
    cid = embedded_store.add_bytes(data)
    leaves = [p for p in block_files(embedded_store) if p.name.startswith("bafkrei")]
    victim = leaves[0]
    tampered = bytearray(victim.read_bytes())
    tampered[100] ^= 0xFF
    victim.write_bytes(bytes(tampered))

    out = tmp_path / "out.bin"
    with pytest.raises(IntegrityError, match=victim.name):
        embedded_store.get_to_file(cid, out)
    assert list(tmp_path.glob("*out.bin*")) == []  # neither the target nor a leftover temporary file
    with pytest.raises(IntegrityError):
        embedded_store.get(cid)

    # The previous version of the target is left alone as well.
    out.write_bytes(b"previous")
    with pytest.raises(IntegrityError):
        embedded_store.get_to_file(cid, out)
    assert out.read_bytes() == b"previous"

    # Adding the content again repairs the damaged block.
    assert embedded_store.add_bytes(data) == cid
    assert embedded_store.get(cid) == data


def test_tampered_root_is_detected(embedded_store):
    cid = embedded_store.add_bytes(sample_bytes(262145, seed=2))
    root_file = next(p for p in block_files(embedded_store) if p.name == cid)
    block = root_file.read_bytes()
    root_file.write_bytes(block[:-1] + bytes([block[-1] ^ 0x02]))  # a blocksize 1 -> 3
    with pytest.raises(IntegrityError, match=cid):
        embedded_store.get(cid)


def test_missing_content_is_not_found_at_once(embedded_store, tmp_path):
    started = time.monotonic()
    with pytest.raises(NotFound, match="embedded store"):
        embedded_store.get(MISSING)
    with pytest.raises(NotFound):
        embedded_store.get_to_file(MISSING, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    with pytest.raises(NotFound):
        embedded_store.pin(MISSING)
    assert not embedded_store.has(MISSING)
    assert time.monotonic() - started < NO_HANG_SECONDS  # nothing waits for a network


def test_has_needs_every_block(embedded_store):
    cid = embedded_store.add_bytes(sample_bytes(2 * 262144 + 1, seed=3))
    leaf = next(p for p in block_files(embedded_store) if p.name.startswith("bafkrei"))
    leaf.unlink()
    assert not embedded_store.has(cid)
    with pytest.raises(NotFound):
        embedded_store.get(cid)


def test_pins(embedded_store):
    cid = embedded_store.add_bytes(b"pinned")
    assert embedded_store.is_pinned(cid)
    embedded_store.unpin(cid)
    assert not embedded_store.is_pinned(cid)
    embedded_store.unpin(cid)  # unpinning twice is fine
    embedded_store.pin(cid)
    assert embedded_store.is_pinned(cid)


@pytest.mark.parametrize("text", ["not-a-cid", "bafy", MISSING[:-2]])
def test_malformed_cid(embedded_store, tmp_path, text):
    for call in (
        embedded_store.get,
        embedded_store.has,
        embedded_store.pin,
        embedded_store.unpin,
        lambda cid: embedded_store.get_to_file(cid, tmp_path / "out"),
    ):
        with pytest.raises(InvalidCid, match="not a valid CID"):
            call(text)
    assert not (tmp_path / "out").exists()


def test_oversized_content_is_refused_before_anything_is_stored(tmp_path, sample_files):
    store = EmbeddedStore(tmp_path / "store", max_size=262144)
    with pytest.raises(FileTooLarge, match="262145 bytes, above the maximum size of 262144"):
        store.add_file(sample_files["chunk-plus-one"])
    with pytest.raises(FileTooLarge):
        store.add_bytes(bytes(262145))
    assert block_files(store) == []
    assert store.add_file(sample_files["one-chunk"])  # the limit itself is allowed


def test_content_above_the_limit_is_not_served(tmp_path):
    big = EmbeddedStore(tmp_path / "store")
    cid = big.add_bytes(bytes(300_000))
    small = EmbeddedStore(tmp_path / "store", max_size=299_999)
    with pytest.raises(FileTooLarge):
        small.get(cid)


def test_a_read_bounded_below_the_store_limit_stops_at_the_declared_size(tmp_path):
    store = EmbeddedStore(tmp_path / "store")
    cid = store.add_bytes(sample_bytes(600_000))
    root = str(parse_cid(cid).v1())
    leaves = [path for path in block_files(store) if path.name != root]
    for leaf in leaves:
        leaf.unlink()  # only the root is left: a read past it would fail with NotFound, not FileTooLarge
    with pytest.raises(FileTooLarge, match=f"{cid} is 600000 bytes, above the maximum size of 599999 bytes"):
        store.get(cid, max_size=599_999)
    small = EmbeddedStore(tmp_path / "store", max_size=1000)
    with pytest.raises(FileTooLarge, match="above the maximum size of 1000 bytes"):
        small.get(cid, max_size=10**9)  # the store's own maximum stays the ceiling


def test_unreadable_source_file(embedded_store, tmp_path):
    with pytest.raises(StorageError, match="cannot read"):
        embedded_store.add_file(tmp_path / "absent.bin")
    with pytest.raises(StorageError, match="not a regular file"):
        embedded_store.add_file(tmp_path)


def test_block_files_are_named_by_cid(embedded_store):
    cid = embedded_store.add_bytes(b"x")
    [block] = block_files(embedded_store)
    assert block.name == cid and block.parent.name == cid[-3:-1]
    assert parse_cid(cid).codec == RAW


def test_open_store_picks_the_backend_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(STORE_DIR_ENV, str(tmp_path / "from-env"))
    monkeypatch.setenv(MAX_SIZE_ENV, "1234")
    store = open_store()
    assert isinstance(store, EmbeddedStore)
    assert store.root == tmp_path / "from-env" and store.max_size == 1234
    assert open_store(store_dir=tmp_path / "explicit").root == tmp_path / "explicit"

    monkeypatch.setenv(API_ENV, "/ip4/127.0.0.1/tcp/5001/http")
    with open_store() as ipfs:
        assert isinstance(ipfs, IpfsStore) and ipfs.api == "/ip4/127.0.0.1/tcp/5001/http"
    with open_store(api="http://localhost:5001") as ipfs:
        assert ipfs.api == "/dns/localhost/tcp/5001/http"

    monkeypatch.setenv(MAX_SIZE_ENV, "lots")
    with pytest.raises(StorageError, match=MAX_SIZE_ENV):
        open_store()


def test_default_directory_is_per_user(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert open_store().root == tmp_path / "data" / "deepshard" / "store"
