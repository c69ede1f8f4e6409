from eth_utils import keccak

from tests.contracts.conftest import reverts
from tests.contracts.training.conftest import GENESIS_CID, delta_cid


def test_genesis_is_version_one(model_registry):
    genesis = model_registry.getVersion(1)
    assert model_registry.latestVersion() == 1
    assert genesis["parent"] == 0 and genesis["round"] == 0 and genesis["deltaCid"] == "0x" + GENESIS_CID.hex()


def test_registrar_registers_children_and_lineage_walks_back(model_registry, gov, accounts):
    registrar = accounts[8]
    model_registry.grantRole(model_registry.REGISTRAR_ROLE(), registrar, {"from": gov})
    tx = model_registry.registerVersion(1, 7, delta_cid("a"), 100, {"from": registrar})
    assert tx.return_value == 2 and tx.events["VersionRegistered"]["parent"] == 1
    model_registry.registerVersion(2, 8, delta_cid("b"), 50, {"from": registrar})
    assert list(model_registry.lineage(3, 10)) == [3, 2, 1]
    assert list(model_registry.lineage(3, 2)) == [3, 2]
    assert [model_registry.getVersion(v)["valueCreated"] for v in (2, 3)] == [100, 50]
    with reverts("UnknownVersion", 9):
        model_registry.registerVersion(9, 1, delta_cid("c"), 0, {"from": registrar})
    with reverts("InvalidCid"):
        model_registry.registerVersion(1, 1, b"", 0, {"from": registrar})


def test_only_the_registrar_registers(model_registry, outsider):
    with reverts("AccessControlUnauthorizedAccount"):
        model_registry.registerVersion(1, 1, delta_cid("a"), 0, {"from": outsider})


def test_shards_and_the_weights_hash_are_published_once(model_registry, gov, accounts, outsider):
    publisher = accounts[8]
    weights = keccak(b"the weights")
    with reverts("AccessControlUnauthorizedAccount"):
        model_registry.publishShards(1, delta_cid("shards"), weights, {"from": outsider})
    model_registry.grantRole(model_registry.PUBLISHER_ROLE(), publisher, {"from": gov})
    with reverts("InvalidWeightsHash"):
        model_registry.publishShards(1, delta_cid("shards"), b"\x00" * 32, {"from": publisher})
    with reverts("InvalidCid"):
        model_registry.publishShards(1, b"", weights, {"from": publisher})
    tx = model_registry.publishShards(1, delta_cid("shards"), weights, {"from": publisher})
    assert tx.events["ShardManifestPublished"]["weightsHash"] == "0x" + weights.hex()
    version = model_registry.getVersion(1)
    assert version["shardManifestCid"] == "0x" + delta_cid("shards").hex()
    assert version["weightsHash"] == "0x" + weights.hex()
    with reverts("AlreadyPublished", 1):
        model_registry.publishShards(1, delta_cid("other"), keccak(b"other"), {"from": publisher})
    with reverts("UnknownVersion", 2):
        model_registry.publishShards(2, delta_cid("x"), weights, {"from": publisher})
