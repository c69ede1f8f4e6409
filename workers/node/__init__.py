"""What runs a node: the processes above the tasks.

Modules: `registry` (which accounts run a worker of each role, with heartbeats), `watcher` (contract events ->
Celery tasks, cursor in Redis), `service` (`deepshard worker`: a role's Celery worker with its queues,
registration and catch-up; `deepshard watch`), `cli` (`deepshard round | worker | watch`).
Nothing heavy is imported here.
"""
