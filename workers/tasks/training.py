"""Training tasks (queue `trainer`): train a round's LoRA delta and pin it sealed.

    train_delta.delay(round_id, "tiny", base_delta_cids, dataset_manifest_cids, spec_json, round_seed)
        -> {"delta_cid": "bafk...", "sealed_cid": "bafk...", "key": "<64 hex>", "manifest": {...},
            "tokens": 10240, "seconds": 4.2}

The inputs are what a round fixes on-chain: the base model's name, the lineage of accepted deltas from the
genesis to the round's base version (oldest first), the round's datasets (manifest CIDs, in the round's
order), its TrainingSpec (canonical JSON, or any JSON `TrainingSpec.from_json` accepts) and its seed (a
0x-hex bytes32). Same inputs, same delta CID: training is deterministic for a fixed torch thread count and
instruction set; a worker process also remembers its results, so a redelivered task returns at once.

The delta is pinned sealed (`workers.storage.sealed`: AES-256-GCM under a fresh random key), never in the clear:
honest deltas are byte-identical, so a delta readable in the store before the round's commit deadline could be
committed by anyone who did not train. `delta_cid` is the plaintext's CID computed here; the trainer's step
commits it, and in the reveal window opens the sealed blob (`sealed_cid`, `key`) and pins the plaintext
(`workers.rounds.steps.trainer_once`). The key travels only in the task's result (the operator's own Redis).

The round's texts (`round_texts`, shared with the evaluator): the records of each dataset in the order
given, each dataset's records in file order, a text seen before (in an earlier dataset) dropped.

ML runs only inside the task, in the worker's child process: this module never imports torch (a prefork
parent that ran torch before forking deadlocks its children). The first task of a process imports torch,
fixes its thread count to `$DEEPSHARD_TORCH_THREADS` (default 1: adapter bytes depend on it) and loads the
base model; the process keeps it, and the last merged lineages, for the next tasks. Each task reseeds
torch's, numpy's and Python's global RNGs from the round seed, so no RNG state leaks from one task into
the next (`train_lora` draws from its own sub-seeds anyway).

Retries: like every task, only on what time can fix (storage node, Redis). Input that cannot work fails at
once with `TaskInputError` naming the problem: a bad spec, seed or CID, a dataset that is missing or not
what its manifest says, a lineage delta that `load_delta` rejects or that does not chain onto the base.
"""

from __future__ import annotations

import os
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from ..config import env_number
from ..data.chain import DatasetUnusable, fetch_dataset
from ..data.dataset import DataError
from ..data.quality import read_texts
from ..ml.seeds import SeedError, derive_int_seed, seed_hex
from ..ml.spec import SpecError, TrainingSpec
from ..storage import ContentStore, FileTooLarge, InvalidCid, NotFound, UnsupportedContent, open_store, parse_cid
from ..storage.sealed import add_sealed
from .app import app
from .base import RETRY_POLICY
from .errors import TaskInputError

#: torch intra-op threads of a worker process; the adapter's bytes depend on it (default 1).
TORCH_THREADS_ENV = "DEEPSHARD_TORCH_THREADS"
DEFAULT_TORCH_THREADS = 1
#: Results (delta CIDs, fingerprints) a worker process remembers, keyed by the task's inputs (default 64;
#: 0 turns the memory off: every task recomputes).
RESULT_CACHE_ENV = "DEEPSHARD_TASK_RESULT_CACHE"
DEFAULT_RESULT_CACHE = 64
#: Merged lineages (one full model each) a worker process keeps besides the genesis models.
MERGED_MODELS_KEPT = 2

#: Storage errors caused by the input (wrong or missing content), not by the store.
INPUT_STORAGE_ERRORS = (InvalidCid, UnsupportedContent, NotFound, FileTooLarge)

# One ML job at a time per process (the thread pool would otherwise share models and torch threads).
_ml_lock = threading.RLock()


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class RoundInputs:
    """A round's inputs, validated and in canonical form (CIDs as base32 CIDv1, the seed as 0x-hex)."""

    round_id: int
    base_model: str
    base_delta_cids: tuple[str, ...]
    base_delta_specs: tuple[TrainingSpec, ...]  # the spec each lineage delta was trained under
    dataset_cids: tuple[str, ...]
    spec: TrainingSpec
    seed: str

    @property
    def lineage_key(self) -> tuple:
        return (
            self.base_model,
            tuple(zip(self.base_delta_cids, (s.spec_hash_hex() for s in self.base_delta_specs), strict=True)),
        )

    @property
    def key(self) -> tuple:
        """Everything that decides a delta or a fingerprint (the round id does not)."""
        return (self.lineage_key, self.dataset_cids, self.spec.spec_hash_hex(), self.seed, torch_threads())


def parse_round_inputs(
    round_id: Any,
    base_model: Any,
    base_delta_cids: Any,
    dataset_manifest_cids: Any,
    spec_json: Any,
    round_seed: Any,
    base_delta_specs: Any = None,
) -> RoundInputs:
    """Validates a task's round arguments; `TaskInputError` naming the first problem."""
    if isinstance(round_id, bool) or not isinstance(round_id, int) or round_id < 0:
        raise TaskInputError(f"round_id must be a non-negative int, got {round_id!r}")
    if not isinstance(base_model, str) or not base_model:
        raise TaskInputError(f"base_model must be a model name, got {base_model!r}")
    spec = parse_spec(spec_json, "spec_json")
    if spec.base_model != base_model:
        raise TaskInputError(f"the spec is for base model {spec.base_model!r}, the round's is {base_model!r}")
    try:
        seed = seed_hex(round_seed)
    except SeedError as exc:
        raise TaskInputError(f"round_seed: {exc}") from None
    lineage = parse_cids(base_delta_cids, "base_delta_cids")
    datasets = parse_cids(dataset_manifest_cids, "dataset_manifest_cids")
    if not datasets:
        raise TaskInputError("dataset_manifest_cids is empty: a round trains on at least one dataset")
    if base_delta_specs is None:
        lineage_specs = tuple(spec for _ in lineage)
    else:
        if not isinstance(base_delta_specs, (list, tuple)) or len(base_delta_specs) != len(lineage):
            raise TaskInputError(
                f"base_delta_specs must be a list of {len(lineage)} spec JSON strings, one per base delta"
            )
        lineage_specs = tuple(parse_spec(raw, f"base_delta_specs[{i}]") for i, raw in enumerate(base_delta_specs))
        for i, lineage_spec in enumerate(lineage_specs):
            if lineage_spec.base_model != base_model:
                raise TaskInputError(
                    f"base_delta_specs[{i}] is for base model {lineage_spec.base_model!r}, "
                    f"the round's is {base_model!r}"
                )
    return RoundInputs(round_id, base_model, lineage, lineage_specs, datasets, spec, seed)


def parse_spec(raw: Any, what: str) -> TrainingSpec:
    if not isinstance(raw, (str, bytes)):
        raise TaskInputError(f"{what} must be the spec's JSON text, got {type(raw).__name__}")
    try:
        return TrainingSpec.from_json(raw)
    except (SpecError, TypeError) as exc:
        raise TaskInputError(f"{what}: {exc}") from None


def parse_cids(values: Any, what: str) -> tuple[str, ...]:
    if not isinstance(values, (list, tuple)):
        raise TaskInputError(f"{what} must be a list of CIDs, got {type(values).__name__}")
    out = []
    for i, value in enumerate(values):
        try:
            out.append(str(parse_cid(value)))
        except (InvalidCid, UnsupportedContent) as exc:
            raise TaskInputError(f"{what}[{i}]: {exc}") from None
    return tuple(out)


# ---------------------------------------------------------------- process-local state


def torch_threads() -> int:
    """`$DEEPSHARD_TORCH_THREADS`, else 1."""
    return env_number(TORCH_THREADS_ENV, DEFAULT_TORCH_THREADS, int, unit="threads")


def ml_runtime():
    """torch, imported on first use (in the worker's child process), with the configured thread count."""
    # Passive OpenMP waits: spinning threads on a shared box are many times slower; results are unchanged.
    # Read only when the OpenMP runtime starts, i.e. at torch's first import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    threads = torch_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch


def reseed(seed: str, label: str) -> None:
    """Resets the global RNGs (torch, numpy, Python) from the round seed, so no task sees another's state."""
    torch = ml_runtime()
    import numpy as np

    value = derive_int_seed(seed, "celery-task", label)
    torch.manual_seed(value)
    np.random.seed(value % 2**32)
    random.seed(value)


class LruCache:
    """A small least-recently-used map; `capacity` 0 keeps nothing."""

    def __init__(self, capacity: int | Callable[[], int]):
        self._capacity = capacity
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    @property
    def capacity(self) -> int:
        return self._capacity() if callable(self._capacity) else self._capacity

    def get(self, key: Hashable) -> Any:
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: Hashable, value: Any) -> None:
        capacity = self.capacity
        if capacity <= 0:
            self._items.clear()
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > capacity:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


def result_cache_size() -> int:
    """`$DEEPSHARD_TASK_RESULT_CACHE` entries (0 keeps none), else 64."""
    return env_number(RESULT_CACHE_ENV, DEFAULT_RESULT_CACHE, int, unit="entries", minimum=0)


_genesis_models: dict[str, Any] = {}
_merged_models = LruCache(MERGED_MODELS_KEPT)
_results = LruCache(result_cache_size)


def genesis_model(name: str):
    """The named base model, loaded once per process."""
    model = _genesis_models.get(name)
    if model is None:
        ml_runtime()
        from ..ml.models import ModelError, load_base_model

        try:
            model = load_base_model(name)
        except ModelError as exc:
            raise TaskInputError(str(exc)) from None
        _genesis_models[name] = model
    return model


# ---------------------------------------------------------------- content


def round_texts(store: ContentStore, dataset_cids: tuple[str, ...]) -> list[str]:
    """The round's training texts: each dataset's records in order, datasets in the order given, a text
    already taken from an earlier dataset skipped. Every dataset is verified against its manifest."""
    texts: list[str] = []
    seen: set[str] = set()
    for cid in dataset_cids:
        try:
            dataset = fetch_dataset(store, cid)
            records, _ = read_texts(dataset.data)
        except (DatasetUnusable, DataError, *INPUT_STORAGE_ERRORS) as exc:
            raise TaskInputError(f"dataset {cid}: {exc}") from None
        for record in records:
            if record.text not in seen:
                seen.add(record.text)
                texts.append(record.text)
    if not texts:
        raise TaskInputError("the round's datasets hold no texts")
    return texts


def delta_size_limit(spec: TrainingSpec, base) -> int:
    """The most bytes a valid delta for `spec` on `base` can have (what `load_delta` allows)."""
    from ..ml.delta import MAX_HEADER_BYTES, expected_lora_shapes

    shapes = expected_lora_shapes(spec, base.model)
    return sum(4 * _product(shape) for shape in shapes.values()) + 8 + MAX_HEADER_BYTES


def _product(shape) -> int:
    out = 1
    for dim in shape:
        out *= dim
    return out


class DeltaTooLarge(TaskInputError):
    """A delta larger than any valid delta for the spec and base could be (it is not read any further)."""


def fetch_delta_bytes(store: ContentStore, cid: str, limit: int) -> bytes:
    """The delta's bytes, verified against its CID, read no further than `limit` bytes.

    NotFound / FileTooLarge / other input storage errors propagate (callers name the delta).
    """
    content = bytearray()
    for piece in store.iter_content(cid):
        content += piece
        if len(content) > limit:
            raise DeltaTooLarge(f"delta {cid} is over the size limit of {limit} bytes")
    return bytes(content)


def load_checked_delta(store: ContentStore, cid: str, spec: TrainingSpec, base, what: str = "delta"):
    """Fetches and validates (`load_delta`) the delta `cid` for `spec` on `base`; `TaskInputError` naming
    `what` and the problem when it is missing, too large or rejected."""
    from ..ml.delta import DeltaRejected, load_delta

    try:
        limit = delta_size_limit(spec, base)
        data = fetch_delta_bytes(store, cid, limit)
        return load_delta(data, spec, base, max_bytes=limit)
    except DeltaTooLarge as exc:
        raise TaskInputError(f"{what} rejected: {exc}") from None
    except DeltaRejected as exc:
        raise TaskInputError(f"{what} {cid} rejected: {exc}") from None
    except SpecError as exc:
        raise TaskInputError(f"{what} {cid}: the spec does not fit base model {base.name!r}: {exc}") from None
    except INPUT_STORAGE_ERRORS as exc:
        raise TaskInputError(f"{what} {cid}: {exc}") from None


def base_version(store: ContentStore, inputs: RoundInputs):
    """The round's base version: the genesis model with the lineage's deltas merged in order, each one
    validated against the version it was trained on. Kept per process (the longest cached prefix of the
    lineage is reused)."""
    from ..ml.delta import DeltaRejected
    from ..ml.merge import merge_deltas

    lineage = list(zip(inputs.base_delta_cids, inputs.base_delta_specs, strict=True))
    start, current = 0, None
    for length in range(len(lineage), 0, -1):
        current = _merged_models.get((inputs.base_model, _lineage_id(lineage[:length])))
        if current is not None:
            start = length
            break
    if current is None:
        current = genesis_model(inputs.base_model)
    for position in range(start, len(lineage)):
        cid, spec = lineage[position]
        delta = load_checked_delta(store, cid, spec, current, what=f"base delta {position}")
        try:
            current = merge_deltas(current, [delta])
        except DeltaRejected as exc:
            raise TaskInputError(f"base delta {position} {cid} rejected: {exc}") from None
    if lineage and start != len(lineage):
        _merged_models.put((inputs.base_model, _lineage_id(lineage)), current)
    return current


def _lineage_id(lineage: list[tuple[str, TrainingSpec]]) -> tuple:
    return tuple((cid, spec.spec_hash_hex()) for cid, spec in lineage)


# ---------------------------------------------------------------- the task


@app.task(name="workers.tasks.training.train_delta", throws=(TaskInputError,), **RETRY_POLICY)
def train_delta(
    round_id: int,
    base_model: str,
    base_delta_cids: list[str],
    dataset_manifest_cids: list[str],
    spec_json: str,
    round_seed: str,
    base_delta_specs: list[str] | None = None,
) -> dict:
    """Trains the round's LoRA delta on its datasets, on top of its base version, and pins the adapter.

    Returns {"delta_cid" (the plaintext's CID, not in the store yet), "sealed_cid" (the pinned sealed delta),
    "key" (its 32-byte key, hex), "manifest" (the DeltaManifest as a dict), "tokens" (trained on), "seconds" (of
    the training loop)}. `base_delta_specs`: the spec JSON each lineage delta was trained under, when it is not
    the round's spec.
    """
    inputs = parse_round_inputs(
        round_id, base_model, base_delta_cids, dataset_manifest_cids, spec_json, round_seed, base_delta_specs
    )
    key = ("train_delta", inputs.key)
    with _ml_lock, open_store() as store:
        cached = _results.get(key)
        if cached is not None and store.has(cached["sealed_cid"]):
            return dict(cached)
        ml_runtime()
        from ..ml.training import TrainingError, train_lora

        texts = round_texts(store, inputs.dataset_cids)
        base = base_version(store, inputs)
        reseed(inputs.seed, "train_delta")
        try:
            result = train_lora(base, texts, inputs.spec, inputs.seed)
        except (TrainingError, SpecError) as exc:
            raise TaskInputError(f"cannot train: {exc}") from None
        sealed = add_sealed(store, result.adapter)
    out = {
        "delta_cid": sealed.cid,
        "sealed_cid": sealed.sealed_cid,
        "key": sealed.key.hex(),
        "manifest": result.manifest.to_dict(),
        "tokens": int(result.tokens),
        "seconds": float(result.seconds),
    }
    _results.put(key, out)
    return dict(out)
