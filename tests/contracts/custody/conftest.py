"""The custody tests' parameters and helpers. The fixtures (storage, storage_nodes, store_shard, weight_access,
list_version ...) are shared with the gas test, so they live in tests/contracts/conftest.py with these."""

import os

from tests.contracts.conftest import (  # noqa: F401  (re-exported for the custody tests)
    ACCESS_PARAMS,
    CAPACITY,
    NODE_STAKE,
    STORAGE_NODES,
    STORAGE_PARAMS,
    VERSION_KEY,
    access_params,
    mine_past,
    replica_bytes,
    storage_params,
)

#: Hypothesis examples per property: half the other suites' (Ganache runs fewer through DEEPSHARD_STATEFUL_EXAMPLES).
EXAMPLES = int(os.environ.get("DEEPSHARD_STATEFUL_EXAMPLES", "30")) // 2


def open_audit(storage, chain):
    """Mines to the next audit epoch's seed block, then one past it, and challenges that epoch: returns the
    epoch and the AuditOpened event."""
    interval = STORAGE_PARAMS["auditInterval"]
    epoch = chain.height // interval + 1
    mine_past(chain, epoch * interval)
    tx = storage.challenge(epoch)
    return epoch, tx.events["AuditOpened"]
