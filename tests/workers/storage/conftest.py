"""Fixtures for the storage tests: the session's real js-ipfs daemon (`js_ipfs`, tests/workers/conftest.py), fresh
embedded stores per test.

The sample files are pseudo-random from fixed seeds, written once per session; the sizes sit on the
chunking boundaries (0, 1, one chunk, one chunk + 1) plus a 50 MB file whose DAG has two levels.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.storage import API_ENV, MAX_SIZE_ENV, STORE_DIR_ENV, TIMEOUT_ENV, EmbeddedStore, IpfsStore
from workers.storage.testing import sample_bytes
from workers.storage.unixfs import CHUNK_SIZE

SAMPLE_SIZES = {
    "empty": 0,
    "one-byte": 1,
    "one-chunk": CHUNK_SIZE,
    "chunk-plus-one": CHUNK_SIZE + 1,
    "50MB": 50_000_000,
}
# Short, so the tests of missing content stay fast; the node honours it, the client waits 2 s longer. Only the
# tests of a missing CID or a dead node use it: ordinary calls get `IPFS_TIMEOUT`, so a loaded machine (a 50 MB add
# on a busy CPU) never fails a test that waits for content that exists.
MISSING_TIMEOUT = 1.5
IPFS_TIMEOUT = 120.0


@pytest.fixture(scope="session")
def sample_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("samples")
    files = {}
    for name, size in SAMPLE_SIZES.items():
        files[name] = folder / f"{name}.bin"
        files[name].write_bytes(sample_bytes(size))
    return files


@pytest.fixture
def ipfs_timeout() -> float:
    return MISSING_TIMEOUT


@pytest.fixture
def ipfs_store(js_ipfs):
    with IpfsStore(js_ipfs.api, timeout=IPFS_TIMEOUT) as store:
        yield store


@pytest.fixture
def impatient_ipfs_store(js_ipfs, ipfs_timeout):
    """A store that gives up on missing content after `ipfs_timeout` seconds."""
    with IpfsStore(js_ipfs.api, timeout=ipfs_timeout) as store:
        yield store


@pytest.fixture
def embedded_store(tmp_path):
    return EmbeddedStore(tmp_path / "store")


@pytest.fixture(autouse=True)
def clean_storage_env(monkeypatch):
    """No node address, store directory or limit leaks in from the developer's shell."""
    for name in (API_ENV, STORE_DIR_ENV, TIMEOUT_ENV, MAX_SIZE_ENV):
        monkeypatch.delenv(name, raising=False)
