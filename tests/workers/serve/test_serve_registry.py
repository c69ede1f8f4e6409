"""Which weights a node may serve as version N (workers.serve.registry), against a real ModelRegistry on its own
anvil: the genesis serves without a folder, a later version only from a folder whose lineage and weights hash
match, or, once its shards are published, only weights with the hash the registry records; `deepshard serve`
without --dev refuses a version the registry does not hold."""

from __future__ import annotations

import json

import pytest
import torch

from workers.chain import ChainClient, deploy_network
from workers.chain.deploy import GENESIS_MODEL_CID
from workers.chain.deployments import DEPLOYMENTS_DIR_ENV
from workers.chain.localnode import dev_signer, start_anvil
from workers.chain.module import cid_to_chain
from workers.cli import main
from workers.ml.models import VERSION_FILE, load_base_model, loader_file_bytes, version_record_bytes
from workers.node.model_cli import write_version_folder
from workers.serve.cli import load_engine, node_app
from workers.serve.registry import BuiltVersion, VersionRecord, VersionRefused, check_version, read_version_record

DELTA_CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
WEIGHTS = "0x" + "ab" * 32
BASE = "0x" + "ba" * 32


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


def base() -> BuiltVersion:
    return BuiltVersion(BASE, {})


def rebuilds_to(weights_hash: str, loader_files=None):
    """A node's rebuild from the lineage that gives `weights_hash` and `loader_files` (the real one,
    `rebuilt_version`, needs the deltas in a content store: tests/workers/node covers `fetch_version`)."""
    return lambda version: BuiltVersion(weights_hash, loader_files or {})


def test_versions_are_tied_to_the_registry_lineage(chain):
    check_version(chain, 1, BASE, None, base=base)  # the genesis, from the named base model
    check_version(chain, 2, WEIGHTS, record(), base=base, rebuild=rebuilds_to(WEIGHTS))
    refusals = {
        "no such version": (3, record(version=3), rebuilds_to(WEIGHTS)),
        "no folder for a child version": (2, None, rebuilds_to(WEIGHTS)),
        "folder of another version": (2, record(version=1), rebuilds_to(WEIGHTS)),
        "another lineage": (2, record(delta_cids=[GENESIS_MODEL_CID]), rebuilds_to(WEIGHTS)),
        "other weights": (2, record(weights_hash="0x" + "cd" * 32), rebuilds_to(WEIGHTS)),
        "a folder consistent with itself only": (2, record(), rebuilds_to("0x" + "cd" * 32)),
        "no rebuild of an unpublished version": (2, record(), None),
        "version 1 that is not the base model": (1, record(version=1, delta_cids=[]), rebuilds_to(WEIGHTS)),
    }
    for case, (version, claim, rebuild) in refusals.items():
        try:
            check_version(chain, version, WEIGHTS, claim, base=base, rebuild=rebuild)
        except VersionRefused:
            continue
        pytest.fail(f"served despite {case}")


def test_a_bought_folder_relabelled_as_the_genesis_is_refused(chain, tmp_path):
    """A copy of version 2's folder with its record edited to `"version": 1, "lineage": []` served version 2's
    weights as deepshard-v1: the folder agreed with itself, and nothing compared it with the base model."""
    tiny = load_base_model("tiny", "cpu")
    with torch.no_grad():
        tiny.model.model.norm.weight.add_(1e-3)  # another version's weights
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    engine = load_engine("tiny", tmp_path)
    fake = {"version": 1, "base_model": "tiny", "lineage": [], "weights_hash": engine.weights_hash}
    (tmp_path / VERSION_FILE).write_bytes(version_record_bytes(fake))
    with pytest.raises(VersionRefused, match="version 1 is the base model, which hashes to 0x"):
        node_app(engine, chain, 1, "tiny", tmp_path)
    with pytest.raises(VersionRefused, match="holds version 1, not 2"):
        node_app(engine, chain, 2, "tiny", tmp_path)


EDITS = {
    "config.json": lambda config: {**config, "rope_theta": 1.0},
    "tokenizer_config.json": lambda config: {**config, "chat_template": "{{ 'pwned' }}"},
}


@pytest.mark.parametrize("edited", [*sorted(EDITS), "chat_template.jinja"])
def test_loader_files_of_an_unpublished_version_must_be_the_built_ones(chain, tmp_path, edited):
    """Correct tensors with an edited config.json (rope_theta), tokenizer or an added chat template were served as
    version 1 (checked only against the base's weights hash) or unpublished version 2 (only the rebuild's)."""
    tiny = load_base_model("tiny", "cpu")
    files = loader_file_bytes(tiny)
    genesis = lambda: BuiltVersion(tiny.weights_hash, files)  # noqa: E731
    for version, lineage in ((1, []), (2, [{"cid": DELTA_CID, "round": 1}])):
        folder = tmp_path / f"v{version}"
        description = {"version": version, "base_model": "tiny", "lineage": lineage, "weights_hash": tiny.weights_hash}
        write_version_folder(tiny, description, folder)  # what `deepshard model get` writes
        claim = read_version_record(folder)
        rebuild = rebuilds_to(tiny.weights_hash, files)
        check_version(chain, version, tiny.weights_hash, claim, base=genesis, rebuild=rebuild, folder=folder)
        if edited in EDITS:
            path = folder / edited
            path.write_text(json.dumps(EDITS[edited](json.loads(path.read_text()))))
            reason = f"{edited} differs from"
        else:
            (folder / edited).write_text("{{ 'pwned' }}")
            reason = f"holds {edited}, which is not among"
        with pytest.raises(VersionRefused, match=reason):
            check_version(chain, version, tiny.weights_hash, claim, base=genesis, rebuild=rebuild, folder=folder)


def test_once_shards_are_published_the_registry_weights_hash_decides(chain):
    """The registry records version 3's weights hash with its shard manifest: weights with that hash serve whatever
    lineage a folder claims (they are the version's, by the chain's record), and no folder record makes other
    weights version 3, not even one consistent with itself."""
    models = chain.contract("ModelRegistry")
    chain.transact(models.functions.grantRole(models.functions.PUBLISHER_ROLE().call(), chain.address))
    chain.transact(models.functions.registerVersion(2, 2, cid_to_chain(DELTA_CID), 0))
    unpublished = record(version=3, delta_cids=[DELTA_CID, DELTA_CID])
    check_version(chain, 3, WEIGHTS, unpublished, base=base, rebuild=rebuilds_to(WEIGHTS))
    published = "0x" + "ef" * 32
    chain.transact(models.functions.publishShards(3, cid_to_chain(DELTA_CID), bytes.fromhex(published[2:])))
    check_version(chain, 3, published, None, base=base)
    check_version(chain, 3, published, record(version=3, delta_cids=[], weights_hash=published), base=base)
    with pytest.raises(VersionRefused, match=f"the registry records {published} for version 3"):
        check_version(chain, 3, WEIGHTS, unpublished, base=base, rebuild=rebuilds_to(WEIGHTS))
    with pytest.raises(VersionRefused, match="holds version 2, not 3"):
        check_version(chain, 3, published, record(), base=base)


def test_version_file_is_read_with_clear_errors(tmp_path):
    (tmp_path / VERSION_FILE).symlink_to("/dev/zero")  # an endless file is refused, not read whole
    with pytest.raises(VersionRefused, match="over the 1,048,576-byte limit"):
        read_version_record(tmp_path)
    (tmp_path / VERSION_FILE).unlink()
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
