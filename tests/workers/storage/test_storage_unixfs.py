"""The pure-Python CID/UnixFS builder and the verified DAG reader, without any node."""

from __future__ import annotations

import io
import random

import pytest

from workers.storage import FileTooLarge, IntegrityError, InvalidCid, UnsupportedContent, parse_cid
from workers.storage.cids import DAG_PB, RAW, Cid
from workers.storage.unixfs import (
    CHUNK_SIZE,
    Block,
    FileDagBuilder,
    Link,
    build_from_stream,
    cid_of_bytes,
    encode_pbnode,
    encode_unixfs_file,
    iter_file,
)

# CIDs published by IPFS itself (Kubo and js-ipfs agree on them).
EMPTY_FILE_V1 = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
EMPTY_FILE_V0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
HELLO_V1 = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"


def build(data: bytes, **options) -> tuple[Link, dict[Cid, bytes]]:
    blocks: dict[Cid, bytes] = {}
    builder = FileDagBuilder(lambda block: blocks.__setitem__(block.cid, block.data), **options)
    builder.update(data)
    return builder.finish(), blocks


def reference_root(data: bytes, chunk_size: int, max_links: int) -> Cid:
    """The balanced layout as js-ipfs writes it, in batch: group each level by max_links until one node is left."""
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""]
    level = [Link(Cid.for_block(RAW, chunk), len(chunk), len(chunk)) for chunk in chunks]
    if len(level) == 1:
        return level[0].cid
    while True:
        parents = []
        for start in range(0, len(level), max_links):
            group = level[start : start + max_links]
            filesize = sum(link.filesize for link in group)
            node = encode_pbnode(group, encode_unixfs_file(filesize, blocksizes=[link.filesize for link in group]))
            parents.append(Link(Cid.for_block(DAG_PB, node), len(node) + sum(child.tsize for child in group), filesize))
        if len(parents) == 1:
            return parents[0].cid
        level = parents


def test_known_cids():
    assert str(cid_of_bytes(b"")) == EMPTY_FILE_V1
    assert str(cid_of_bytes(b"", raw_leaves=False, cid_version=0)) == EMPTY_FILE_V0
    assert str(cid_of_bytes(b"hello")) == HELLO_V1


def test_single_chunk_is_a_raw_leaf_and_more_is_a_dag_pb_root():
    assert str(cid_of_bytes(bytes(CHUNK_SIZE))).startswith("bafkrei")
    assert str(cid_of_bytes(bytes(CHUNK_SIZE + 1))).startswith("bafybei")


@pytest.mark.parametrize("max_links", [2, 3, 174])
def test_streaming_layout_equals_the_batch_layout(max_links):
    # Tiny chunks make three- and four-level trees cheap; sizes straddle every boundary n*links**k.
    chunk = 4
    boundaries = {max_links**k * m for k in range(1, 4) for m in (1, 2) if max_links**k * m < 700}
    counts = sorted({0, 1, 2} | boundaries | {b + 1 for b in boundaries} | {b - 1 for b in boundaries})
    rng = random.Random(max_links)
    for leaves in counts:
        data = rng.randbytes(leaves * chunk - rng.randrange(0, chunk) if leaves else 0)
        root, _ = build(data, chunk_size=chunk, max_links=max_links)
        assert root.cid == reference_root(data, chunk, max_links), f"{leaves} leaves"


def test_how_the_bytes_are_pushed_does_not_matter():
    data = random.Random(1).randbytes(3 * CHUNK_SIZE + 12345)
    expected = cid_of_bytes(data)
    builder = FileDagBuilder()
    offset, rng = 0, random.Random(2)
    while offset < len(data):
        step = rng.choice([1, 7, 4096, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 5])
        builder.update(memoryview(data)[offset : offset + step])
        offset += step
    assert builder.finish().cid == expected
    assert build_from_stream(io.BytesIO(data)).cid == expected


def test_stream_over_the_limit_is_refused_while_reading():
    with pytest.raises(FileTooLarge):
        build_from_stream(io.BytesIO(bytes(1000)), max_size=999)


def test_reader_round_trip_and_blocks_are_emitted_children_first():
    data = random.Random(3).randbytes(5 * 1000 + 17)
    order: list[Block] = []
    builder = FileDagBuilder(order.append, chunk_size=1000, max_links=2)
    builder.update(data)
    root = builder.finish()
    blocks = {block.cid: block.data for block in order}
    assert order[-1].cid == root.cid
    assert b"".join(iter_file(root.cid, blocks.__getitem__)) == data
    assert root.filesize == len(data)


def test_reader_detects_a_tampered_leaf_before_yielding_it():
    data = random.Random(4).randbytes(3 * 1000)
    root, blocks = build(data, chunk_size=1000)
    second_leaf = [cid for cid in blocks if cid.codec == RAW][1]  # blocks arrive in file order
    blocks[second_leaf] = b"X" + blocks[second_leaf][1:]
    produced = bytearray()
    with pytest.raises(IntegrityError, match="does not match its CID"):
        for piece in iter_file(root.cid, blocks.__getitem__):
            produced += piece
    assert produced == data[:1000]  # the good first chunk, nothing of the bad one


def test_reader_checks_declared_sizes():
    leaf = Cid.for_block(RAW, b"abc")
    # A well-hashed node whose blocksizes lie about its child.
    node = encode_pbnode([Link(leaf, 3, 3)], encode_unixfs_file(4, blocksizes=[4]))
    root = Cid.for_block(DAG_PB, node)
    blocks = {leaf: b"abc", root: node}
    with pytest.raises(IntegrityError, match="holds"):
        b"".join(iter_file(root, blocks.__getitem__))


def test_reader_refuses_a_declared_size_above_the_maximum_before_fetching_leaves():
    root, blocks = build(bytes(3000), chunk_size=1000)
    fetched = []

    def fetch(cid):
        fetched.append(cid)
        return blocks[cid]

    with pytest.raises(FileTooLarge):
        next(iter_file(root.cid, fetch, max_size=2999))
    assert fetched == [root.cid]


def test_reader_refuses_directories():
    directory = encode_pbnode([], bytes([0x08, 0x01]))  # UnixFS {Type: Directory}
    cid = Cid.for_block(DAG_PB, directory)
    with pytest.raises(UnsupportedContent, match="directory"):
        list(iter_file(cid, {cid: directory}.__getitem__))


def test_reader_reads_dag_pb_leaves_too():
    # CIDv0 files (plain `ipfs add`) keep their data in dag-pb leaves.
    data = random.Random(5).randbytes(2500)
    root, blocks = build(data, chunk_size=1000, raw_leaves=False, cid_version=0)
    assert str(root.cid).startswith("Qm")
    assert b"".join(iter_file(parse_cid(str(root.cid)), blocks.__getitem__)) == data


@pytest.mark.parametrize(
    "text", ["", "hello", "bafy", "Qm123", EMPTY_FILE_V1[:-1], EMPTY_FILE_V1 + " ", "zzz", "/ipfs/x"]
)
def test_malformed_cids_are_rejected(text):
    with pytest.raises(InvalidCid):
        parse_cid(text)


def test_cids_of_other_codecs_are_unsupported():
    dag_cbor = "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    with pytest.raises(UnsupportedContent, match="codec"):
        parse_cid(dag_cbor)


def test_cid_forms_round_trip():
    v1 = parse_cid(EMPTY_FILE_V1)
    assert str(v1) == EMPTY_FILE_V1 and v1.codec == RAW
    v0 = parse_cid(EMPTY_FILE_V0)
    assert str(v0) == EMPTY_FILE_V0 and v0.v1().version == 1
    assert Cid.from_bytes(v0.v1().to_bytes()) == v0.v1()
    assert Cid.from_bytes(v0.to_bytes()) == v0
