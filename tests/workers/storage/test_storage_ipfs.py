"""The IPFS backend against a real node (js-ipfs), and CID parity with the embedded store."""

from __future__ import annotations

import base64
import time

import pytest
from services import NO_HANG_SECONDS

from workers.storage import (
    FileTooLarge,
    IntegrityError,
    InvalidCid,
    IpfsStore,
    NodeUnreachable,
    NotFound,
    cid_of_file,
)
from workers.storage import ipfs as ipfs_module
from workers.storage.cids import RAW
from workers.storage.testing import free_port, sample_bytes
from workers.storage.unixfs import FileDagBuilder

# urllib3 2 warns about an argument ipfshttpclient 0.7 passes; harmless (silenced for the CLI in workers.storage.ipfs).
pytestmark = pytest.mark.filterwarnings("ignore:The 'strict' parameter is no longer needed:FutureWarning")

MISSING = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


@pytest.mark.parametrize("name", ["empty", "one-byte", "one-chunk", "chunk-plus-one", "50MB"])
def test_both_backends_give_the_same_cid_and_round_trip(ipfs_store, embedded_store, sample_files, tmp_path, name):
    path = sample_files[name]
    from_ipfs = ipfs_store.add_file(path)  # also checked inside against the locally built CID
    from_embedded = embedded_store.add_file(path)
    assert from_ipfs == from_embedded == str(cid_of_file(path))
    assert from_ipfs.startswith("bafkrei" if path.stat().st_size <= 262144 else "bafybei")

    # Each backend serves what the other stored, by the same CID, verified.
    assert ipfs_store.get_to_file(from_embedded, tmp_path / "from-ipfs") == path.stat().st_size
    assert embedded_store.get_to_file(from_ipfs, tmp_path / "from-embedded") == path.stat().st_size
    assert (tmp_path / "from-ipfs").read_bytes() == path.read_bytes()
    assert (tmp_path / "from-embedded").read_bytes() == path.read_bytes()


def test_add_bytes_get_and_pins(ipfs_store):
    data = sample_bytes(300_000, seed=11)
    cid = ipfs_store.add_bytes(data)
    assert ipfs_store.get(cid) == data
    assert ipfs_store.has(cid)
    assert ipfs_store.is_pinned(cid)
    ipfs_store.unpin(cid)
    assert not ipfs_store.is_pinned(cid)
    ipfs_store.unpin(cid)  # unpinning twice is fine
    ipfs_store.pin(cid)
    assert ipfs_store.is_pinned(cid)
    assert not ipfs_store.is_pinned(MISSING)


def test_tampered_block_in_the_node_is_detected_and_nothing_is_written(ipfs_store, js_ipfs, tmp_path):
    data = sample_bytes(3 * 262144, seed=12)
    cid = ipfs_store.add_bytes(data)
    leaves = []
    builder = FileDagBuilder(lambda block: leaves.append(block.cid) if block.cid.codec == RAW else None)
    builder.update(data)
    builder.finish()
    # js-ipfs keeps each block in blocks/**/<base32 multihash>.data and serves it without re-hashing.
    multihash = bytes((0x12, 0x20)) + leaves[1].digest
    [block_file] = js_ipfs.repo.glob(f"blocks/*/{base64.b32encode(multihash).decode().rstrip('=')}.data")
    block = bytearray(block_file.read_bytes())
    block[-1] ^= 1
    block_file.write_bytes(bytes(block))

    out = tmp_path / "out.bin"
    with pytest.raises(IntegrityError, match=f"{leaves[1]} does not match its CID"):
        ipfs_store.get_to_file(cid, out)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(IntegrityError):
        ipfs_store.get(cid)


def test_a_node_building_another_dag_is_caught_on_add(ipfs_store, monkeypatch):
    # As if the node ignored raw-leaves: it returns a CID the embedded store would never produce.
    monkeypatch.setattr(ipfs_module, "ADD_OPTIONS", {**ipfs_module.ADD_OPTIONS, "raw_leaves": False})
    with pytest.raises(IntegrityError, match="does not honour the add options"):
        ipfs_store.add_bytes(sample_bytes(1000, seed=13))


def test_missing_cid_fails_within_the_timeout(impatient_ipfs_store, ipfs_timeout, tmp_path):
    store = impatient_ipfs_store
    for call in (store.get, store.pin, lambda cid: store.get_to_file(cid, tmp_path / "out")):
        started = time.monotonic()
        with pytest.raises(NotFound, match=f"{MISSING} within {ipfs_timeout:g} s"):
            call(MISSING)
        elapsed = time.monotonic() - started
        assert ipfs_timeout - 0.2 <= elapsed < NO_HANG_SECONDS, elapsed  # it waited for the timeout, no longer
    assert not (tmp_path / "out").exists()
    started = time.monotonic()
    assert not store.has(MISSING)
    assert time.monotonic() - started < NO_HANG_SECONDS


def test_unreachable_node_fails_fast_and_names_the_address(ipfs_timeout, sample_files):
    api = f"/ip4/127.0.0.1/tcp/{free_port()}/http"
    with IpfsStore(api, timeout=ipfs_timeout) as store:
        for call in (
            lambda: store.add_file(sample_files["one-byte"]),
            lambda: store.get(MISSING),
            lambda: store.has(MISSING),
            store.node_version,
        ):
            started = time.monotonic()
            with pytest.raises(NodeUnreachable, match=f"IPFS node at {api} is unreachable.*refused"):
                call()
            assert time.monotonic() - started < NO_HANG_SECONDS


def test_bad_api_address():
    with pytest.raises(NodeUnreachable, match="invalid IPFS API address"):
        IpfsStore("localhost:5001")
    with pytest.raises(NodeUnreachable, match="invalid IPFS API address"):
        IpfsStore("/ip4/127.0.0.1/udp/x")


def test_malformed_cid_is_refused_before_contacting_the_node(ipfs_store):
    for call in (ipfs_store.get, ipfs_store.has, ipfs_store.pin, ipfs_store.unpin):
        with pytest.raises(InvalidCid):
            call("Qm-not-a-cid")


def test_oversized_file_is_refused_before_upload(sample_files):
    # The node is unreachable: FileTooLarge (not NodeUnreachable) shows that nothing was sent.
    with IpfsStore(f"/ip4/127.0.0.1/tcp/{free_port()}/http", max_size=262144) as store:
        with pytest.raises(FileTooLarge, match="above the maximum size of 262144"):
            store.add_file(sample_files["chunk-plus-one"])
        with pytest.raises(FileTooLarge):
            store.add_bytes(bytes(262145))
