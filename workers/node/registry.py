"""Which accounts run a worker of each role, so that the watcher knows whom to notify.

`deepshard worker --role R` registers its account in Redis (the sorted set `deepshard:<chain>:workers:<role>`,
scored by the Redis server time of its last heartbeat), beats every quarter of `REGISTRATION_TTL` and deregisters
when it stops; the watcher queues tasks only for accounts that beat within the last `REGISTRATION_TTL` seconds,
so the queue of a worker gone for good does not fill up.

Health: every worker reports, at each beat and whenever one of its parts changes, what runs in it (the hash
`deepshard:<chain>:health`, field `<role>:<account>`, `report_health`): its watcher thread ("running", "not run"
or "dead: <why>") and the jobs recorded as failed for good (`workers.tasks.delivery.failed_jobs`). `worker_health`
reads it back, with the age of each report.
"""

from __future__ import annotations

import json

import redis as redis_lib
from eth_utils import to_checksum_address

#: Seconds a worker's registration lasts without a heartbeat.
REGISTRATION_TTL = 120.0


def accounts_key(chain_id: int, role: str) -> str:
    """A sorted set: account -> the Redis server time of its worker's last heartbeat."""
    return f"deepshard:{int(chain_id)}:workers:{role}"


def _server_time(client: redis_lib.Redis) -> float:
    # Redis's clock, not this machine's: workers and the watcher may run on machines whose clocks differ.
    seconds, micros = client.time()
    return seconds + micros / 1e6


def register_account(client: redis_lib.Redis, chain_id: int, role: str, account: str) -> None:
    """Records, or refreshes, that a worker of `role` signs as `account` on this chain: the watcher queues its
    tasks for `REGISTRATION_TTL` seconds from now. Registrations older than that are dropped."""
    key = accounts_key(chain_id, role)
    now = _server_time(client)
    with client.pipeline(transaction=True) as pipe:
        pipe.zadd(key, {to_checksum_address(account): now})
        pipe.zremrangebyscore(key, "-inf", f"({now - REGISTRATION_TTL}")
        pipe.execute()


def deregister_account(client: redis_lib.Redis, chain_id: int, role: str, account: str) -> None:
    """Removes the registration (a worker stopping): the watcher stops queueing its tasks at once."""
    client.zrem(accounts_key(chain_id, role), to_checksum_address(account))


def registered_accounts(client: redis_lib.Redis, chain_id: int, role: str) -> list[str]:
    """The accounts whose `role` worker beat within the last `REGISTRATION_TTL` seconds."""
    members = client.zrangebyscore(accounts_key(chain_id, role), _server_time(client) - REGISTRATION_TTL, "+inf")
    return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)


def health_key(chain_id: int) -> str:
    """A hash: `<role>:<account>` -> JSON of the worker's last health report."""
    return f"deepshard:{int(chain_id)}:health"


def report_health(client: redis_lib.Redis, chain_id: int, role: str, account: str, status: dict) -> None:
    """Records `status` (JSON-able: e.g. {"watcher": "running"}) as the health of the `role` worker of `account`,
    stamped with the Redis server time."""
    record = {**status, "role": role, "account": to_checksum_address(account), "at": _server_time(client)}
    client.hset(health_key(chain_id), f"{role}:{to_checksum_address(account)}", json.dumps(record))


def worker_health(client: redis_lib.Redis, chain_id: int) -> dict[str, dict]:
    """Each worker's last health report by `<role>:<account>`, with `age` (seconds since it was made)."""
    now = _server_time(client)
    out = {}
    for field, raw in client.hgetall(health_key(chain_id)).items():
        record = json.loads(raw)
        record["age"] = now - float(record["at"])
        out[field.decode() if isinstance(field, bytes) else str(field)] = record
    return out
