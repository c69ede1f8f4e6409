"""The simulated world: who takes part, what the contracts' parameters are, what work costs off-chain, and the
synthetic ML outputs (dataset scores, delta fingerprints, evaluator noise) that stand in for real training.

Synthetic outputs are calibrated from `benchmarks/results/verification.json`: an evaluator's measurement noise
has the median L1 size of the honest deltas' distance to their reference there, and an adversarial delta lies
at an L1 distance drawn between the min and max measured for its kind. Everything random is a function of
(run seed, epoch, name), so two worlds of a paired run see the same data, the same deltas and the same noise.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np

from workers.chain.deploy import DataConsensusParams, TrainingRoundsParams
from workers.protocol.constants import CRITERIA, INT32_MAX, INT32_MIN, MAX_SCORE, K
from workers.rounds.steps import UNUSABLE_FINGERPRINT

DSH = 10**18
VERIFICATION = Path(__file__).resolve().parents[1] / "results" / "verification.json"

#: The contracts' parameters the benchmark runs under: the deployment defaults, with windows short enough for a
#: local chain (windows do not change who gets paid what).
DATA_PARAMS = DataConsensusParams(commit_window=40, reveal_window=40, seed_delay=1)
ROUND_PARAMS = TrainingRoundsParams(
    train_commit_window=40, train_reveal_window=40, eval_commit_window=40, eval_reveal_window=40, seed_delay=1
)


@dataclass(frozen=True)
class Economy:
    """The world's sizes and the off-chain cost of work (wei of DSH), which no contract sees: assumptions, swept
    by +-50% in the benchmark. A training run costs `training_cost`; fingerprinting one delta 5% of it (the
    ratio benchmarks/verification's README names as its target for real rounds); reading a dataset costs a
    curator `curation_cost`; collecting a good dataset costs its informant `data_cost`."""

    training_cost: int = 200 * DSH
    fingerprint_cost: int = 10 * DSH
    curation_cost: int = 1 * DSH
    data_cost: int = 50 * DSH
    informant_bond: int = 200 * DSH
    curators: int = 7
    evaluators: int = 12
    trainers: int = 4
    data: DataConsensusParams = DATA_PARAMS
    rounds: TrainingRoundsParams = ROUND_PARAMS

    def curator_bond(self, index: int) -> int:
        """Pool bond of base curator `index` (wei): 1,000 DSH upward in steps of 250."""
        return (1_000 + 250 * index) * DSH

    def evaluator_bond(self, index: int) -> int:
        """Pool bond of base evaluator `index` (wei): 1,000 DSH upward in steps of 200."""
        return (1_000 + 200 * index) * DSH

    def scaled(self, name: str, factor: float) -> Economy:
        """This economy with one cost or parameter multiplied by `factor` (the +-50% bands)."""
        if hasattr(self, name):
            return replace(self, **{name: int(getattr(self, name) * factor)})
        for part in ("data", "rounds"):
            params = getattr(self, part)
            if hasattr(params, name):
                value = getattr(params, name)
                scaled = int(value * factor)
                if name.endswith("_bps"):
                    scaled = min(scaled, 10_000)
                return replace(self, **{part: replace(params, **{name: scaled})})
        raise ValueError(f"no parameter {name!r}")


#: Economic parameters the targets must hold across (+-50% each).
SWEPT = (
    "training_cost",
    "fingerprint_cost",
    "curation_cost",
    "data_cost",
    "trainer_bond",
    "round_reward",
    "evaluator_share_bps",
    "outlier_slash_bps",
    "incoherent_penalty_bps",
    "no_reveal_penalty_bps",
    "reject_slash_bps",
    "curator_share_bps",
    "max_reward",
)


@dataclass(frozen=True)
class Calibration:
    """From verification.json: the median honest L1 distance (evaluator noise) and per adversary kind the
    (min, max) L1 distance of its deltas to the reference."""

    honest_median: float
    adversaries: dict[str, tuple[int, int]] = field(default_factory=dict)


@cache
def calibration(path: Path = VERIFICATION) -> Calibration:
    """Reads the verification benchmark's measured distances (ValueError if the file lacks them)."""
    report = json.loads(path.read_text(encoding="utf-8"))
    try:
        honest = float(report["honest"]["honest_noise_1e-3"]["distance"]["median"])
        kinds = {
            name: (int(a["distance"]["min"]), int(a["distance"]["max"])) for name, a in report["adversaries"].items()
        }
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path.name} lacks the measured distances ({exc})") from None
    return Calibration(honest, kinds)


def rng_for(seed: int, *labels: object) -> np.random.Generator:
    """A generator that depends only on the run seed and the labels (stable across worlds and processes)."""
    digest = hashlib.sha256(repr((seed, *labels)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def random_for(seed: int, *labels: object) -> random.Random:
    """Like `rng_for`, for the many small draws (a stdlib generator starts ~20x faster than numpy's)."""
    digest = hashlib.sha256(repr((seed, *labels)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _clip(values: np.ndarray) -> tuple[int, ...]:
    return tuple(int(v) for v in np.clip(values, INT32_MIN, INT32_MAX))


#: Delta kinds: what a trainer commits. `honest` is the round's deterministic training result (byte-identical
#: for every honest trainer); `lazy` an untrained delta; `poison_below` a poisoned delta lying below the honest
#: fingerprint on every coordinate (the side the lower median favours); `poison_mixed` below on some
#: coordinates and above on others; `unfetchable` a CID with no content behind it (a guess at the honest CID,
#: which stays sealed until the commit deadline): evaluators cannot fetch it and report `UNUSABLE_FINGERPRINT`.
DELTA_KINDS = ("honest", "lazy", "poison_below", "poison_mixed", "unfetchable")
_KIND_SOURCE = {"lazy": "lazy", "poison_below": "poisoned_5pct", "poison_mixed": "poisoned_5pct"}


@cache
def true_fingerprint(seed: int, epoch: int, kind: str) -> tuple[int, ...]:
    """The fingerprint a perfect evaluator would measure for a delta of `kind` in this epoch's round."""
    if kind == "unfetchable":
        return tuple(UNUSABLE_FINGERPRINT)
    base = rng_for(seed, epoch, "base").integers(-200_000, 200_000, K)
    if kind == "honest":
        return _clip(base)
    low, high = calibration().adversaries[_KIND_SOURCE[kind]]
    rng = rng_for(seed, epoch, "delta", kind)
    size = int(rng.integers(low, high + 1))
    shares = rng.dirichlet(np.ones(K))
    offset = np.floor(shares * size).astype(np.int64)
    offset[0] += size - int(offset.sum())
    signs = -np.ones(K, dtype=np.int64)
    if kind == "poison_mixed":
        signs[K // 2 :] = 1
    return _clip(base + signs * offset)


def measured_fingerprint(seed: int, epoch: int, evaluator: str, truth: tuple[int, ...]) -> tuple[int, ...]:
    """What an honest evaluator reports for a delta whose true fingerprint is `truth`: plus rounded normal noise
    whose L1 size has the calibrated median (a normal's mean |x| is sigma * sqrt(2 / pi))."""
    sigma = calibration().honest_median / K * math.sqrt(math.pi / 2)
    rng = random_for(seed, epoch, "noise", evaluator, truth)
    return tuple(min(max(value + round(rng.gauss(0.0, sigma)), INT32_MIN), INT32_MAX) for value in truth)


@cache
def dataset_scores(seed: int, epoch: int, kind: str) -> tuple[int, ...]:
    """The true five scores of this epoch's dataset: `good` data scores 45..95 per criterion (its quality
    varies, so always voting one fixed answer is sometimes wrong), `junk` 5..30."""
    rng = rng_for(seed, epoch, "dataset", kind)
    low, high = (45, 96) if kind == "good" else (5, 31)
    return tuple(int(v) for v in rng.integers(low, high, CRITERIA))


def curator_scores(seed: int, epoch: int, curator: str, truth: tuple[int, ...]) -> tuple[int, ...]:
    """An honest curator's reading of a dataset: the truth +-4 per criterion (L1 well inside the tolerance)."""
    rng = random_for(seed, epoch, "read", curator)
    return tuple(min(max(value + rng.randint(-4, 4), 0), MAX_SCORE) for value in truth)
