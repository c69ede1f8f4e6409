"""Training rounds from the workers' side.

Modules: `chain` (TrainingRoundsClient: open, commit/reveal deltas and fingerprints, draw, finalize, claim,
status, lineage), `commits` (salts on disk), `specs` (TrainingSpecs by hash), `steps` (one step of a trainer,
evaluator or keeper, decided from the chain), `watcher` (events -> Celery tasks, cursor in Redis),
`service` (`deepshard worker` and `deepshard watch`), `cli` (`deepshard round ...`).
Nothing heavy is imported here.
"""
