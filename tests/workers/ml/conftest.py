"""Shared fixtures of the ML tests: the tiny base model, two synthetic training batches, a small spec,
and the LoRA runs several tests compare (trained once per session; each takes about a second).

Models come from the normal model cache ($DEEPSHARD_MODEL_CACHE or ~/.cache/deepshard/models), so the
one-time builds (tiny: < 1 s, SmolLM2 conversion: ~25 s) are paid once per machine, not per run.
"""

from __future__ import annotations

import pytest
import torch

from workers.ml.fingerprint import build_probe_set, score_probe_set
from workers.ml.models import load_base_model
from workers.ml.seeds import HashRng, derive_seed
from workers.ml.spec import TrainingSpec
from workers.ml.training import train_lora

# Small enough for ~0.7 s per run on 2 CPU cores; lr 3e-3 keeps the tiny model's training stable,
# so float-level noise (thread count, instruction set) stays float-level in the result.
TEST_SPEC = TrainingSpec(
    base_model="tiny",
    lora_rank=4,
    lora_alpha=8.0,
    target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
    learning_rate=3e-3,
    steps=20,
    batch_size=4,
    sequence_length=64,
)
ROUND_SEED = 0x5EED
OTHER_SEED = 0x5EED + 1

_PLACES = ["Harbourside", "Eastmere", "Coldwater", "Brightfield", "Larkspur", "Northgate", "Willowby", "Stonebridge"]
_SUBJECTS = [
    "the observatory",
    "the council",
    "the fishing fleet",
    "the library",
    "the school",
    "the orchard",
    "the rail company",
    "the museum",
    "the weather station",
    "the bakery",
]
_EVENTS = ["recorded", "announced", "counted", "reported", "measured", "celebrated", "repaired", "catalogued"]
_OBJECTS = [
    "meteors",
    "new members",
    "crates of apples",
    "rare books",
    "storm days",
    "visitors",
    "lost bicycles",
    "migrating geese",
    "loaves of rye",
    "broken lamps",
]
_CODA = [
    "Officials said the figure was the highest in a decade.",
    "Residents were not surprised.",
    "A full report will follow next month.",
    "The number was lower than last year.",
    "Volunteers helped with the count.",
    "Nobody could explain the change.",
]


def synthetic_batch(label: str, count: int = 32) -> list[str]:
    """Deterministic 'accepted data': short factual-sounding reports, never in the reference corpus."""
    rng = HashRng(derive_seed(0, "test-batch", label))
    texts = []
    for _ in range(count):
        sentences = [
            f"In {rng.choice(_PLACES)}, {rng.choice(_SUBJECTS)} {rng.choice(_EVENTS)} {10 + rng.randbelow(990)} "
            f"{rng.choice(_OBJECTS)} during the {rng.choice(['spring', 'summer', 'autumn', 'winter'])} of "
            f"{1900 + rng.randbelow(120)}."
            for _ in range(2 + rng.randbelow(2))
        ]
        texts.append(" ".join(sentences + [rng.choice(_CODA)]))
    return texts


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread():
    """One intra-op thread: on a shared 2-core box, two OpenMP threads competing with other processes
    run ~10x slower (spinning barriers). Results are identical run to run either way."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def round_seed() -> int:
    return ROUND_SEED


@pytest.fixture(scope="session")
def other_seed() -> int:
    return OTHER_SEED


@pytest.fixture(scope="session")
def tiny():
    return load_base_model("tiny", device="cpu")


@pytest.fixture(scope="session")
def spec() -> TrainingSpec:
    return TEST_SPEC


@pytest.fixture(scope="session")
def batch() -> list[str]:
    return synthetic_batch("A")


@pytest.fixture(scope="session")
def other_batch() -> list[str]:
    return synthetic_batch("B")


@pytest.fixture(scope="session")
def honest(tiny, batch, spec):
    return train_lora(tiny, batch, spec, ROUND_SEED)


@pytest.fixture(scope="session")
def honest_again(tiny, batch, spec):
    return train_lora(tiny, batch, spec, ROUND_SEED)


@pytest.fixture(scope="session")
def other_seed_run(tiny, batch, spec):
    return train_lora(tiny, batch, spec, OTHER_SEED)


@pytest.fixture(scope="session")
def other_data_run(tiny, other_batch, spec):
    return train_lora(tiny, other_batch, spec, ROUND_SEED)


@pytest.fixture(scope="session")
def probes(batch):
    return build_probe_set(ROUND_SEED, batch)


@pytest.fixture(scope="session")
def base_scores(tiny, probes):
    return score_probe_set(tiny.model, tiny.tokenizer, probes)
