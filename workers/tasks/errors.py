"""Errors that tasks raise and callers of tasks see.

Celery carries an exception back to the caller as its class name, module and arguments, so these take
one message string and nothing else: they rebuild exactly on the caller's side.
"""


class TaskInputError(Exception):
    """The task's input is wrong (an invalid dataset, a malformed CID): retrying cannot help."""


class QueueUnavailable(Exception):
    """The Redis broker or result backend does not answer, so the task could not be queued."""
