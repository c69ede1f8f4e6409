"""Training rounds from the workers' side.

Modules: `chain` (TrainingRoundsClient: open, commit/reveal deltas and fingerprints, draw, finalize, claim,
status, lineage), `specs` (TrainingSpecs by hash), `steps` (one step of a trainer, evaluator or keeper, decided
from the chain). The Celery tasks that run the steps are in `workers.tasks.rounds`; the watcher and
`deepshard round | worker | watch` in `workers.node`. Nothing heavy is imported here.
"""
