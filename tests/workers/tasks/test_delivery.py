"""Celery's delivery on Redis, with real prefork workers (the test app, `worker_app`) on real Redis (database 14):

* a job that outlives the visibility timeout (scaled down to seconds) is delivered again while it runs, and
  the copy does not run it a second time;
* a copy of a job that finished, by failing or by returning, is dropped;
* a task that kills its own process every time is delivered a bounded number of times, then fails for good with
  its reason recorded, a copy of it is dropped, and the worker goes on with its other tasks;
* a lease is taken over from a holder only when that holder is a process of this host, PID namespace and boot that
  no longer exists.

No test waits on time passing: each waits, with a generous bound, for a condition (a log line, a Redis key).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import replace

import pytest
from netkit import celery_worker_command, wait_for

from workers.tasks.delivery import Holder, Lease, TaskAbandoned, failed_jobs, holder_is_dead, job_bound_seconds
from workers.tasks.runner import send

LONG_JOB = "tests.delivery.long_job"
CRASH = "tests.delivery.crash"
FAIL = "tests.delivery.fail"
RESULT_TIMEOUT = 300


def names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"delivery-{tag}", f"test:delivery:{tag}:runs"


def send_copy_and_see_it_dropped(worker, name: str, args: tuple, queue: str, job_id: str, how: str) -> None:
    """Queues a copy of the finished job `job_id` and waits for `worker` to drop it as finished (`how`)."""
    send(name, args=args, queue=queue, task_id=job_id)
    wait_for(
        lambda: f"[{job_id}] finished already ({how})" in worker.log(),
        f"the copy of {job_id} dropped",
        RESULT_TIMEOUT,
        logs=[worker],
    )


def test_a_job_outliving_the_visibility_timeout_is_delivered_again_but_runs_once(spawn, redis_clean):
    queue, runs = names()
    gate = f"{runs}:gate"
    # Redis redelivers an unacknowledged task after 2 s; the job runs until the test opens its gate, which it does
    # only once a redelivered copy was deferred. The lease (60 s, renewed every 20 s) outlasts the whole test.
    env = {"DEEPSHARD_TEST_VISIBILITY_TIMEOUT": "2", "DEEPSHARD_JOB_LEASE_SECONDS": "60"}
    workers = [
        spawn(celery_worker_command(queue, pool="prefork"), env, ready=" ready.", name=f"worker-{i}") for i in (1, 2)
    ]

    def logs() -> str:
        return "".join(worker.log() for worker in workers)

    job = send(LONG_JOB, args=(runs, gate), queue=queue)
    wait_for(
        lambda: "is running elsewhere" in logs(), "a copy delivered while the job runs", RESULT_TIMEOUT, logs=workers
    )
    redis_clean.set(gate, 1)
    pid = job.get(timeout=RESULT_TIMEOUT)
    wait_for(
        lambda: "finished already (SUCCESS)" in logs(),
        "a copy delivered after the job finished",
        RESULT_TIMEOUT,
        logs=workers,
    )
    assert [int(p) for p in redis_clean.lrange(runs, 0, -1)] == [pid]
    assert "Traceback" not in logs()


def test_a_copy_of_a_job_that_finished_by_failing_or_returning_is_dropped(spawn, redis_clean):
    queue, failed_runs = names()
    _, runs = names()
    worker = spawn(celery_worker_command(queue, pool="prefork"), {}, ready=" ready.", name="worker")

    failed = send(FAIL, args=(failed_runs,), queue=queue)
    with pytest.raises(ValueError, match="fails on purpose"):
        failed.get(timeout=RESULT_TIMEOUT)
    # Celery would store STARTED over the FAILURE for this copy before running it.
    send_copy_and_see_it_dropped(worker, FAIL, (failed_runs,), queue, failed.id, "FAILURE")
    assert redis_clean.llen(failed_runs) == 1

    done = send(LONG_JOB, args=(runs,), queue=queue)
    pid = done.get(timeout=RESULT_TIMEOUT)
    # Without Celery's stored result, as for a copy that arrives between the lease's release and the result's store.
    done.forget()
    send_copy_and_see_it_dropped(worker, LONG_JOB, (runs,), queue, done.id, "SUCCESS")
    assert [int(p) for p in redis_clean.lrange(runs, 0, -1)] == [pid]


def test_a_task_that_kills_its_process_every_time_fails_for_good_and_the_worker_goes_on(spawn, redis_clean):
    queue, runs = names()
    _, other_runs = names()
    worker = spawn(celery_worker_command(queue, pool="prefork"), {}, ready=" ready.", name="worker")
    crash = send(CRASH, args=(runs,), queue=queue)
    after = send(LONG_JOB, args=(other_runs,), queue=queue)

    with pytest.raises(TaskAbandoned, match="delivered 3 times and each time the worker process running it died"):
        crash.get(timeout=RESULT_TIMEOUT)
    assert redis_clean.llen(runs) == 3
    (failed,) = [job for job in failed_jobs(redis_clean) if job.job_id == crash.id]
    assert failed.task == CRASH and "it is not run again" in failed.reason
    # A copy of the abandoned job (its delivery count is gone) does not start a fresh series of deliveries.
    send_copy_and_see_it_dropped(worker, CRASH, (runs,), queue, crash.id, "FAILURE")
    assert redis_clean.llen(runs) == 3
    # The worker's other work goes on.
    assert after.get(timeout=RESULT_TIMEOUT) > 0
    assert redis_clean.llen(other_runs) == 1
    assert crash.state == "FAILURE"
    assert "WorkerLostError" in worker.log()


def test_a_spec_whose_job_may_outlive_the_visibility_timeout_is_refused_with_the_setting_to_change(redis_clean):
    from workers.ml.spec import TrainingSpec
    from workers.rounds.specs import SpecBook
    from workers.tasks.delivery import VisibilityTooShort, check_visibility

    short, long = TrainingSpec(base_model="tiny"), TrainingSpec(base_model="smollm2-135m", steps=20_000)
    book = SpecBook(redis_clean, use_env=False)
    book.publish(short)
    check_visibility(SpecBook(redis_clean, use_env=False).known(), timeout=3600)
    book.publish(long)
    with pytest.raises(VisibilityTooShort, match="set DEEPSHARD_VISIBILITY_TIMEOUT to at least") as caught:
        check_visibility(SpecBook(redis_clean, use_env=False).known(), timeout=3600)
    assert f"{job_bound_seconds(long):,.0f} s" in str(caught.value)


def test_a_lease_is_taken_over_only_from_a_dead_process_of_this_host_pid_namespace_and_boot(redis_clean):
    me = Holder.current()
    assert "-" not in (me.pid_namespace, me.boot_id)  # Linux has both
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    dead = replace(me, pid=gone.pid, tag="dead")
    assert Holder.parse(dead.text()) == dead
    assert holder_is_dead(dead.text(), me)
    assert not holder_is_dead(replace(me, tag="alive").text(), me)
    # A container on the host's network: the same hostname, PIDs of another namespace.
    assert not holder_is_dead(replace(dead, pid_namespace=f"{me.pid_namespace}0").text(), me)
    assert not holder_is_dead(replace(dead, boot_id="another-boot").text(), me)
    assert not holder_is_dead(replace(dead, host=f"{me.host}-other").text(), me)
    assert not holder_is_dead(dead.text(), replace(me, pid_namespace="-"))  # where the namespace is unknown
    assert not holder_is_dead(f"{me.host}:{gone.pid}:0123456789ab", me)  # a holder id without namespace or boot
    assert not holder_is_dead("garbage", me)

    key = f"test:delivery:{uuid.uuid4().hex[:8]}:lease"
    redis_clean.set(key, replace(dead, pid_namespace=f"{me.pid_namespace}0").text(), px=60_000)
    lease = Lease(redis_clean, key, seconds=60)
    assert not lease.acquire()
    redis_clean.set(key, dead.text(), px=60_000)
    assert lease.acquire()
    assert redis_clean.get(key).decode() == lease.holder
    # Taken over: the old holder's renewal fails (its keep-alive thread then logs an error).
    redis_clean.set(key, dead.text(), px=60_000)
    assert not lease.renew()
