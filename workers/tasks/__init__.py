"""Celery tasks, one module per role: `data` (pin and score datasets) and `curator` (vote automatically).

The app is `workers.tasks.app`; run a worker with `celery -A workers.tasks.app worker -Q data,curator`.
Nothing is imported here, so that `celery -A` and the task modules decide what a worker loads.
"""
