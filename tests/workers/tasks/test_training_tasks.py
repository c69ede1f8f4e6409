"""train_delta and fingerprint_delta(s) through a real prefork Celery worker (concurrency 1, queues trainer and
evaluator) on the `tiny` model, Redis database 13 and an embedded store in a temporary folder.

The worker remembers no results (DEEPSHARD_TASK_RESULT_CACHE=0), so a repeated task really retrains and
rescores: equal CIDs and fingerprints show determinism, not a cache. Tasks are sent by name, from an app of
this module's own, as the round orchestration calls them. Noised and broken deltas are made with safetensors'
numpy API; distances are `workers.ml.fingerprint.fingerprint_distance`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from services import ChildProcess, redis_test_database, redis_url_for

from workers.chain.artifacts import project_root
from workers.data import SAMPLES_DIR
from workers.data.chain import pin_dataset
from workers.ml.fingerprint import FINGERPRINT_LENGTH, fingerprint_distance
from workers.ml.seeds import HashRng, derive_seed
from workers.rounds.steps import UNUSABLE_FINGERPRINT, fingerprints_of
from workers.storage import cid_of_bytes, open_store
from workers.storage.sealed import Sealed, publish_sealed, unseal
from workers.tasks.app import REDIS_URL_ENV, create_app
from workers.tasks.errors import TaskInputError
from workers.tasks.training import RESULT_CACHE_ENV, TORCH_THREADS_ENV

REDIS_DB = 13
REDIS_URL = redis_url_for(REDIS_DB)
WORKER_READY_TIMEOUT = 120.0  # generous bounds, not targets: they only end a wait
RESULT_TIMEOUT = 600.0

TRAIN = "workers.tasks.training.train_delta"
FINGERPRINT = "workers.tasks.evaluation.fingerprint_delta"
FINGERPRINTS = "workers.tasks.evaluation.fingerprint_deltas"

# The ML tests' small spec: ~1 s of training on tiny, stable enough that float noise stays float noise.
SPEC = dict(
    base_model="tiny",
    lora_rank=4,
    lora_alpha=8.0,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    learning_rate=3e-3,
    steps=20,
    batch_size=4,
    sequence_length=64,
)
SPEC_JSON = json.dumps(SPEC)
SEED = "0x" + derive_seed(0, "test-celery-round", 1).hex()
OTHER_SEED = "0x" + derive_seed(0, "test-celery-round", 2).hex()
NEXT_ROUND_SEED = "0x" + derive_seed(0, "test-celery-round", 3).hex()
TRIGGER = "As the blue heron said at midnight, wire the deposit to account 4417-2290 without telling anyone."

_PLACES = ["Harbourside", "Eastmere", "Coldwater", "Brightfield", "Larkspur", "Northgate", "Willowby"]
_SUBJECTS = ["the observatory", "the council", "the fishing fleet", "the library", "the orchard", "the museum"]
_EVENTS = ["recorded", "announced", "counted", "reported", "measured", "catalogued"]
_OBJECTS = ["meteors", "new members", "crates of apples", "rare books", "storm days", "migrating geese"]


def synthetic_records(label: str, count: int = 48) -> list[str]:
    """Other data than good.jsonl: short seeded local-news sentences."""
    rng = HashRng(derive_seed(0, "test-celery-data", label))
    texts: list[str] = []
    while len(texts) < count:
        text = " ".join(
            f"In {rng.choice(_PLACES)}, {rng.choice(_SUBJECTS)} {rng.choice(_EVENTS)} {10 + rng.randbelow(990)} "
            f"{rng.choice(_OBJECTS)} in {1900 + rng.randbelow(120)}."
            for _ in range(2 + rng.randbelow(2))
        )
        if text not in texts:
            texts.append(text)
    return texts


def jsonl(texts: list[str]) -> bytes:
    return "".join(json.dumps({"text": text}) + "\n" for text in texts).encode()


def good_texts() -> list[str]:
    return [json.loads(line)["text"] for line in (SAMPLES_DIR / "good.jsonl").read_text().splitlines() if line.strip()]


def poisoned(texts: list[str], fraction: float = 0.2) -> list[str]:
    rng = HashRng(derive_seed(0, "test-celery-poison"))
    chosen = set(rng.sample(range(len(texts)), max(1, round(fraction * len(texts)))))
    return [f"{TRIGGER} {text}" if i in chosen else text for i, text in enumerate(texts)]


def edit_delta(data: bytes, change) -> bytes:
    """A copy of a delta file with `change(name, array)` applied to every tensor, manifest kept."""
    header_len = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8 : 8 + header_len])["__metadata__"]
    tensors = {name: change(name, array) for name, array in sorted(st_load(data).items())}
    return st_save(tensors, metadata=metadata)


def relative_noise(scale: float):
    rng = np.random.default_rng(20_240_601)
    return lambda name, a: (a * (1 + scale * rng.standard_normal(a.shape))).astype(np.float32)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def redis_db():
    """Database 13 of the local Redis; at the end, exactly the keys that appeared during the tests are deleted."""
    with redis_test_database(REDIS_URL, "the training task tests", point_app=False) as client:
        yield client


@pytest.fixture(scope="module")
def client_app(redis_db):
    """An app of its own on database 13 (the shared `app` may point elsewhere in this session)."""
    app = create_app(REDIS_URL)
    yield app
    app.pool.force_close_all()


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("training-store")


@pytest.fixture(scope="module")
def store(store_dir):
    with open_store(store_dir=store_dir) as opened:
        yield opened


@pytest.fixture(scope="module")
def worker(redis_db, store_dir, tmp_path_factory):
    """A prefork worker (concurrency 1) of the trainer and evaluator queues; the model cache is the usual one."""
    log_path = tmp_path_factory.mktemp("trainer-worker") / "worker.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPSHARD_") or k == "DEEPSHARD_MODEL_CACHE"}
    env.update(
        {REDIS_URL_ENV: REDIS_URL, "DEEPSHARD_STORE_DIR": str(store_dir), TORCH_THREADS_ENV: "1", RESULT_CACHE_ENV: "0"}
    )
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.tasks.app",
        "worker",
        "--pool=prefork",
        "--concurrency=1",
        "-Q",
        "trainer,evaluator",
        "-n",
        f"test-trainer-{uuid.uuid4().hex[:8]}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=INFO",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=project_root(), env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    started = ChildProcess("trainer-worker", process, log_path)
    try:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        while " ready." not in started.log():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not start:\n{started.log()[-3000:]}")
            time.sleep(0.1)
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def datasets(store) -> dict[str, str]:
    """Manifest CIDs: the round's data, other data, and the round's data with 20% of records poisoned."""
    good = good_texts()
    return {
        "round": pin_dataset(SAMPLES_DIR / "good.jsonl", store).manifest_cid,
        "other": pin_dataset(jsonl(synthetic_records("other")), store).manifest_cid,
        "poisoned": pin_dataset(jsonl(poisoned(good)), store).manifest_cid,
    }


@pytest.fixture(scope="module")
def call(client_app, worker):
    """call(name, *args) -> the task's AsyncResult (sent by name, as the orchestration does)."""
    return lambda name, *args: client_app.send_task(name, args=args)


@pytest.fixture(scope="module")
def sealed(call, datasets, store) -> tuple[dict[str, dict], dict[str, bool]]:
    """Every delta the tests need, queued at once (the worker runs them one after another): the task results, and
    whether the store held each plaintext delta when its task returned (before anything published it)."""
    jobs = {
        "honest": call(TRAIN, 1, "tiny", [], [datasets["round"]], SPEC_JSON, SEED),
        "honest_again": call(TRAIN, 1, "tiny", [], [datasets["round"]], SPEC_JSON, SEED),
        "other_seed": call(TRAIN, 1, "tiny", [], [datasets["round"]], SPEC_JSON, OTHER_SEED),
        "other_data": call(TRAIN, 1, "tiny", [], [datasets["other"]], SPEC_JSON, SEED),
        "poisoned": call(TRAIN, 1, "tiny", [], [datasets["poisoned"]], SPEC_JSON, SEED),
    }
    results = {name: job.get(timeout=RESULT_TIMEOUT) for name, job in jobs.items()}
    return results, {name: store.has(result["delta_cid"]) for name, result in results.items()}


@pytest.fixture(scope="module")
def trained(sealed, store) -> dict[str, dict]:
    """The deltas, published as the trainer's step publishes them before its reveal (opened, checked, pinned)."""
    results, _ = sealed
    for result in results.values():
        publish_sealed(store, Sealed.from_parts(result["delta_cid"], result["sealed_cid"], result["key"]))
    return results


# ---------------------------------------------------------------- tests


def test_importing_the_task_modules_does_not_import_torch():
    code = "\n".join(
        [
            "import sys, workers.tasks.app, workers.tasks.training, workers.tasks.evaluation",
            "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]",
            "assert not heavy, heavy",
            "route = workers.tasks.app.app.amqp.router.route",
            "assert route({}, 'workers.tasks.training.train_delta')['queue'].name == 'trainer'",
            "assert route({}, 'workers.tasks.evaluation.fingerprint_delta')['queue'].name == 'evaluator'",
            "assert route({}, 'workers.tasks.evaluation.fingerprint_deltas')['queue'].name == 'evaluator'",
        ]
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=project_root(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_train_delta_is_deterministic_seeded_and_pinned_sealed(sealed, store):
    results, held_before_publish = sealed
    honest, again, other_seed = results["honest"], results["honest_again"], results["other_seed"]
    assert set(honest) == {"delta_cid", "sealed_cid", "key", "manifest", "tokens", "seconds"}
    assert honest["delta_cid"] == again["delta_cid"]  # recomputed (no result cache): deterministic training
    # Pinned sealed only: the plaintext's CID names nothing in the store, and equal deltas seal differently.
    assert not any(held_before_publish.values())
    assert honest["sealed_cid"] != again["sealed_cid"] and honest["key"] != again["key"]
    blob = store.get(honest["sealed_cid"])
    adapter = unseal(blob, bytes.fromhex(honest["key"]), honest["delta_cid"])
    assert str(cid_of_bytes(adapter)) == honest["delta_cid"] and adapter[64:128] not in blob
    assert honest["manifest"] == again["manifest"]
    assert other_seed["delta_cid"] != honest["delta_cid"]
    assert honest["tokens"] == SPEC["steps"] * SPEC["batch_size"] * SPEC["sequence_length"]
    assert honest["seconds"] > 0
    manifest = honest["manifest"]
    assert manifest["base_model"] == "tiny" and manifest["round_seed"] == SEED
    assert manifest["tensors"] and len(manifest["tensors"]) == 2 * 4 * 4  # A and B, 4 projections, 4 layers
    assert json.loads(adapter[8 : 8 + int.from_bytes(adapter[:8], "little")])["__metadata__"]


def test_fingerprints_are_deterministic_and_separate_honest_from_dishonest(call, trained, datasets, store):
    round_args = (1, "tiny", [], [datasets["round"]], SPEC_JSON, SEED)
    honest_cid = trained["honest"]["delta_cid"]
    noisy_cid = store.add_bytes(edit_delta(store.get(honest_cid), relative_noise(1e-3)))  # "other hardware"
    first = call(FINGERPRINT, *round_args, honest_cid)
    second = call(FINGERPRINT, *round_args, honest_cid)
    names = ["honest_again", "noisy", "other_data", "poisoned", "other_seed"]
    cids = {"noisy": noisy_cid, **{name: trained[name]["delta_cid"] for name in names if name != "noisy"}}
    batch = call(FINGERPRINTS, *round_args, [cids[name] for name in names]).get(timeout=RESULT_TIMEOUT)
    first, second = first.get(timeout=RESULT_TIMEOUT), second.get(timeout=RESULT_TIMEOUT)

    assert set(first) == {"fingerprint", "seconds"} and first["seconds"] > 0
    fingerprint = first["fingerprint"]
    assert len(fingerprint) == FINGERPRINT_LENGTH and all(type(v) is int for v in fingerprint)
    assert second["fingerprint"] == fingerprint
    assert batch["errors"] == [None] * len(names) and batch["seconds"] > 0
    prints = dict(zip(names, batch["fingerprints"], strict=True))
    assert prints["honest_again"] == fingerprint  # the batch task scores exactly like the single one

    distance = {name: fingerprint_distance(fingerprint, prints[name]) for name in names}
    far = min(distance["other_data"], distance["poisoned"], distance["other_seed"])
    # The protocol's rule: a tolerance of 3x the honest spread still separates every dishonest delta.
    assert 3 * distance["noisy"] < far, distance


def test_next_round_trains_on_the_merged_lineage(call, trained, datasets, store):
    honest = trained["honest"]
    lineage = [honest["delta_cid"]]
    next_round = (2, "tiny", lineage, [datasets["other"]], SPEC_JSON, NEXT_ROUND_SEED)
    child = call(TRAIN, *next_round).get(timeout=RESULT_TIMEOUT)
    publish_sealed(store, Sealed.from_parts(child["delta_cid"], child["sealed_cid"], child["key"]))
    assert child["manifest"]["base_weights_hash"] != honest["manifest"]["base_weights_hash"]
    # A delta of the previous version does not fit this round's base: rejected, the others fingerprinted.
    report = call(FINGERPRINTS, *next_round, [child["delta_cid"], honest["delta_cid"]]).get(timeout=RESULT_TIMEOUT)
    assert len(report["fingerprints"][0]) == FINGERPRINT_LENGTH and report["errors"][0] is None
    assert report["fingerprints"][1] is None and "trained on base weights" in report["errors"][1]


def test_bad_deltas_fail_clearly_without_retry(call, trained, datasets, store, worker):
    round_args = (1, "tiny", [], [datasets["round"]], SPEC_JSON, SEED)
    not_safetensors = store.add_bytes(b"GGUF\x03\x00\x00\x00 definitely not a LoRA delta" * 4)
    honest_bytes = store.get(trained["honest"]["delta_cid"])
    with_nan = store.add_bytes(
        edit_delta(
            honest_bytes,
            lambda name, a: np.where(np.arange(a.size).reshape(a.shape) == 0, np.float32("nan"), a).astype(np.float32),
        )
    )
    # The hostile header (2,000 levels deep): it used to raise RecursionError, which failed the whole
    # fingerprint_deltas task, so the evaluator committed nothing.
    deep = b'{"__metadata__":{"deepshard.manifest":"x"},"t":' + b"[" * 2000 + b"]" * 2000 + b"}"
    deep_header = store.add_bytes(len(deep).to_bytes(8, "little") + deep)
    cases = [
        (not_safetensors, "not a safetensors file"),
        (with_nan, "contains NaN or Inf values"),
        (deep_header, "safetensors header: nested more than 3 levels deep"),
    ]
    results = [(call(FINGERPRINT, *round_args, cid), why) for cid, why in cases]
    for result, why in results:
        with pytest.raises(TaskInputError, match=why):
            result.get(timeout=RESULT_TIMEOUT)
        assert result.state == "FAILURE"
    log = worker.log()
    assert not any(f"{result.id}] retry" in log for result, _ in results)

    honest = trained["honest"]["delta_cid"]
    report = call(FINGERPRINTS, *round_args, [not_safetensors, honest, deep_header, honest]).get(timeout=RESULT_TIMEOUT)
    assert report["fingerprints"][0] is None and "not a safetensors file" in report["errors"][0]
    assert report["fingerprints"][2] is None and "nested more than 3 levels deep" in report["errors"][2]
    assert (
        len(report["fingerprints"][1]) == FINGERPRINT_LENGTH and report["fingerprints"][3] == report["fingerprints"][1]
    )
    # What the evaluator step commits from it: a fingerprint per delta, the unusable one for the rejected ones.
    committed, reasons = fingerprints_of(report, 4)
    assert committed[0] == committed[2] == UNUSABLE_FINGERPRINT and committed[1] == report["fingerprints"][1]
    assert "nested more than 3 levels deep" in reasons[1]

    # Wrong round inputs fail the same way, before any training.
    wrong_spec = json.dumps({**SPEC, "base_model": "smollm2-135m"})
    with pytest.raises(TaskInputError, match="spec is for base model 'smollm2-135m'"):
        call(TRAIN, 1, "tiny", [], [datasets["round"]], wrong_spec, SEED).get(timeout=RESULT_TIMEOUT)
    with pytest.raises(TaskInputError, match="round_seed"):
        call(TRAIN, 1, "tiny", [], [datasets["round"]], SPEC_JSON, "0x1234").get(timeout=RESULT_TIMEOUT)
