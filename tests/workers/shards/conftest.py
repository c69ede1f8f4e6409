"""Fixtures of the shard tests: the tiny model cut one decoder layer per shard (6 shards), five storage nodes with
one embedded store each, R = 3 holders per shard, and the version published once per session.

Holders are chosen by `shardkit.rendezvous`, a stand-in local to these tests.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from shardkit import NODES, REPLICATION, VERSION, rendezvous

from workers.ml.models import load_base_model
from workers.shards import buyer_keypair, new_version_key, publish_version, shard_version
from workers.storage import EmbeddedStore


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread():
    """One intra-op thread: two OpenMP threads competing on a shared 2-core box run far slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny():
    return load_base_model("tiny", device="cpu")


@pytest.fixture(scope="session")
def sharded(tiny):
    return shard_version(tiny.model, tiny.tokenizer, layers_per_shard=1)


@pytest.fixture(scope="session")
def assignment(sharded) -> dict[int, list[str]]:
    return {shard.index: rendezvous(VERSION, shard.index, NODES, REPLICATION) for shard in sharded.shards}


@pytest.fixture(scope="session")
def version_key() -> bytes:
    return new_version_key()


@pytest.fixture(scope="session")
def published(tmp_path_factory, sharded, version_key, assignment):
    """(manifest, store folder per node): the version sealed and pinned once, in one embedded store per node."""
    root = tmp_path_factory.mktemp("published")
    folders = {node: root / node for node in NODES}
    stores = {node: EmbeddedStore(folder) for node, folder in folders.items()}
    manifest = publish_version(
        sharded, version_key, version=VERSION, base_model="tiny", assignment=assignment, stores=stores
    )
    return manifest, folders


@pytest.fixture
def shared_stores(published):
    """The session's stores, for tests that only read them."""
    return {node: EmbeddedStore(folder) for node, folder in published[1].items()}


@pytest.fixture
def stores(published, tmp_path):
    """A private copy of every node's store for one test, which it may damage or delete."""
    _, folders = published
    copies = {}
    for node, folder in folders.items():
        shutil.copytree(folder, tmp_path / "stores" / node)
        copies[node] = EmbeddedStore(tmp_path / "stores" / node)
    return copies


@pytest.fixture
def manifest(published):
    return published[0]


@pytest.fixture(scope="session")
def buyer():
    return buyer_keypair()
