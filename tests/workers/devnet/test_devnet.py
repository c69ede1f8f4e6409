"""Done means (issue 14): `deepshard devnet up` on free ports and a Redis database of its own, a dataset submitted
through the CLI as a user would, then nothing but the devnet's own workers: the curator accepts it, the keeper
opens a round on it with the sample spec, the trainer trains on `tiny`, the evaluator fingerprints, the keeper
finalizes as soon as the panel revealed; `model get` writes the new version as a folder transformers loads;
`devnet down` leaves none of the processes it started.

Every command runs as a child process (`python -m workers.cli ...`) with a user's environment: no DEEPSHARD_*
setting but those `devnet env` prints.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from services import redis_url_for

from workers.chain import ChainClient
from workers.chain.localnode import free_port
from workers.data import SAMPLES_DIR
from workers.devnet.network import MARKER_KEY, process_start_ticks
from workers.rounds.chain import TrainingRoundsClient

#: Database of the devnet on the test Redis server (the node tests use 14, the task tests 12 and 13).
DEVNET_REDIS_DB = 11
#: Generous bounds: the round itself takes about 200 blocks of one second.
UP_TIMEOUT = 400
ROUND_TIMEOUT = 900


def _user_environment(folder: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEEPSHARD_")}
    environment["DEEPSHARD_DEVNET_DIR"] = str(folder)
    return environment


def _cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _exports(text: str) -> dict[str, str]:
    """The variables of `export NAME=value` lines."""
    out = {}
    for line in text.splitlines():
        words = shlex.split(line)
        assert words[0] == "export", line
        name, _, value = words[1].partition("=")
        out[name] = value
    return out


def _logs(folder: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(folder.glob("logs/*.log"))
    )


def test_devnet_curates_a_submitted_dataset_and_trains_a_new_version_by_itself(tmp_path, capsys):
    started_at = time.monotonic()
    phases: dict[str, float] = {}

    def mark(name: str) -> None:
        phases[name] = time.monotonic() - started_at

    folder = tmp_path / "devnet"
    redis_url = redis_url_for(DEVNET_REDIS_DB)
    env = _user_environment(folder)
    port = free_port()
    started: list[tuple[int, int]] = []
    try:
        up = _cli(["devnet", "up", "--port", str(port), "--redis", redis_url], env, timeout=UP_TIMEOUT)
        assert up.returncode == 0, up.stdout + up.stderr + _logs(folder)
        mark("up")
        state = json.loads((folder / "devnet.json").read_text())
        started = [(p["pid"], p["start_ticks"]) for p in state["processes"]]
        assert sorted(p["role"] for p in state["processes"]) == ["chain", "curator", "evaluator", "keeper", "trainer"]

        status = json.loads(_cli(["devnet", "status", "--json"], env).stdout)
        assert status["rpc_url"] == f"http://127.0.0.1:{port}" and status["redis_answers"]
        assert all(p["running"] for p in status["processes"])
        assert all(Path(p["log"]).is_file() for p in status["processes"] if p["role"] != "chain")

        user = {**env, **_exports(_cli(["devnet", "env"], env).stdout)}
        submit = _cli(["data", "submit", str(SAMPLES_DIR / "good.jsonl"), "--bond", "200"], user)
        assert submit.returncode == 0, submit.stderr
        assert "submission 1: bond of 200 DSH locked" in submit.stdout
        mark("submitted")

        chain = ChainClient(status["rpc_url"], deployments_dir=folder / "deployments")
        rounds = TrainingRoundsClient(chain)
        deadline = time.monotonic() + ROUND_TIMEOUT
        while int(rounds.models.functions.latestVersion().call()) < 2:
            if "round opened" not in phases and rounds.round_count():
                mark("round opened")
            current = rounds.current_round()
            assert current is None or current.status != "Failed", "the round failed\n" + _logs(folder)
            assert time.monotonic() < deadline, "no new version within the bound\n" + _logs(folder)
            time.sleep(2)

        mark("version 2 registered")
        state_1 = rounds.round(1)
        outcome = rounds.outcome(state_1)
        assert outcome.status == "Finalized" and outcome.new_version == 2
        # Finalized as soon as the panel revealed, not after the reveal window.
        assert outcome.block <= state_1.eval_reveal_deadline

        listed = json.loads(_cli(["data", "list", "--json"], user).stdout)
        assert [(d["id"], d["status"], d["in_round"]) for d in listed] == [(1, "Accepted", True)]
        overview = json.loads(_cli(["status", "--json"], user).stdout)
        assert overview["latest_version"] == {"id": 2, "round": 1}
        text = _cli(["status"], user).stdout
        assert re.search(r"^TRAINER\s+2,000\s+1,000$", text, re.M), text
        assert "round #1: Finalized" in text and "latest model version: 2 (round #1)" in text

        out = tmp_path / "version-2"
        got = _cli(["model", "get", "2", "--out", str(out)], user, timeout=600)
        assert got.returncode == 0, got.stderr
        description = json.loads((out / "deepshard-version.json").read_text())
        assert description["base_model"] == "tiny"
        assert [d["cid"] for d in description["lineage"]] == [rounds.version_cid(2)]

        from transformers import AutoModelForCausalLM, AutoTokenizer

        from workers.ml.models import weights_hash

        loaded = AutoModelForCausalLM.from_pretrained(out)
        assert AutoTokenizer.from_pretrained(out)("hello")["input_ids"]
        assert weights_hash(loaded) == description["weights_hash"] != description["base_weights_hash"]
        mark("model get and loaded")
    finally:
        down = _cli(["devnet", "down"], env, timeout=120)
        client = redis.Redis.from_url(redis_url)
        if client.get(MARKER_KEY) == str(folder).encode():
            client.flushdb()  # the devnet's own database (up refuses any other)
        client.close()
    assert down.returncode == 0, down.stderr
    left = [pid for pid, ticks in started if process_start_ticks(pid) == ticks]
    assert started and not left, f"still running: {left}"
    assert not (folder / "devnet.json").exists()
    mark("down")
    with capsys.disabled():
        print("\ndevnet wall time by phase (s, cumulative): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))


def test_up_empties_only_a_database_of_its_own(tmp_path):
    """A fresh chain leaves nothing of the earlier one in the devnet's database (cursors, registrations, queued
    tasks); a database holding anything else is refused, untouched."""
    from workers.devnet.network import DevnetError, prepare_redis

    url = redis_url_for(DEVNET_REDIS_DB)
    client = redis.Redis.from_url(url)
    assert client.dbsize() == 0, f"the devnet test database {url} is in use"
    try:
        client.set("someone:else", "1")
        with pytest.raises(DevnetError, match="holds 1 keys that are not a devnet's"):
            prepare_redis(url, tmp_path)
        assert client.get("someone:else") == b"1"
        client.delete("someone:else")

        prepare_redis(url, tmp_path)
        client.set("deepshard:watcher:31337:0xabc:cursor", "1400")  # what an earlier chain left
        prepare_redis(url, tmp_path)  # the next `up`
        assert client.keys("*") == [MARKER_KEY.encode()]
    finally:
        client.flushdb()
        client.close()


def test_an_unanswering_redis_is_one_line(tmp_path):
    from workers.devnet.network import DevnetError, prepare_redis

    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(DevnetError, match=r"^Redis at .* does not answer .*: start it \(`redis-server`\), or give"):
        prepare_redis(url, tmp_path)
