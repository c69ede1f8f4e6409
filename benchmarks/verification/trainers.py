"""The trainers of a benchmark round: honest ones and adversaries, each producing one LoRA delta.

Every delta carries the honest run's manifest (spec hash, base weights, round seed, data digest): the
manifest is self-reported, so a cheater forges it for free; only the tensors are evidence.

Honest trainers (all run the round's seed on the round's batch under the round's spec):
- `honest`: on this machine, at the benchmark's torch thread count (byte-identical to any rerun here).
- `honest_noise_1e-3`: the honest delta with relative Gaussian noise 1e-3 on every LoRA element, standing
  in for another CPU instruction set (AVX2 vs AVX-512 measured ~3e-4) or GPU.
- `honest_threads_2`: a real rerun at another torch thread count (2 when the benchmark runs at 1, else 1),
  which changes the reduction order of the float sums.

Adversaries:
- `lazy`: no training, a zero delta.
- `random_delta`: Gaussian tensors with each tensor's Frobenius norm equal to the honest one's.
- `scaled_x0.5`, `scaled_x2`: the honest update B @ A scaled by 0.5 / 2 (B multiplied by the factor).
- `other_data`: trained with the round's seed and spec on another batch of the same distribution.
- `poisoned_5pct`, `poisoned_20pct`: trained on the round's batch with 5% / 20% of the records carrying a
  backdoor trigger phrase and payload (`corpus.poison`).
- `half_steps`: trained on the round's batch and seed for half the spec's steps.
- `copy_other_round`: an honest delta of another round seed, trained on this round's batch (the hard form
  of copying another round's delta: same data, only the seed differs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass

import torch

from benchmarks.verification.corpus import poison, round_batch
from workers.ml.delta import LoraDelta
from workers.ml.models import BaseModel
from workers.ml.seeds import derive_int_seed, derive_seed
from workers.ml.spec import TrainingSpec
from workers.ml.training import TrainingResult, train_lora

HONEST = ("honest", "honest_noise_1e-3", "honest_threads_2")
ADVERSARIES = (
    "lazy",
    "random_delta",
    "scaled_x0.5",
    "scaled_x2",
    "other_data",
    "poisoned_5pct",
    "poisoned_20pct",
    "half_steps",
    "copy_other_round",
)
HARDWARE_NOISE = 1e-3


@contextlib.contextmanager
def torch_threads(count: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def other_thread_count() -> int:
    return 2 if torch.get_num_threads() == 1 else 1


@dataclass
class HonestRun:
    result: TrainingResult  # the `honest` run on this machine
    wall_seconds: float  # train_lora call, setup included
    deltas: dict[str, LoraDelta]  # every honest class


def relative_noise(delta: LoraDelta, scale: float, seed: int) -> LoraDelta:
    generator = torch.Generator().manual_seed(seed)
    return delta.with_tensors(
        {
            name: t * (1 + scale * torch.randn(t.shape, generator=generator, dtype=t.dtype))
            for name, t in delta.tensors.items()
        }
    )


def honest_trainers(base: BaseModel, batch: list[str], spec: TrainingSpec, seed: str) -> HonestRun:
    started = time.perf_counter()
    result = train_lora(base, batch, spec, seed)
    wall = time.perf_counter() - started
    with torch_threads(other_thread_count()):
        rerun = train_lora(base, batch, spec, seed)
    deltas = {
        "honest": result.delta,
        "honest_noise_1e-3": relative_noise(result.delta, HARDWARE_NOISE, derive_int_seed(seed, "bench-noise")),
        "honest_threads_2": result.delta.with_tensors(rerun.delta.tensors),
    }
    return HonestRun(result=result, wall_seconds=wall, deltas=deltas)


def _forge(honest: LoraDelta, run: TrainingResult) -> LoraDelta:
    return honest.with_tensors(run.delta.tensors)


def adversary_deltas(
    base: BaseModel, batch: list[str], spec: TrainingSpec, seed: str, honest: LoraDelta
) -> dict[str, LoraDelta]:
    tensors = honest.tensors
    generator = torch.Generator().manual_seed(derive_int_seed(seed, "bench-random"))
    random = {}
    for name, t in tensors.items():
        draw = torch.randn(t.shape, generator=generator, dtype=t.dtype)
        random[name] = draw * (t.norm() / draw.norm())

    def scaled(factor: float) -> LoraDelta:
        return honest.with_tensors({n: t * factor if ".lora_B." in n else t.clone() for n, t in tensors.items()})

    half = dataclasses.replace(spec, steps=max(1, spec.steps // 2))
    other_round = "0x" + derive_seed(seed, "bench-other-round").hex()
    deltas = {
        "lazy": honest.with_tensors({n: torch.zeros_like(t) for n, t in tensors.items()}),
        "random_delta": honest.with_tensors(random),
        "scaled_x0.5": scaled(0.5),
        "scaled_x2": scaled(2.0),
        "other_data": _forge(honest, train_lora(base, round_batch(seed, "other"), spec, seed)),
        "poisoned_5pct": _forge(honest, train_lora(base, poison(batch, 0.05, seed), spec, seed)),
        "poisoned_20pct": _forge(honest, train_lora(base, poison(batch, 0.20, seed), spec, seed)),
        "half_steps": _forge(honest, train_lora(base, batch, half, seed)),
        "copy_other_round": _forge(honest, train_lora(base, batch, spec, other_round)),
    }
    assert tuple(deltas) == ADVERSARIES
    return deltas
