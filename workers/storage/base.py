"""The interface every content store implements, and the verified read path they share.

Both backends name content by the same CIDv1 (see `unixfs`). Reads go through `iter_file`, which checks
every block against its CID, so a backend only has to say how to fetch one block by CID.
"""

from __future__ import annotations

import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from .cids import Cid, parse_cid
from .errors import FileTooLarge, StorageError
from .unixfs import iter_file

# Model shards and datasets are far below this; a bigger file is almost surely a mistake.
DEFAULT_MAX_SIZE = 2 * 1024**3


class ContentStore(ABC):
    """A content-addressed store of files. CIDs are returned as base32 CIDv1 strings (`bafk...`/`bafy...`)."""

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE):
        if max_size < 0:
            raise ValueError("max_size must be >= 0")
        self.max_size = max_size

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store lives, for messages: 'the IPFS node at ...' or 'the embedded store at ...'."""

    # ---------------------------------------------------------------- writing

    @abstractmethod
    def add_bytes(self, data: bytes) -> str:
        """Stores `data`, pins it and returns its CID."""

    @abstractmethod
    def add_file(self, path: str | Path) -> str:
        """Stores the file at `path` (streamed, never whole in memory), pins it and returns its CID."""

    @abstractmethod
    def pin(self, cid: str | Cid) -> None:
        """Keeps `cid` (the whole DAG) in the store; NotFound if it cannot be obtained."""

    @abstractmethod
    def unpin(self, cid: str | Cid) -> None:
        """Lets `cid` be garbage collected; a no-op if it is not pinned."""

    @abstractmethod
    def is_pinned(self, cid: str | Cid) -> bool:
        """True if `cid` is pinned as a root (added or pinned explicitly)."""

    @abstractmethod
    def has(self, cid: str | Cid) -> bool:
        """True if the store holds `cid` locally, without fetching it from elsewhere."""

    # ---------------------------------------------------------------- reading

    @abstractmethod
    def _fetch_block(self, cid: Cid) -> bytes:
        """The stored bytes of one block, unverified; raises NotFound if there is none."""

    def iter_content(self, cid: str | Cid, *, max_size: int | None = None) -> Iterator[bytes]:
        """The content of `cid` in pieces, each verified before it is yielded. FileTooLarge past `max_size` bytes
        (default and ceiling: the store's own maximum), raised from the declared size before any other block is
        fetched, else as soon as the running total passes it."""
        limit = self.max_size if max_size is None else min(max_size, self.max_size)
        return iter_file(parse_cid(cid), self._fetch_block, max_size=limit)

    def get(self, cid: str | Cid, *, max_size: int | None = None) -> bytes:
        """The content of `cid`, verified against it (IntegrityError on any mismatch); FileTooLarge past
        `max_size` bytes (`iter_content`)."""
        content = bytearray()
        for piece in self.iter_content(cid, max_size=max_size):
            content += piece
        return bytes(content)

    def get_to_file(self, cid: str | Cid, path: str | Path) -> int:
        """Writes the content of `cid` to `path` and returns its size.

        The content goes to a temporary file beside `path`, renamed over it only once every block has
        been verified: on any error `path` is left as it was.
        """
        pieces = self.iter_content(cid)  # parses the CID before any file is created
        target = Path(path)
        if target.is_dir():
            raise StorageError(f"{target} is a directory")
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            # os.open honours the umask, unlike tempfile's private 0600 files.
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror}") from None
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for piece in pieces:
                    out.write(piece)
                    size += len(piece)
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return size

    # ---------------------------------------------------------------- helpers

    def _check_size(self, size: int) -> None:
        if size > self.max_size:
            raise FileTooLarge(
                f"the content is {size} bytes, above the maximum size of {self.max_size} bytes of {self.location}"
            )

    def _source_size(self, path: str | Path) -> int:
        """The size of a file about to be added, checked against the maximum before it is read."""
        try:
            status = os.stat(path)
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        if not os.path.isfile(path):
            raise StorageError(f"{path} is not a regular file")
        self._check_size(status.st_size)
        return status.st_size

    def close(self) -> None:
        """Releases connections; the store is not used afterwards."""
        return  # a store without connections has nothing to release

    def __enter__(self) -> ContentStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
