"""The embedded store: IPFS blocks in a local directory, no daemon needed.

Layout under the store's root:
    blocks/<2 chars>/<CIDv1>   one file per block (raw leaf or dag-pb node), named by its base32 CIDv1;
                               the 2 chars are the next-to-last of the name (as Kubo's flatfs), which
                               spreads blocks evenly because the name ends in hash bits
    pins/<CIDv1>               an empty file per pinned root
Blocks are written to a temporary file and renamed, so a crash never leaves a partial block under a CID,
and concurrent writers of the same block are harmless. Reads verify every block (in `iter_file`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .base import DEFAULT_MAX_SIZE, ContentStore
from .cids import RAW, Cid, parse_cid
from .errors import IntegrityError, NotFound, StorageError
from .unixfs import Block, FileDagBuilder, build_from_stream, decode_pbnode

STORE_DIR_ENV = "DEEPSHARD_STORE_DIR"


def default_store_dir() -> Path:
    """$DEEPSHARD_STORE_DIR, else <per-user data dir>/deepshard/store (data dir: $XDG_DATA_HOME or ~/.local/share)."""
    configured = os.environ.get(STORE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "deepshard" / "store"


class EmbeddedStore(ContentStore):
    def __init__(self, root: str | Path | None = None, *, max_size: int = DEFAULT_MAX_SIZE):
        super().__init__(max_size=max_size)
        self.root = Path(root) if root is not None else default_store_dir()
        self._blocks = self.root / "blocks"
        self._pins = self.root / "pins"
        try:
            self._blocks.mkdir(parents=True, exist_ok=True)
            self._pins.mkdir(exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the embedded store at {self.root}: {exc.strerror}") from None

    @property
    def location(self) -> str:
        return f"the embedded store at {self.root}"

    # ---------------------------------------------------------------- writing

    def add_bytes(self, data: bytes) -> str:
        self._check_size(len(data))
        builder = FileDagBuilder(self._put_block)
        builder.update(data)
        return self._added(builder.finish().cid)

    def add_file(self, path: str | Path) -> str:
        self._source_size(path)
        try:
            with open(path, "rb") as stream:
                # max_size again while reading: the file may grow after the check.
                root = build_from_stream(stream, self._put_block, max_size=self.max_size)
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        return self._added(root.cid)

    def _added(self, cid: Cid) -> str:
        self._pin_path(cid).touch()
        return str(cid)

    def _put_block(self, block: Block) -> None:
        path = self._block_path(block.cid)
        if path.exists():
            try:
                self._fetch_and_verify(block.cid)
                return
            except IntegrityError:
                pass  # a damaged copy: overwrite it with the good one
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            path.parent.mkdir(exist_ok=True)
            temporary.write_bytes(block.data)
            os.replace(temporary, path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise StorageError(f"cannot write to {self.location}: {exc.strerror}") from None

    def pin(self, cid: str | Cid) -> None:
        cid = parse_cid(cid)
        if not self.has(cid):
            raise NotFound(f"{cid} is not (completely) in {self.location}")
        self._pin_path(cid).touch()

    def unpin(self, cid: str | Cid) -> None:
        self._pin_path(parse_cid(cid)).unlink(missing_ok=True)

    def is_pinned(self, cid: str | Cid) -> bool:
        return self._pin_path(parse_cid(cid)).exists()

    # ---------------------------------------------------------------- reading

    def has(self, cid: str | Cid) -> bool:
        """True if every block of the DAG is present; leaves are checked for existence only, not read.

        The dag-pb nodes are read and verified on the way: a corrupt one raises IntegrityError.
        """
        pending = [parse_cid(cid)]
        while pending:
            current = pending.pop()
            if current.codec == RAW:
                if not self._block_path(current).exists():
                    return False
                continue
            try:
                pending.extend(decode_pbnode(self._fetch_and_verify(current), current).links)
            except NotFound:
                return False
        return True

    def _fetch_block(self, cid: Cid) -> bytes:
        try:
            return self._block_path(cid).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{cid} is not in {self.location}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {cid} from {self.location}: {exc.strerror}") from None

    def _fetch_and_verify(self, cid: Cid) -> bytes:
        data = self._fetch_block(cid)
        cid.verify(data)
        return data

    def _block_path(self, cid: Cid) -> Path:
        name = str(cid.v1())
        return self._blocks / name[-3:-1] / name

    def _pin_path(self, cid: Cid) -> Path:
        return self._pins / str(cid.v1())
