"""Content-addressed storage: every blob is named by its CIDv1 (sha2-256, raw leaves, 256 KiB UnixFS chunks).

    store = open_store()          # IPFS if $DEEPSHARD_IPFS_API is set, else the embedded store
    cid = store.add_file(path)    # 'bafy...' (or 'bafk...' for a single chunk)
    store.get_to_file(cid, out)   # verified against the CID before it lands at `out`

Configuration (environment):
    DEEPSHARD_IPFS_API        Kubo RPC API multiaddr, e.g. /ip4/127.0.0.1/tcp/5001/http (or http://host:port)
    DEEPSHARD_IPFS_TIMEOUT    seconds an IPFS call may take before it fails (default 30)
    DEEPSHARD_STORE_DIR       the embedded store's directory (default ~/.local/share/deepshard/store)
    DEEPSHARD_STORE_MAX_SIZE  largest content accepted or served, in bytes (default 2 GiB)
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import env_number
from .base import DEFAULT_MAX_SIZE, ContentStore
from .cids import Cid, parse_cid
from .embedded import STORE_DIR_ENV, EmbeddedStore, default_store_dir
from .errors import (
    FileTooLarge,
    IntegrityError,
    InvalidCid,
    NodeError,
    NodeUnreachable,
    NotFound,
    StorageError,
    UnsupportedContent,
)
from .ipfs import API_ENV, TIMEOUT_ENV, IpfsStore
from .unixfs import cid_of_bytes, cid_of_file

MAX_SIZE_ENV = "DEEPSHARD_STORE_MAX_SIZE"

__all__ = [
    "API_ENV",
    "MAX_SIZE_ENV",
    "STORE_DIR_ENV",
    "TIMEOUT_ENV",
    "Cid",
    "ContentStore",
    "EmbeddedStore",
    "IpfsStore",
    "FileTooLarge",
    "IntegrityError",
    "InvalidCid",
    "NodeError",
    "NodeUnreachable",
    "NotFound",
    "StorageError",
    "UnsupportedContent",
    "cid_of_bytes",
    "cid_of_file",
    "default_max_size",
    "default_store_dir",
    "open_store",
    "parse_cid",
]


def default_max_size() -> int:
    """`$DEEPSHARD_STORE_MAX_SIZE` in bytes (0 or more), else 2 GiB; `StorageError` for any other value."""
    return env_number(MAX_SIZE_ENV, DEFAULT_MAX_SIZE, int, unit="bytes", minimum=0, error=StorageError)


def open_store(
    *,
    api: str | None = None,
    store_dir: str | Path | None = None,
    timeout: float | None = None,
    max_size: int | None = None,
) -> ContentStore:
    """The configured store: an IPFS node when an API address is given or in $DEEPSHARD_IPFS_API,
    else the embedded store (in `store_dir`, else $DEEPSHARD_STORE_DIR, else the per-user data dir)."""
    api = api or os.environ.get(API_ENV) or None
    max_size = default_max_size() if max_size is None else max_size
    if api:
        return IpfsStore(api, timeout=timeout, max_size=max_size)
    return EmbeddedStore(store_dir, max_size=max_size)
