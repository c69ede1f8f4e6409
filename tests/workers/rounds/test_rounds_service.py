"""`deepshard worker`'s preparation without starting Celery: the signer from --account, the account's
registration and queues, and the catch-up step queued for the current round."""

from __future__ import annotations

import json
import os

import pytest
from eth_utils import to_checksum_address
from eth_account import Account

from workers.chain import InvalidRequest
from workers.chain.accounts import KEYSTORE_ENV, KEYSTORE_PASSWORD_ENV, PRIVATE_KEY_ENV
from workers.ml.spec import TrainingSpec
from workers.rounds import service
from workers.tasks.rounds import (
    REGISTRATION_TTL,
    accounts_key,
    deregister_account,
    register_account,
    registered_accounts,
)


def test_account_option_loads_the_keystore_and_keeps_a_typed_password(tmp_path, monkeypatch):
    account = Account.create()
    keystore = tmp_path / "trainer.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "correct horse")))
    monkeypatch.setenv(PRIVATE_KEY_ENV, "0x" + "11" * 32)  # --account wins over the environment's key
    monkeypatch.delenv(KEYSTORE_PASSWORD_ENV, raising=False)  # tracked: whatever the worker sets is undone
    monkeypatch.delenv(KEYSTORE_ENV, raising=False)
    monkeypatch.setattr("getpass.getpass", lambda prompt: "correct horse")
    signer = service.load_worker_signer(str(keystore))
    assert signer.address == account.address
    assert PRIVATE_KEY_ENV not in os.environ
    assert os.environ[KEYSTORE_ENV] == str(keystore)
    assert os.environ[KEYSTORE_PASSWORD_ENV] == "correct horse"  # for the pool's children


def test_plan_registers_the_account_and_queues_a_catch_up_step(net, redis_clean):
    net.accept_datasets(1)
    round_id = net.rounds().open_round(TrainingSpec(base_model="tiny").spec_hash()).round_id
    trainer = net.trainer()
    plan = service.plan_worker("trainer", trainer.chain, redis_clean)
    address = trainer.chain.address
    assert plan.queues == ["trainer", f"trainer.{address}"] and plan.catch_up == f"trainer_step({round_id})"
    assert address in registered_accounts(redis_clean, trainer.chain.chain_id, "trainer")
    (raw,) = redis_clean.lrange(f"trainer.{address}", 0, -1)
    assert json.loads(raw)["headers"]["task"] == "workers.tasks.rounds.trainer_step"

    keeper = service.plan_worker("keeper", net.admin, redis_clean)
    assert keeper.queues == ["keeper"] and keeper.catch_up == "keeper_step(current round)"
    assert redis_clean.llen("keeper") == 1
    with pytest.raises(InvalidRequest, match="role must be one of"):
        service.plan_worker("informant", net.admin, redis_clean)


def test_a_registration_lapses_without_heartbeats_and_a_beat_restores_it(redis_clean):
    chain_id = 31337
    gone, alive = to_checksum_address("0x" + "ab" * 20), to_checksum_address("0x" + "cd" * 20)
    register_account(redis_clean, chain_id, "evaluator", gone)
    assert registered_accounts(redis_clean, chain_id, "evaluator") == [gone]
    key = accounts_key(chain_id, "evaluator")
    # Its last beat just over the TTL ago: the watcher no longer queues tasks for this worker.
    redis_clean.zadd(key, {gone: redis_clean.zscore(key, gone) - REGISTRATION_TTL - 1})
    assert registered_accounts(redis_clean, chain_id, "evaluator") == []
    register_account(redis_clean, chain_id, "evaluator", alive)  # any beat drops lapsed registrations
    assert redis_clean.zscore(key, gone) is None
    register_account(redis_clean, chain_id, "evaluator", gone)  # the worker is back
    assert registered_accounts(redis_clean, chain_id, "evaluator") == sorted([gone, alive])
    deregister_account(redis_clean, chain_id, "evaluator", alive.lower())  # a worker stopping
    assert registered_accounts(redis_clean, chain_id, "evaluator") == [gone]
