"""Celery tasks: the app (`app`), the step runner (`runner`), the roles' step tasks (`consensus`: curator and data
keeper; `rounds`: trainer, evaluator and round keeper) and the content and ML jobs (`data`, `training`,
`evaluation`). `deepshard worker --role ROLE` (`workers.node`) runs them.

Nothing is imported here, so that `celery -A` and the task modules decide what a worker loads.
"""
