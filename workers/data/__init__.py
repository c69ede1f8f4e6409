"""Datasets: the deepshard-jsonl format, validation, normalisation, manifests and quality signals.

See README.md in this folder for the format, the normalisation rules, the signals and the policy.
torch is imported only when a perplexity is computed.
"""

from pathlib import Path

from .dataset import DataError, InvalidDataset, ValidationReport, is_canonical, normalise, normalise_file, validate
from .manifest import DatasetManifest, ManifestError, approx_tokens
from .quality import (
    CuratorPolicy,
    CuratorScores,
    MinHashIndex,
    MinHashParams,
    PerplexityStats,
    QualitySignals,
    compute_signals,
    corpus_index,
    perplexity,
)
from .records import DEFAULT_LIMITS, FORMAT_NAME, FORMAT_VERSION, Limits, Problem, normalise_text

#: good.jsonl, junk.jsonl and malformed.jsonl, for the demo and the tests
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"

__all__ = [
    "CuratorPolicy",
    "CuratorScores",
    "DEFAULT_LIMITS",
    "DataError",
    "DatasetManifest",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "InvalidDataset",
    "Limits",
    "ManifestError",
    "MinHashIndex",
    "MinHashParams",
    "PerplexityStats",
    "Problem",
    "QualitySignals",
    "SAMPLES_DIR",
    "ValidationReport",
    "approx_tokens",
    "compute_signals",
    "corpus_index",
    "is_canonical",
    "normalise",
    "normalise_file",
    "normalise_text",
    "perplexity",
    "validate",
]
