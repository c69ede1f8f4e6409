"""Evaluation tasks (queue `evaluator`): the curvature fingerprints of a round's revealed deltas.

    fingerprint_delta.delay(round_id, "tiny", base_delta_cids, dataset_manifest_cids, spec_json, round_seed,
                            delta_cid)                -> {"fingerprint": [16 ints], "seconds": 0.8}
    fingerprint_deltas.delay(round_id, "tiny", base_delta_cids, dataset_manifest_cids, spec_json, round_seed,
                             delta_cids)              -> {"fingerprints": [[16 ints] | None, ...],
                                                          "errors": [None | "why", ...], "seconds": 2.1}

The round's arguments are those of `workers.tasks.training.train_delta` (same validation, same base version,
same texts). The probe set is `workers.ml.fingerprint.build_probe_set(round_seed, round texts)`; a delta's
fingerprint is base+delta against the round's base version (the genesis model with the lineage merged),
as `workers.ml.fingerprint.fingerprint_delta` computes it. The base version's probe scores are computed
once per round and process and shared by every delta of the round.

Every delta comes from an untrusted trainer: it is fetched (verified against its CID, read no further than
the largest valid delta) and validated by `load_delta` (safetensors only, this spec and base version, known
tensors of the right shapes, finite values) before anything is loaded. `fingerprint_delta` fails at once,
without retries, with a `TaskInputError` naming the problem; `fingerprint_deltas` gives that delta `None` and
its reason in `errors`, and fingerprints the others (the evaluator must reveal something for every delta:
what a rejected one gets is the round's protocol to decide).

`seconds`: for `fingerprint_delta`, fetching, validating, merging and scoring the delta (the base's shared
scoring excluded, like the verification benchmark's cost figure); for `fingerprint_deltas`, the whole call.
Results are remembered per process like `train_delta`'s ($DEEPSHARD_TASK_RESULT_CACHE).
"""

from __future__ import annotations

import time

from ..storage import ContentStore, open_store
from .app import app
from .base import RETRY_POLICY
from .errors import TaskInputError
from .training import (
    LruCache,
    RoundInputs,
    _ml_lock,
    _results,
    base_version,
    load_checked_delta,
    parse_cids,
    parse_round_inputs,
    reseed,
    round_texts,
)

#: Rounds whose base version, probe set and base scores a process keeps.
ROUNDS_KEPT = 4

_rounds = LruCache(ROUNDS_KEPT)


class _Round:
    """What every delta of a round is fingerprinted against."""

    def __init__(self, base, probes, base_scores):
        self.base = base
        self.probes = probes
        self.base_scores = base_scores


def _round(store: ContentStore, inputs: RoundInputs) -> _Round:
    key = (inputs.lineage_key, inputs.dataset_cids, inputs.seed)
    cached = _rounds.get(key)
    if cached is not None:
        return cached
    from ..ml.fingerprint import build_probe_set, score_probe_set

    texts = round_texts(store, inputs.dataset_cids)
    base = base_version(store, inputs)
    try:
        probes = build_probe_set(inputs.seed, texts)
    except ValueError as exc:
        raise TaskInputError(f"cannot build the round's probe set: {exc}") from None
    round_ = _Round(base, probes, score_probe_set(base.model, base.tokenizer, probes))
    _rounds.put(key, round_)
    return round_


def _fingerprint_one(store: ContentStore, inputs: RoundInputs, round_: _Round, delta_cid: str) -> dict:
    """{"fingerprint", "seconds"} of one delta; TaskInputError when the delta is missing or rejected."""
    key = ("fingerprint", inputs.key, delta_cid)
    cached = _results.get(key)
    if cached is not None:
        return dict(cached)
    from ..ml.fingerprint import FINGERPRINT_LENGTH
    from ..ml.fingerprint import fingerprint_delta as compute_fingerprint

    started = time.perf_counter()
    delta = load_checked_delta(store, delta_cid, inputs.spec, round_.base)
    reseed(inputs.seed, f"fingerprint/{delta_cid}")
    try:
        fingerprint = compute_fingerprint(round_.base, delta, round_.probes, round_.base_scores)
    except ValueError as exc:  # a statistic that is not finite: the delta breaks the model
        raise TaskInputError(f"delta {delta_cid} cannot be fingerprinted: {exc}") from None
    if len(fingerprint) != FINGERPRINT_LENGTH:
        raise RuntimeError(f"fingerprint of {len(fingerprint)} values, expected {FINGERPRINT_LENGTH}")
    out = {"fingerprint": [int(v) for v in fingerprint], "seconds": time.perf_counter() - started}
    _results.put(key, out)
    return dict(out)


@app.task(name="workers.tasks.evaluation.fingerprint_delta", throws=(TaskInputError,), **RETRY_POLICY)
def fingerprint_delta(
    round_id: int,
    base_model: str,
    base_delta_cids: list[str],
    dataset_manifest_cids: list[str],
    spec_json: str,
    round_seed: str,
    delta_cid: str,
    base_delta_specs: list[str] | None = None,
) -> dict:
    """The fingerprint (16 ints) of one revealed delta of the round; TaskInputError if it is rejected."""
    inputs = parse_round_inputs(
        round_id, base_model, base_delta_cids, dataset_manifest_cids, spec_json, round_seed, base_delta_specs
    )
    (cid,) = parse_cids([delta_cid], "delta_cid")
    with _ml_lock, open_store() as store:
        reseed(inputs.seed, "fingerprint_delta")
        return _fingerprint_one(store, inputs, _round(store, inputs), cid)


@app.task(name="workers.tasks.evaluation.fingerprint_deltas", throws=(TaskInputError,), **RETRY_POLICY)
def fingerprint_deltas(
    round_id: int,
    base_model: str,
    base_delta_cids: list[str],
    dataset_manifest_cids: list[str],
    spec_json: str,
    round_seed: str,
    delta_cids: list[str],
    base_delta_specs: list[str] | None = None,
) -> dict:
    """One fingerprint per delta, in the order given, the base scored once; a rejected delta gets None and
    its reason in `errors` (the round's own inputs being wrong still fails the task)."""
    started = time.perf_counter()
    inputs = parse_round_inputs(
        round_id, base_model, base_delta_cids, dataset_manifest_cids, spec_json, round_seed, base_delta_specs
    )
    if not isinstance(delta_cids, (list, tuple)):
        raise TaskInputError(f"delta_cids must be a list of CIDs, got {type(delta_cids).__name__}")
    fingerprints: list[list[int] | None] = []
    errors: list[str | None] = []
    with _ml_lock, open_store() as store:
        reseed(inputs.seed, "fingerprint_deltas")
        round_ = _round(store, inputs)
        for i, raw in enumerate(delta_cids):
            try:
                (cid,) = parse_cids([raw], f"delta_cids[{i}]")
                fingerprints.append(_fingerprint_one(store, inputs, round_, cid)["fingerprint"])
                errors.append(None)
            except TaskInputError as exc:
                fingerprints.append(None)
                errors.append(str(exc))
    return {"fingerprints": fingerprints, "errors": errors, "seconds": time.perf_counter() - started}
