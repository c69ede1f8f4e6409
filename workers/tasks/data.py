"""Dataset tasks (queue `data`): pin a dataset, score a pinned one.

    pin_dataset.delay(path="/shared/data.jsonl")        -> {"manifest_cid": ..., "manifest": {...}}
    pin_dataset.delay(data_base64="eyJ0ZXh0Ijo...")
    score_dataset.delay(manifest_cid, corpus_cids=[...]) -> {"vote": [...], "scores": {...}, "signals": {...}, ...}

Both are idempotent (content addressing: the same input gives the same CIDs, re-pinning changes nothing),
so an at-least-once redelivery is harmless. They retry on an unreachable storage node or Redis, and fail
at once with `TaskInputError` on input that cannot work: an invalid dataset, a malformed CID, content
that is not what its manifest claims. The store is `open_store()`: $DEEPSHARD_IPFS_API, else the
embedded store at $DEEPSHARD_STORE_DIR.
"""

from __future__ import annotations

import base64
import binascii

from ..data import chain as data_chain
from ..data.dataset import DataError, InvalidDataset
from ..storage import FileTooLarge, InvalidCid, NotFound, UnsupportedContent, open_store
from .app import app
from .base import RETRY_POLICY
from .errors import TaskInputError

#: Storage errors caused by the input (the caller named wrong or missing content), not by the store.
INPUT_STORAGE_ERRORS = (InvalidCid, UnsupportedContent, NotFound)


def _as_input_error(exc: Exception) -> TaskInputError:
    if isinstance(exc, InvalidDataset):
        return TaskInputError(data_chain.describe_invalid(exc))
    if isinstance(exc, OSError):
        return TaskInputError(f"cannot read {exc.filename or 'the dataset'}: {exc.strerror or exc}")
    return TaskInputError(str(exc))


@app.task(name="workers.tasks.data.pin_dataset", throws=(TaskInputError,), **RETRY_POLICY)
def pin_dataset(path: str | None = None, data_base64: str | None = None) -> dict:
    """Validates, normalises and pins a dataset file (a path this worker can read) or its bytes in base64;
    returns the manifest and its CID."""
    source: str | bytes
    if path is not None and data_base64 is None:
        source = path
    elif data_base64 is not None and path is None:
        try:
            source = base64.b64decode(data_base64, validate=True)
        except (binascii.Error, ValueError):
            raise TaskInputError("data_base64 is not valid base64") from None
    else:
        raise TaskInputError("pin_dataset takes exactly one of path and data_base64")
    try:
        with open_store() as store:
            return data_chain.pin_dataset(source, store).to_dict()
    except (DataError, OSError, FileTooLarge) as exc:
        raise _as_input_error(exc) from None


@app.task(name="workers.tasks.data.score_dataset", throws=(TaskInputError,), **RETRY_POLICY)
def score_dataset(manifest_cid: str, corpus_cids: list[str] | None = None) -> dict:
    """Fetches a pinned dataset by its manifest CID (verified), computes its quality signals and the
    baseline CuratorPolicy scores against the accepted `corpus_cids`."""
    try:
        with open_store() as store:
            return data_chain.score_dataset(store, manifest_cid, corpus_cids or [])
    except (DataError, *INPUT_STORAGE_ERRORS) as exc:
        raise _as_input_error(exc) from None
