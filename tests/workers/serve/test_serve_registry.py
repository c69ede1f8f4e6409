"""Which weights a node may serve as version N (workers.serve.registry), against a real ModelRegistry on its own
anvil: the genesis serves without a folder, a later version only from a folder whose lineage and weights hash
match, or, once its shards are published, only weights with the hash the registry records; `deepshard serve`
without --dev refuses a version the registry does not hold."""

from __future__ import annotations

import json

import pytest

from workers.chain import ChainClient, deploy_network
from workers.chain.deploy import GENESIS_MODEL_CID
from workers.chain.deployments import DEPLOYMENTS_DIR_ENV
from workers.chain.localnode import dev_signer, start_anvil
from workers.chain.module import cid_to_chain
from workers.cli import main
from workers.ml.models import VERSION_FILE
from workers.serve.registry import VersionRecord, VersionRefused, check_version, read_version_record

DELTA_CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
WEIGHTS = "0x" + "ab" * 32


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A fresh network whose registry holds the genesis and one child version (registered by the deployer,
    granted the registrar role: the rounds' own flow is tested elsewhere)."""
    node = start_anvil()
    try:
        client = ChainClient(node.url, dev_signer(0), deployments_dir=tmp_path_factory.mktemp("deployments"))
        deploy_network(client)
        models = client.contract("ModelRegistry")
        client.transact(models.functions.grantRole(models.functions.REGISTRAR_ROLE().call(), client.address))
        client.transact(models.functions.registerVersion(1, 1, cid_to_chain(DELTA_CID), 0))
        yield client
    finally:
        node.stop()


def record(**change) -> VersionRecord:
    fields = dict(version=2, base_model="tiny", delta_cids=[DELTA_CID], weights_hash=WEIGHTS)
    return VersionRecord(**{**fields, **change})


def test_versions_are_tied_to_the_registry_lineage(chain):
    check_version(chain, 1, WEIGHTS, None)  # the genesis, from the named base model
    check_version(chain, 2, WEIGHTS, record())
    refusals = {
        "no such version": (3, record(version=3)),
        "no folder for a child version": (2, None),
        "folder of another version": (2, record(version=1)),
        "another lineage": (2, record(delta_cids=[GENESIS_MODEL_CID])),
        "other weights": (2, record(weights_hash="0x" + "cd" * 32)),
    }
    for case, (version, claim) in refusals.items():
        try:
            check_version(chain, version, WEIGHTS, claim)
        except VersionRefused:
            continue
        pytest.fail(f"served despite {case}")


def test_once_shards_are_published_the_registry_weights_hash_decides(chain):
    """The registry records version 3's weights hash with its shard manifest: weights with that hash serve whatever
    lineage a folder claims (they are the version's, by the chain's record), and no folder record makes other
    weights version 3, not even one consistent with itself."""
    models = chain.contract("ModelRegistry")
    chain.transact(models.functions.grantRole(models.functions.PUBLISHER_ROLE().call(), chain.address))
    chain.transact(models.functions.registerVersion(2, 2, cid_to_chain(DELTA_CID), 0))
    check_version(chain, 3, WEIGHTS, record(version=3, delta_cids=[DELTA_CID, DELTA_CID]))  # not published: lineage
    published = "0x" + "ef" * 32
    chain.transact(models.functions.publishShards(3, cid_to_chain(DELTA_CID), bytes.fromhex(published[2:])))
    check_version(chain, 3, published, None)
    check_version(chain, 3, published, record(version=3, delta_cids=[], weights_hash=published))
    with pytest.raises(VersionRefused, match=f"the registry records {published} for version 3"):
        check_version(chain, 3, WEIGHTS, record(version=3, delta_cids=[DELTA_CID, DELTA_CID]))
    with pytest.raises(VersionRefused, match="holds version 2, not 3"):
        check_version(chain, 3, published, record())


def test_version_file_is_read_with_clear_errors(tmp_path):
    with pytest.raises(VersionRefused, match="cannot be read"):
        read_version_record(tmp_path)
    (tmp_path / VERSION_FILE).write_text(json.dumps({"version": 2}))
    with pytest.raises(VersionRefused, match="needs version"):
        read_version_record(tmp_path)
    # What `deepshard model get` writes (workers.node.model_cli.fetch_version's description).
    description = {
        "version": 2,
        "base_model": "tiny",
        "lineage": [{"cid": DELTA_CID, "round": 1, "spec_hash": "0x" + "01" * 32}],
        "weights_hash": WEIGHTS,
        "base_weights_hash": "0x" + "02" * 32,
    }
    (tmp_path / VERSION_FILE).write_text(json.dumps(description))
    assert read_version_record(tmp_path) == record()


def test_serve_without_dev_refuses_an_unregistered_version(chain, capsys, monkeypatch):
    monkeypatch.setenv(DEPLOYMENTS_DIR_ENV, str(chain.deployments_dir))
    assert main(["serve", "--model", "tiny", "--version", "9", "--rpc", chain.w3.provider.endpoint_uri]) == 1
    assert "version 9 is not registered" in capsys.readouterr().err
