"""pin_dataset and score_dataset on a real Celery worker and the real Redis; retries; a dead broker."""

import base64
import json
import os
import subprocess
import sys
import uuid

import pytest

from workers.chain.artifacts import project_root
from workers.chain.localnode import free_port
from workers.data import SAMPLES_DIR, DatasetManifest
from workers.data.chain import pin_dataset as pin_in_process
from workers.storage import NodeUnreachable, cid_of_bytes, open_store
from workers.tasks import data as data_tasks
from workers.tasks.data import pin_dataset, score_dataset
from workers.tasks.errors import TaskInputError
from workers.tasks.transport import REJECTED_KEY

RESULT_TIMEOUT = 300  # a generous bound, not a target: it only ends a wait

GOOD = SAMPLES_DIR / "good.jsonl"
JUNK = SAMPLES_DIR / "junk.jsonl"
MALFORMED = SAMPLES_DIR / "malformed.jsonl"


def test_pin_dataset_pins_the_file_and_its_manifest(data_worker, store_dir, tmp_path):
    result = pin_dataset.delay(path=str(GOOD)).get(timeout=RESULT_TIMEOUT)
    # The same CIDs as pinning in this process: content addressing, not the worker, decides them.
    expected = pin_in_process(GOOD, open_store(store_dir=tmp_path / "store"))
    assert result == expected.to_dict()
    store = open_store(store_dir=store_dir)
    manifest = DatasetManifest.from_json(store.get(result["manifest_cid"]))
    assert manifest.to_dict() == result["manifest"] and manifest.records == 52
    assert store.is_pinned(result["manifest_cid"]) and store.is_pinned(manifest.cid)


def test_pin_dataset_is_idempotent(data_worker):
    by_path = [pin_dataset.delay(path=str(GOOD)) for _ in range(2)]
    by_bytes = pin_dataset.delay(data_base64=base64.b64encode(GOOD.read_bytes()).decode())
    results = [r.get(timeout=RESULT_TIMEOUT) for r in (*by_path, by_bytes)]
    assert results[0] == results[1] == results[2]


def test_score_dataset_scores_good_and_junk(data_worker):
    good = pin_dataset.delay(path=str(GOOD)).get(timeout=RESULT_TIMEOUT)["manifest_cid"]
    junk = pin_dataset.delay(path=str(JUNK)).get(timeout=RESULT_TIMEOUT)["manifest_cid"]
    good_report = score_dataset.delay(good).get(timeout=RESULT_TIMEOUT)
    junk_report = score_dataset.delay(junk, corpus_cids=[good]).get(timeout=RESULT_TIMEOUT)
    assert good_report["vote"] == [100, 100, 100, 95, 100]
    assert good_report["manifest_cid"] == good and good_report["signals"]["records"] == 52
    assert junk_report["vote"] == [20, 13, 25, 23, 15]
    assert junk_report["signals"]["near_duplicate_rate_corpus"] > 0 and junk_report["corpus_cids"] == [good]


def test_malformed_dataset_fails_at_once_without_retry(data_worker):
    result = pin_dataset.delay(path=str(MALFORMED))
    with pytest.raises(TaskInputError, match=r"invalid dataset \(9 problems\): line \d+: "):
        result.get(timeout=RESULT_TIMEOUT)
    assert result.state == "FAILURE"
    assert f"{result.id}] retry" not in data_worker.log()


def test_unknown_or_malformed_cid_fails_clearly(data_worker):
    nobody_pinned = str(cid_of_bytes(b"content that was never pinned"))
    with pytest.raises(TaskInputError, match="is not in the embedded store"):
        score_dataset.delay(nobody_pinned).get(timeout=RESULT_TIMEOUT)
    with pytest.raises(TaskInputError, match="not a valid CID"):
        score_dataset.delay("not-a-cid").get(timeout=RESULT_TIMEOUT)


@pytest.mark.filterwarnings("ignore:The 'strict' parameter is no longer needed")  # ipfshttpclient's, not ours
def test_unreachable_storage_node_is_retried_with_backoff(monkeypatch):
    # Eager run: retries happen inline (no countdown), so the attempts can be counted.
    monkeypatch.setenv("DEEPSHARD_IPFS_API", f"/ip4/127.0.0.1/tcp/{free_port()}/http")
    calls = []
    real_open_store = data_tasks.open_store

    def counting_open_store():
        calls.append(1)
        return real_open_store(timeout=1)

    monkeypatch.setattr(data_tasks, "open_store", counting_open_store)
    result = pin_dataset.apply(kwargs={"path": str(GOOD)})
    assert result.state == "FAILURE" and isinstance(result.result, NodeUnreachable)
    assert len(calls) == 1 + pin_dataset.max_retries
    assert pin_dataset.retry_backoff and pin_dataset.retry_jitter


def test_dead_broker_fails_fast_and_clearly(tmp_path):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    script = (
        "import time\n"
        "from workers.tasks.data import pin_dataset\n"
        "from workers.tasks.errors import QueueUnavailable\n"
        "started = time.monotonic()\n"
        "try:\n"
        "    pin_dataset.delay(path='data.jsonl')\n"
        "except QueueUnavailable as exc:\n"
        "    print(f'{time.monotonic() - started:.2f}', exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPSHARD_")}
    env["DEEPSHARD_REDIS_URL"] = dead
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=project_root(), env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    elapsed, message = completed.stdout.strip().split(" ", 1)
    assert float(elapsed) < 5, completed.stdout
    assert message.startswith(f"cannot queue workers.tasks.data.pin_dataset: Redis at {dead} does not answer")
    assert "Connection refused" in message


def hostile_messages(queue: str) -> tuple[str, str]:
    """Two messages anyone with access to the Redis could queue: an envelope nested 5,000 levels deep, and a
    well-formed envelope whose task body is."""
    deep = "[" * 5000 + "]" * 5000
    task_id = str(uuid.uuid4())
    envelope = {
        "body": base64.b64encode(deep.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": "workers.tasks.data.pin_dataset", "id": task_id, "root_id": task_id},
        "properties": {
            "correlation_id": task_id,
            "delivery_tag": str(uuid.uuid4()),
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": queue},
        },
    }
    return deep, json.dumps(envelope)


def test_a_hostile_broker_message_is_set_aside_and_the_worker_goes_on(data_worker, redis_test_db):
    """Before: the deep envelope raised RecursionError in the consumer's event loop ("Unrecoverable error")
    and the worker exited; now it is set aside with one error line and the next task runs."""
    deep_envelope, deep_body = hostile_messages("data")
    redis_test_db.delete(REJECTED_KEY)
    redis_test_db.lpush("data", deep_envelope)
    redis_test_db.lpush("data", deep_body)
    result = pin_dataset.delay(path=str(GOOD)).get(timeout=RESULT_TIMEOUT)  # queued behind both
    assert result["manifest"]["records"] == 52
    assert data_worker.process.poll() is None
    log = data_worker.log()
    assert "set aside a broker message" in log and "broker message: nested more than 32 levels deep" in log
    assert "Can't decode message body" in log and "Unrecoverable error" not in log
    assert redis_test_db.lrange(REJECTED_KEY, 0, -1) == [deep_envelope.encode()]
    redis_test_db.delete(REJECTED_KEY)
