"""Every JSON document read from outside, nested deeper than Python's `json` can recurse (issue 10's kind): each
reader answers with its own clear error naming the file or field, never a RecursionError. Through the CLI where
one reads the document; dataset lines and delta headers have their own tests (tests/workers/data/
test_data_hostile.py, tests/workers/ml/test_ml_delta.py, tests/workers/tasks/test_training_tasks.py)."""

from __future__ import annotations

import pytest
from eth_account import Account

from workers import cli
from workers.chain.accounts import KEYSTORE_ENV, KEYSTORE_PASSWORD_ENV, PRIVATE_KEY_ENV
from workers.chain.artifacts import artifacts_dir, load_artifact
from workers.chain.deployments import DEPLOYMENTS_DIR_ENV
from workers.chain.salts import SaltKey, SaltNotFound, SaltStore
from workers.data.manifest import DatasetManifest, ManifestError
from workers.ml.spec import SpecError, TrainingSpec

#: 5,000 levels: past Python's recursion limit, so an unbounded json.loads raises RecursionError.
DEEP = b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}"


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_round_open_with_a_deep_spec_file(capsys, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_bytes(DEEP)
    assert cli.main(["round", "open", "--spec", str(spec)]) == 1
    assert f"{spec} is not a valid TrainingSpec: spec: nested more than 2 levels deep" in error_line(capsys)


def test_stake_with_a_deep_deployment_record(capsys, tmp_path, monkeypatch, anvil):
    (tmp_path / "31337.json").write_bytes(DEEP)
    monkeypatch.setenv(DEPLOYMENTS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(PRIVATE_KEY_ENV, Account.create().key.hex())
    assert cli.main(["stake", "trainer", "1000", "--rpc", anvil.url]) == 1
    line = error_line(capsys)
    assert "deployment record" in line and "its JSON: nested more than 32 levels deep" in line


def test_stake_with_a_deep_keystore(capsys, tmp_path, monkeypatch, anvil, network):
    keystore = tmp_path / "key.json"
    keystore.write_bytes(DEEP)
    monkeypatch.setenv(KEYSTORE_ENV, str(keystore))
    monkeypatch.setenv(KEYSTORE_PASSWORD_ENV, "unused")
    assert cli.main(["stake", "trainer", "1000", "--rpc", anvil.url]) == 1
    assert f"keystore {keystore} is unreadable: its JSON: nested more than 32 levels deep" in error_line(capsys)


def test_a_deep_salt_file_is_unreadable_not_a_crash(tmp_path):
    store = SaltStore(tmp_path)
    key = SaltKey(31337, "0x" + "11" * 20, "vote", 1, "0x" + "22" * 20)
    store.path(key).parent.mkdir(parents=True)
    store.path(key).write_bytes(DEEP)
    with pytest.raises(SaltNotFound, match="is unreadable .*salt file: nested more than 32 levels deep"):
        store.load(key)


@pytest.mark.parametrize(
    ("parse", "error", "message"),
    [
        (DatasetManifest.from_json, ManifestError, "dataset manifest: nested more than 1 levels deep"),
        (TrainingSpec.from_json, SpecError, "spec: nested more than 2 levels deep"),
    ],
)
def test_documents_fetched_by_cid_are_bounded(parse, error, message):
    """Manifests and specs arrive by CID from other nodes (workers.data.chain, workers.rounds.specs)."""
    with pytest.raises(error, match=message):
        parse(DEEP)


def test_every_compiled_artifact_fits_its_bound():
    """The bound must never refuse a real document: artifacts carry the compiler's AST, the deepest JSON we read
    (FingerprintAggregation's is 32 levels)."""
    names = sorted(path.stem for path in artifacts_dir().glob("*.json"))
    assert "FingerprintAggregation" in names
    for name in names:
        assert load_artifact(name).abi is not None
