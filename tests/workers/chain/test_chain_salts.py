"""The one salt store of every commit-reveal scheme: files written once, private, never replaced; and the salts the
two stores it replaced left on users' disks (curators' votes, round commitments) found where they are and read."""

from __future__ import annotations

import json
import stat

import pytest
from eth_account import Account

from workers.chain import ChainClient
from workers.chain.salts import VOTES_DIR_ENV, Salt, SaltKey, SaltNotFound, SaltStore, default_salts_dir
from workers.rounds.chain import TrainingRoundsClient

CHAIN = 31337


def legacy_json(value: dict) -> bytes:
    """A file as the former stores wrote it."""
    return json.dumps(value, indent=2, sort_keys=True).encode() + b"\n"


def test_a_salt_is_written_once_privately_and_never_replaced(tmp_path, monkeypatch):
    store = SaltStore(tmp_path)
    key = SaltKey(CHAIN, Account.create().address.lower(), "fingerprints", 7, Account.create().address)
    salt = Salt(key, ((1, 2), (3, 4)), b"\x01" * 32, b"\x02" * 32)
    assert salt.value == [[1, 2], [3, 4]]  # plain JSON, as it reads back
    assert store.save(salt) == salt == store.load(key)
    path = store.path(key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path == tmp_path / str(CHAIN) / key.contract / f"round-7-fingerprints-{key.account}.json"
    # A second writer gets the stored salt back: the salt a commitment may already use is kept.
    assert store.save(Salt(key, [[9, 9]], b"\x03" * 32, b"\x04" * 32)) == salt
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left
    assert store.load(SaltKey(CHAIN, key.contract, "fingerprints", 8, key.account)) is None
    with pytest.raises(ValueError, match="kind must be one of"):
        SaltKey(CHAIN, key.contract, "ballot", 7, key.account)
    monkeypatch.setenv(VOTES_DIR_ENV, str(tmp_path / "elsewhere"))
    assert default_salts_dir() == tmp_path / "elsewhere" == SaltStore().root


def test_salts_left_by_the_former_vote_and_commitment_stores_are_found_and_read(tmp_path):
    contract, account = Account.create().address, Account.create().address
    folder = tmp_path / str(CHAIN) / contract
    folder.mkdir(parents=True)
    # workers.data.chain.VoteStore: <id>-<curator>.json
    (folder / f"5-{account}.json").write_bytes(
        legacy_json(
            {
                "chain_id": CHAIN,
                "contract": contract,
                "submission_id": 5,
                "curator": account,
                "scores": [80, 75, 70, 85, 70],
                "salt": "0x" + "11" * 32,
                "commitment": "0x" + "22" * 32,
            }
        )
    )
    # workers.rounds.commits.CommitmentStore: round-<id>-<kind>-<account>.json
    (folder / f"round-3-delta-{account}.json").write_bytes(
        legacy_json(
            {
                "chain_id": CHAIN,
                "contract": contract,
                "round_id": 3,
                "account": account,
                "kind": "delta",
                "value": "bafkreidelta",
                "salt": "0x" + "33" * 32,
                "commitment": "0x" + "44" * 32,
            }
        )
    )
    store = SaltStore(tmp_path)
    vote = store.load(SaltKey(CHAIN, contract, "vote", 5, account))
    assert (vote.value, vote.salt, vote.commitment) == ([80, 75, 70, 85, 70], b"\x11" * 32, b"\x22" * 32)
    delta = store.load(SaltKey(CHAIN, contract, "delta", 3, account))
    assert (delta.value, delta.salt, delta.commitment) == ("bafkreidelta", b"\x33" * 32, b"\x44" * 32)
    # Rewritten elsewhere in today's format, the same salt reads back equal.
    assert SaltStore(tmp_path / "new").save(vote) == SaltStore(tmp_path / "new").load(vote.key) == vote


def test_a_foreign_or_damaged_file_is_refused(tmp_path):
    store = SaltStore(tmp_path)
    key = SaltKey(CHAIN, Account.create().address, "vote", 1, Account.create().address)
    store.save(Salt(key, [1, 2, 3, 4, 5], b"\x01" * 32, b"\x02" * 32))
    other = SaltKey(CHAIN, key.contract, "vote", 2, key.account)
    store.path(other).write_bytes(store.path(key).read_bytes())  # a copy under another submission's name
    with pytest.raises(SaltNotFound, match="belongs to another commitment"):
        store.load(other)
    store.path(other).write_bytes(b"{not json")
    with pytest.raises(SaltNotFound, match="is unreadable"):
        store.load(other)


def test_a_former_round_commitment_is_revealable(network, anvil, deployments_dir, tmp_path):
    """The salt file a trainer kept before this store passes the client's check against the contract's commitment
    function, so its reveal sends what was committed."""
    trainer = Account.create()
    rounds = TrainingRoundsClient(ChainClient(anvil.url, deployments_dir=deployments_dir), SaltStore(tmp_path))
    cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    salt = b"\x5a" * 32
    commitment = rounds.commitment_for("delta", cid, salt, trainer.address)
    folder = tmp_path / str(rounds.chain.chain_id) / rounds.contract.address
    folder.mkdir(parents=True)
    (folder / f"round-9-delta-{trainer.address}.json").write_bytes(
        legacy_json(
            {
                "chain_id": rounds.chain.chain_id,
                "contract": rounds.contract.address,
                "round_id": 9,
                "account": trainer.address,
                "kind": "delta",
                "value": cid,
                "salt": "0x" + salt.hex(),
                "commitment": "0x" + commitment.hex(),
            }
        )
    )
    stored = rounds.salts.load(SaltKey(rounds.chain.chain_id, rounds.contract.address, "delta", 9, trainer.address))
    rounds.check_salt(stored)  # raises if the salt and value do not give the commitment
    damaged = Salt(stored.key, cid, b"\x00" * 32, stored.commitment)
    with pytest.raises(SaltNotFound, match="is inconsistent"):
        rounds.check_salt(damaged)
