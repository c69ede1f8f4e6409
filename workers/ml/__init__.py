"""Deepshard ML: base models, deterministic LoRA training, safe delta loading, merging and
probability-curvature fingerprints.

Modules: `spec` (TrainingSpec, torch-free), `seeds` (round-seed derivations, torch-free), `models`,
`training`, `delta`, `merge`, `fingerprint`. Nothing heavy is imported here, so `import workers.ml.spec`
stays cheap for the chain side and Celery parents never touch torch before forking.
"""
