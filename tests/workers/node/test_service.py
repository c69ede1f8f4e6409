"""`deepshard worker`'s preparation without starting Celery: the signer from --account (its password asked once
and kept out of the environment), the account's registration and queues, and the catch-up steps queued for the
current round and the open submissions."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from eth_account import Account
from eth_utils import to_checksum_address
from netkit import GOOD_VOTE, TEST_REDIS_URL, sample_datasets

from workers.chain import InvalidRequest
from workers.chain.accounts import KEYSTORE_ENV, KEYSTORE_PASSWORD_ENV, PRIVATE_KEY_ENV
from workers.chain.deployments import DEPLOYMENTS_DIR_ENV
from workers.ml.spec import TrainingSpec
from workers.node import service
from workers.node.registry import (
    REGISTRATION_TTL,
    accounts_key,
    deregister_account,
    register_account,
    registered_accounts,
)
from workers.storage import open_store


def queued(client, queue: str) -> list[tuple[str, list]]:
    """(task, args) of each message waiting in a Celery queue, oldest first (kombu pushes on the left)."""
    return [
        (json.loads(raw)["headers"]["task"], json.loads(base64.b64decode(json.loads(raw)["body"]))[0])
        for raw in reversed(client.lrange(queue, 0, -1))
    ]


def test_account_option_loads_the_keystore_and_keeps_the_password_out_of_the_environment(tmp_path, monkeypatch):
    account = Account.create()
    keystore = tmp_path / "trainer.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "correct horse")))
    monkeypatch.setenv(PRIVATE_KEY_ENV, "0x" + "11" * 32)  # --account wins over the environment's key
    monkeypatch.delenv(KEYSTORE_PASSWORD_ENV, raising=False)
    monkeypatch.delenv(KEYSTORE_ENV, raising=False)
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "correct horse")
    signer = service.load_worker_signer(str(keystore))
    assert signer.address == account.address and len(prompts) == 1
    assert KEYSTORE_PASSWORD_ENV not in os.environ and KEYSTORE_ENV not in os.environ
    assert os.environ[PRIVATE_KEY_ENV] == "0x" + "11" * 32  # nothing of the environment changed


def test_plan_registers_the_account_and_queues_catch_up_steps(net, redis_clean):
    (accepted,) = net.accept_datasets(1)
    round_id = net.rounds().open_round(TrainingSpec(base_model="tiny").spec_hash()).round_id
    trainer = net.trainer()
    plan = service.plan_worker("trainer", trainer.chain, redis_clean)
    address = trainer.chain.address
    assert plan.queues == ["trainer", f"trainer.{address}"] and plan.catch_up == [f"rounds.trainer_step({round_id})"]
    assert address in registered_accounts(redis_clean, trainer.chain.chain_id, "trainer")
    assert queued(redis_clean, f"trainer.{address}") == [("workers.tasks.rounds.trainer_step", [round_id])]

    # A submission awaiting its panel: the keeper catches up on it (and on the current round); the accepted one
    # needs nothing more from a keeper (every seat revealed).
    informant = net.informant
    awaiting = informant.submit(sample_datasets(4)[2], 200 * 10**18, open_store(store_dir=net.store_dir)).submission_id
    keeper = service.plan_worker("keeper", net.admin, redis_clean)
    assert keeper.queues == ["keeper"]
    assert keeper.catch_up == ["rounds.keeper_step(current)", f"consensus.keeper_step({awaiting})"]
    assert queued(redis_clean, "keeper") == [
        ("workers.tasks.rounds.keeper_step", [None]),
        ("workers.tasks.consensus.keeper_step", [awaiting]),
    ]

    # A curator catches up on the submissions where its seat is not settled: the new one once drawn (a vote with
    # a deadline) first, then the accepted one (nobody claimed).
    curator = net.curators[0]
    net.mine_to(informant.submission(awaiting).seed_block + 1)
    informant.draw(awaiting)
    curator.vote(awaiting, GOOD_VOTE)
    plan = service.plan_worker("curator", curator.chain, redis_clean)
    assert plan.queues == ["curator", f"curator.{curator.chain.address}"]
    assert plan.catch_up == [f"consensus.curate({awaiting})", f"consensus.curate({accepted})"]
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


def test_a_trainer_worker_refuses_to_start_when_a_spec_allows_a_job_longer_than_the_visibility_timeout(
    net, redis_clean
):
    trainer = net.account(role="TRAINER", staked=2_000)
    spec = TrainingSpec(base_model="tiny", steps=100_000)  # 100,000 × 4 × 64 tokens at 200 tokens/s, + 900 s: 128,900 s
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DEEPSHARD_")},
        DEPLOYMENTS_DIR_ENV: str(net.deployments),
        "DEEPSHARD_REDIS_URL": TEST_REDIS_URL,
        PRIVATE_KEY_ENV: net.keys[trainer.address],
        "DEEPSHARD_TRAINING_SPEC": spec.canonical_json().decode(),
    }
    refused = subprocess.run(
        [sys.executable, "-m", "workers.cli", "worker", "--role", "trainer", "--rpc", net.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.startswith("error: a job under TrainingSpec ")
    assert "may run 128,900 s, longer than the visibility timeout of 3,600 s" in refused.stderr
    assert "set DEEPSHARD_VISIBILITY_TIMEOUT to at least 128,900 on every worker" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_worker_refuses_an_account_without_its_roles_stake_or_pool_bond(net, redis_clean):
    unstaked = net.account()
    with pytest.raises(
        InvalidRequest, match=r"stakes 0 DSH as TRAINER, the minimum is 1,000 DSH: run `deepshard stake"
    ):
        service.plan_worker("trainer", unstaked, redis_clean)
    outside_pool = net.account(role="EVALUATOR", staked=2_000)
    with pytest.raises(InvalidRequest, match=r"has not joined the evaluator pool.*`deepshard round join-pool"):
        service.plan_worker("evaluator", outside_pool, redis_clean)
    no_eth = net.account(dsh=0)
    net.admin.w3.provider.make_request("anvil_setBalance", [no_eth.address, "0x0"])
    with pytest.raises(InvalidRequest, match="has no ETH to pay for gas"):
        service.plan_worker("keeper", no_eth, redis_clean)
    assert not redis_clean.keys("deepshard:*:workers:*")  # refused before registering


def test_worker_role_is_accepted_in_any_case():
    from workers.cli import build_parser

    assert build_parser("worker").parse_args(["worker", "--role", "TRAINER"]).role == "trainer"
