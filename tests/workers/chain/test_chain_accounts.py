"""Signers: env key, encrypted keystore round trip, and that keys never show up in reprs or errors."""

import json
import pickle

import pytest
from eth_account import Account

from workers.chain import LocalSigner, SignerUnavailable, load_signer
from workers.chain.accounts import KEYSTORE_ENV, KEYSTORE_PASSWORD_ENV, PRIVATE_KEY_ENV


@pytest.fixture
def keystore(tmp_path):
    """A fresh key encrypted like brownie's ~/.brownie/accounts/<id>.json (cheap KDF to stay fast)."""
    account = Account.create()
    path = tmp_path / "deployer.json"
    path.write_text(json.dumps(Account.encrypt(account.key, "correct horse", kdf="pbkdf2", iterations=1000)))
    return path, account


def test_keystore_round_trip_via_env(monkeypatch, keystore):
    path, account = keystore
    monkeypatch.setenv(KEYSTORE_ENV, str(path))
    monkeypatch.setenv(KEYSTORE_PASSWORD_ENV, "correct horse")
    signer = load_signer()
    assert signer.address == account.address


def test_keystore_password_prompt(monkeypatch, keystore):
    path, account = keystore
    monkeypatch.setenv(KEYSTORE_ENV, str(path))
    prompts = []
    signer = load_signer(prompt=lambda text: prompts.append(text) or "correct horse")
    assert signer.address == account.address
    assert prompts and str(path) in prompts[0]


def test_keystore_wrong_password(monkeypatch, keystore):
    path, _ = keystore
    monkeypatch.setenv(KEYSTORE_ENV, str(path))
    monkeypatch.setenv(KEYSTORE_PASSWORD_ENV, "wrong")
    with pytest.raises(SignerUnavailable, match="wrong password"):
        load_signer()


def test_keystore_missing_file(monkeypatch, tmp_path):
    monkeypatch.setenv(KEYSTORE_ENV, str(tmp_path / "nope.json"))
    with pytest.raises(SignerUnavailable, match="does not exist"):
        load_signer()


def test_no_key_configured():
    with pytest.raises(SignerUnavailable, match="no signing key.*DEEPSHARD_PRIVATE_KEY"):
        load_signer()


def test_both_sources_is_ambiguous(monkeypatch, keystore):
    monkeypatch.setenv(PRIVATE_KEY_ENV, Account.create().key.hex())
    monkeypatch.setenv(KEYSTORE_ENV, str(keystore[0]))
    with pytest.raises(SignerUnavailable, match="set only one"):
        load_signer()


def test_key_from_env_with_and_without_prefix(monkeypatch):
    account = Account.create()
    for text in (account.key.hex(), "0x" + account.key.hex().removeprefix("0x")):
        monkeypatch.setenv(PRIVATE_KEY_ENV, text)
        assert load_signer().address == account.address


def test_invalid_key_is_not_echoed(monkeypatch):
    bad_key = "0x" + "zz" * 32
    monkeypatch.setenv(PRIVATE_KEY_ENV, bad_key)
    with pytest.raises(SignerUnavailable) as raised:
        load_signer()
    assert bad_key not in str(raised.value) and "zzzz" not in str(raised.value)


def test_key_never_in_repr_and_not_picklable():
    account = Account.create()
    key_hex = account.key.hex().removeprefix("0x")
    signer = LocalSigner(account)
    for text in (repr(signer), str(signer), repr([signer]), repr({"signer": signer})):
        assert key_hex not in text.lower()
        assert account.address in text
    with pytest.raises(TypeError):
        pickle.dumps(signer)
