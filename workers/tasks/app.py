"""The Celery app every Deepshard worker runs (`deepshard worker --role ROLE` starts it with the role's queues).

Broker and result backend are the Redis at `$DEEPSHARD_REDIS_URL` (default redis://127.0.0.1:6379/0).
Delivery is at-least-once: a task is acknowledged only after it ran (`acks_late`), and one whose worker
died is put back (`reject_on_worker_lost`), so every task must be safe to run twice: pinning is content
addressed, and chain tasks read the chain before sending anything. Each delivery runs under the guard of
`workers.tasks.delivery` (one run per task id at a time, a bounded number of deliveries), and Redis redelivers an
unacknowledged task after `$DEEPSHARD_VISIBILITY_TIMEOUT` seconds (default 3,600; checked against the longest job a
TrainingSpec allows when a trainer or evaluator worker starts).

Messages are JSON, decoded within `workers.safejson`'s bounds (`workers.tasks.transport`).

Queues: `data` (pin and score datasets: any worker); per role `trainer`, `evaluator`, `curator`, `keeper`;
and per account `<role>.<address>` for the roles that sign as one account (`workers.tasks.runner`). Task
modules never import torch at module level: prefork children would inherit its threads.
"""

from __future__ import annotations

import os

from celery import Celery

from ..protocol.constants import DATA_QUEUE
from . import transport
from .delivery import visibility_timeout

REDIS_URL_ENV = "DEEPSHARD_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

#: Seconds to wait for Redis to accept a connection before giving up (per attempt).
CONNECT_TIMEOUT = 3.0
#: Seconds a Redis command may take before the socket is considered dead.
SOCKET_TIMEOUT = 30.0


def redis_url() -> str:
    """`$DEEPSHARD_REDIS_URL`, else the local Redis."""
    return os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL


def create_app(url: str | None = None) -> Celery:
    """A Celery app on the Redis at `url` (default `redis_url()`), with the task modules registered."""
    url = url or redis_url()
    app = Celery(
        "deepshard",
        task_cls="workers.tasks.base:DeepshardTask",
        include=[
            "workers.tasks.data",
            "workers.tasks.consensus",
            "workers.tasks.training",
            "workers.tasks.evaluation",
            "workers.tasks.rounds",
        ],
    )
    app.conf.update(
        broker_url=url,
        # kombu's Redis transport with every message's JSON bounded (workers.tasks.transport): a hostile
        # message is set aside with an error line instead of ending the worker.
        broker_transport=f"{transport.__name__}:Transport",
        result_backend=url,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # At-least-once: ack after the task ran, requeue it if the worker process died mid-task.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One task at a time per process: a long pin or training job must not hold others hostage.
        worker_prefetch_multiplier=1,
        task_track_started=True,
        result_expires=7 * 24 * 3600,
        task_routes={
            "workers.tasks.data.*": {"queue": DATA_QUEUE},
            # A role's steps go to `<role>.<account>` (workers.tasks.runner); these are the defaults for a
            # bare `.delay()`.
            "workers.tasks.consensus.curate": {"queue": "curator"},
            "workers.tasks.consensus.keeper_step": {"queue": "keeper"},
            "workers.tasks.rounds.trainer_step": {"queue": "trainer"},
            "workers.tasks.rounds.evaluator_step": {"queue": "evaluator"},
            "workers.tasks.rounds.keeper_step": {"queue": "keeper"},
            "workers.tasks.training.*": {"queue": "trainer"},
            "workers.tasks.evaluation.*": {"queue": "evaluator"},
        },
        task_default_queue=DATA_QUEUE,
        # A dead broker must fail a `.delay()` within seconds, not hang: few publish retries, short
        # connect timeouts on both the broker and the result backend.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        broker_connection_timeout=CONNECT_TIMEOUT,
        broker_transport_options={
            "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_timeout": SOCKET_TIMEOUT,
            # Redelivery of unacknowledged tasks; longer than any job a spec allows (checked at worker start).
            "visibility_timeout": visibility_timeout(),
        },
        redis_socket_connect_timeout=CONNECT_TIMEOUT,
        redis_socket_timeout=SOCKET_TIMEOUT,
        result_backend_transport_options={
            "retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        },
        # A worker started before Redis, or losing it, waits for it (with backoff) instead of exiting.
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,
    )
    return app


app = create_app()


def point_app_at(url: str, target: Celery = app) -> None:
    """Moves `target`'s broker and result backend to `url`. Celery keeps its connection pool, producer
    pool and backend from first use, so changing the settings alone would keep talking to the old URL. The
    old pools are dropped, not closed: kombu keeps producer pools per URL for the whole process, and hands the
    same one back when an app points at that URL again."""
    target.conf.update(broker_url=url, result_backend=url)
    target._pool = None
    if "amqp" in target.__dict__:
        target.amqp._producer_pool = None
    target._backend_cache = None
    target._local.__dict__.pop("backend", None)
