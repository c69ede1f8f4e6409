"""UnixFS files as IPFS builds them, in pure Python: the same CIDs as `ipfs add --cid-version=1 --raw-leaves`.

Layout (Kubo's and js-ipfs's defaults for CIDv1):
- the file is cut into 256 KiB chunks; each chunk is a `raw` block (a leaf);
- leaves are grouped 174 at a time under dag-pb nodes, those nodes 174 at a time under the next level,
  and so on until one node remains: the balanced layout. A file of one chunk is that raw leaf itself;
  the empty file is the empty raw block.
- a dag-pb node is the protobuf PBNode {Links (field 2), then Data (field 1)}; each PBLink is
  {Hash, Name = "", Tsize = the child's block plus everything below it}; Data is the UnixFS protobuf
  {Type = File, filesize, blocksizes = each child's file bytes}.

`FileDagBuilder` is push-based and keeps at most one chunk plus one pending link list per level in
memory, so files of any size stream through it. `iter_file` walks a DAG back into file bytes, checking
every block against its CID and every node's sizes against its children.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .cids import DAG_PB, RAW, Cid, decode_varint, encode_varint
from .errors import FileTooLarge, IntegrityError, InvalidCid, UnsupportedContent

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
READ_SIZE = 1024 * 1024
# Far deeper than any real file (174**8 chunks is ~10**17 bytes): deeper DAGs are hostile.
MAX_DEPTH = 32

UNIXFS_RAW = 0
UNIXFS_DIRECTORY = 1
UNIXFS_FILE = 2
UNIXFS_TYPE_NAMES = {0: "raw", 1: "directory", 2: "file", 3: "metadata", 4: "symlink", 5: "HAMT shard"}

# Protobuf wire types
_VARINT = 0
_LENGTH_DELIMITED = 2


@dataclass(frozen=True)
class Block:
    cid: Cid
    data: bytes


@dataclass(frozen=True)
class Link:
    """A child in the DAG: its CID, dag-pb Tsize (cumulative block bytes) and its file bytes."""

    cid: Cid
    tsize: int
    filesize: int


# ---------------------------------------------------------------- protobuf encoding


def _key(field_number: int, wire_type: int) -> bytes:
    return encode_varint(field_number << 3 | wire_type)


def _bytes_field(field_number: int, value: bytes) -> bytes:
    return _key(field_number, _LENGTH_DELIMITED) + encode_varint(len(value)) + value


def _varint_field(field_number: int, value: int) -> bytes:
    return _key(field_number, _VARINT) + encode_varint(value)


def encode_unixfs_file(filesize: int, data: bytes | None = None, blocksizes: Sequence[int] = ()) -> bytes:
    """UnixFS Data {Type=File, Data?, filesize, blocksizes...}; `data` None or empty omits the field."""
    out = [_varint_field(1, UNIXFS_FILE)]
    if data:
        out.append(_bytes_field(2, data))
    out.append(_varint_field(3, filesize))
    # proto2 `repeated uint64` without [packed=true]: one key per value
    out.extend(_varint_field(4, size) for size in blocksizes)
    return b"".join(out)


def encode_pbnode(links: list[Link], data: bytes) -> bytes:
    """dag-pb PBNode; canonical order is Links before Data."""
    out = []
    for link in links:
        body = _bytes_field(1, link.cid.to_bytes()) + _bytes_field(2, b"") + _varint_field(3, link.tsize)
        out.append(_bytes_field(2, body))
    out.append(_bytes_field(1, data))
    return b"".join(out)


# ---------------------------------------------------------------- protobuf decoding


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a protobuf message; only the wire types dag-pb/UnixFS use."""
    offset = 0
    while offset < len(data):
        key, offset = decode_varint(data, offset)
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == _VARINT:
            value, offset = decode_varint(data, offset)
        elif wire_type == _LENGTH_DELIMITED:
            length, offset = decode_varint(data, offset)
            if offset + length > len(data):
                raise ValueError("truncated field")
            value, offset = data[offset : offset + length], offset + length
        else:
            raise ValueError(f"unexpected wire type {wire_type}")
        yield number, wire_type, value


@dataclass
class PBNode:
    links: list[Cid] = field(default_factory=list)
    data: bytes | None = None


@dataclass
class UnixFSData:
    type: int | None = None
    data: bytes = b""
    filesize: int | None = None
    blocksizes: list[int] = field(default_factory=list)


def decode_pbnode(block: bytes, cid: Cid) -> PBNode:
    node = PBNode()
    try:
        for number, _, value in _fields(block):
            if number == 2 and isinstance(value, bytes):
                hash_ = next((v for n, _, v in _fields(value) if n == 1 and isinstance(v, bytes)), None)
                if hash_ is None:
                    raise ValueError("link without a hash")
                node.links.append(Cid.from_bytes(hash_))
            elif number == 1 and isinstance(value, bytes):
                node.data = value
    except (ValueError, InvalidCid) as exc:
        raise IntegrityError(f"block {cid} is not a valid dag-pb node ({exc})") from None
    return node


def decode_unixfs(data: bytes, cid: Cid) -> UnixFSData:
    result = UnixFSData()
    try:
        for number, _, value in _fields(data):
            if number == 1 and isinstance(value, int):
                result.type = value
            elif number == 2 and isinstance(value, bytes):
                result.data = value
            elif number == 3 and isinstance(value, int):
                result.filesize = value
            elif number == 4 and isinstance(value, int):
                result.blocksizes.append(value)
            elif number == 4 and isinstance(value, bytes):  # packed encoding, also legal protobuf
                offset = 0
                while offset < len(value):
                    size, offset = decode_varint(value, offset)
                    result.blocksizes.append(size)
    except ValueError as exc:
        raise IntegrityError(f"block {cid} has malformed UnixFS data ({exc})") from None
    return result


# ---------------------------------------------------------------- building


class FileDagBuilder:
    """Builds a file's UnixFS DAG from bytes pushed in order; `finish()` returns the root link.

    Every block is handed to `on_block` as soon as it exists (children before parents), so a store can
    write it and forget it. Without `on_block` the builder only computes the CID.
    `raw_leaves=False, cid_version=0` gives the CIDv0 (`Qm...`) DAG of plain `ipfs add`.
    """

    def __init__(
        self,
        on_block: Callable[[Block], None] | None = None,
        *,
        chunk_size: int = CHUNK_SIZE,
        max_links: int = MAX_LINKS,
        raw_leaves: bool = True,
        cid_version: int = 1,
    ):
        if cid_version == 0 and raw_leaves:
            raise ValueError("CIDv0 can only name dag-pb blocks: use raw_leaves=False")
        if chunk_size < 1 or max_links < 2:
            raise ValueError("chunk_size must be >= 1 and max_links >= 2")
        self._on_block = on_block
        self._chunk_size = chunk_size
        self._max_links = max_links
        self._raw_leaves = raw_leaves
        self._cid_version = cid_version
        self._buffer = bytearray()
        self._levels: list[list[Link]] = [[]]  # links waiting for a parent, level 0 = leaves
        self._leaf_count = 0
        self._finished = False
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._finished:
            raise RuntimeError("the DAG is already finished")
        view = memoryview(data).cast("B")
        self.size += len(view)
        if self._buffer:
            missing = self._chunk_size - len(self._buffer)
            self._buffer += view[:missing]
            view = view[missing:]
            if len(self._buffer) < self._chunk_size:
                return
            self._add_leaf(self._buffer)
            self._buffer = bytearray()
        while len(view) >= self._chunk_size:
            self._add_leaf(view[: self._chunk_size])
            view = view[self._chunk_size :]
        self._buffer += view

    def finish(self) -> Link:
        if self._finished:
            raise RuntimeError("the DAG is already finished")
        self._finished = True
        # A trailing partial chunk is a leaf; so is the empty chunk of an empty file (never otherwise).
        if self._buffer or self._leaf_count == 0:
            self._add_leaf(self._buffer)
        # Close the levels bottom-up as the batch algorithm would: a level's remainder gets a parent
        # unless it is the single node at the top, which is the root.
        level = 0
        while True:
            pending = self._levels[level]
            above = any(self._levels[level + 1 :])
            if len(pending) == 1 and not above:
                return pending[0]
            if pending:
                self._levels[level] = []
                self._push(level + 1, self._parent(pending))
            level += 1

    def _add_leaf(self, chunk: bytes | bytearray | memoryview) -> None:
        self._leaf_count += 1
        if self._raw_leaves:
            data = bytes(chunk)
            cid = Cid.for_block(RAW, data, self._cid_version)
        else:
            data = encode_pbnode([], encode_unixfs_file(len(chunk), bytes(chunk)))
            cid = Cid.for_block(DAG_PB, data, self._cid_version)
        if self._on_block is not None:
            self._on_block(Block(cid, data))
        self._push(0, Link(cid, len(data), len(chunk)))

    def _push(self, level: int, link: Link) -> None:
        if level == len(self._levels):
            self._levels.append([])
        self._levels[level].append(link)
        # A full group always gets its parent (only a lone top node is ever its own root), so emit early.
        if len(self._levels[level]) == self._max_links:
            full, self._levels[level] = self._levels[level], []
            self._push(level + 1, self._parent(full))

    def _parent(self, links: list[Link]) -> Link:
        filesize = sum(link.filesize for link in links)
        data = encode_pbnode(links, encode_unixfs_file(filesize, blocksizes=[link.filesize for link in links]))
        cid = Cid.for_block(DAG_PB, data, self._cid_version)
        if self._on_block is not None:
            self._on_block(Block(cid, data))
        return Link(cid, len(data) + sum(link.tsize for link in links), filesize)


def build_from_stream(
    stream: BinaryIO, on_block: Callable[[Block], None] | None = None, *, max_size: int | None = None, **options
) -> Link:
    """The root link of a binary stream's DAG; raises FileTooLarge past `max_size` bytes (checked as it reads)."""
    builder = FileDagBuilder(on_block, **options)
    while chunk := stream.read(READ_SIZE):
        builder.update(chunk)
        if max_size is not None and builder.size > max_size:
            raise FileTooLarge(f"the content exceeds the maximum size of {max_size} bytes")
    return builder.finish()


def cid_of_bytes(data: bytes, **options) -> Cid:
    builder = FileDagBuilder(**options)
    builder.update(data)
    return builder.finish().cid


def cid_of_file(path: str | Path, **options) -> Cid:
    with open(path, "rb") as stream:
        return build_from_stream(stream, **options).cid


# ---------------------------------------------------------------- reading


def iter_file(root: Cid, fetch: Callable[[Cid], bytes], *, max_size: int | None = None) -> Iterator[bytes]:
    """Yields the bytes of the UnixFS file `root`, in order.

    `fetch` returns a block's bytes as stored; each is checked against its CID here before any of its
    content is yielded, and each node's declared sizes against what its children produce, so a
    consumer that stops at the first exception has only seen verified bytes. Raises IntegrityError,
    UnsupportedContent (a directory, ...), FileTooLarge (the declared size is above `max_size`).
    """
    produced = 0
    declared: int | None = None

    def load(cid: Cid) -> bytes:
        data = fetch(cid)
        cid.verify(data)
        return data

    def walk(cid: Cid, block: bytes, depth: int) -> Iterator[bytes]:
        nonlocal produced, declared
        if depth > MAX_DEPTH:
            raise IntegrityError(f"the DAG of {root} is deeper than {MAX_DEPTH} levels")
        filesize: int | None
        if cid.codec == RAW:
            chunks, links, sizes = [block], [], []
            filesize = len(block)
        else:
            node = decode_pbnode(block, cid)
            if node.data is None:
                raise UnsupportedContent(f"{cid} is a dag-pb node without UnixFS data, not a file")
            unixfs = decode_unixfs(node.data, cid)
            if unixfs.type is None or unixfs.type not in (UNIXFS_FILE, UNIXFS_RAW):
                kind = UNIXFS_TYPE_NAMES.get(unixfs.type, f"type {unixfs.type}") if unixfs.type is not None else "node"
                raise UnsupportedContent(f"{root} is a UnixFS {kind}, not a file")
            links, sizes = node.links, unixfs.blocksizes
            chunks = [unixfs.data] if unixfs.data else []
            if sizes and len(sizes) != len(links):
                raise IntegrityError(f"node {cid} lists {len(sizes)} block sizes for {len(links)} links")
            filesize = unixfs.filesize
        if depth == 0:
            declared = filesize
            if max_size is not None and declared is not None and declared > max_size:
                raise FileTooLarge(f"{root} is {declared} bytes, above the maximum size of {max_size} bytes")
        for chunk in chunks:
            produced += len(chunk)
            _check_running_total(produced)
            yield chunk
        for index, child in enumerate(links):
            before = produced
            yield from walk(child, load(child), depth + 1)
            if sizes and produced - before != sizes[index]:
                raise IntegrityError(
                    f"node {cid} says child {child} holds {sizes[index]} bytes, it holds {produced - before}"
                )

    def _check_running_total(total: int) -> None:
        # Checked before yielding, so a DAG that repeats children cannot expand past what the root declares.
        if declared is not None and total > declared:
            raise IntegrityError(f"the DAG of {root} holds more bytes than its declared {declared}")
        if max_size is not None and total > max_size:
            raise FileTooLarge(f"{root} exceeds the maximum size of {max_size} bytes")

    yield from walk(root, load(root), 0)
    if declared is not None and produced != declared:
        raise IntegrityError(f"{root} declares {declared} bytes but its DAG holds {produced}")
