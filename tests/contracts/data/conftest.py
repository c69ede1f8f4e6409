"""The data-consensus tests' parameters and helpers. The fixtures (consensus, pool, informant, submit, vote ...)
are shared with the training and gas tests, so they live in tests/contracts/conftest.py with these."""

from tests.contracts.conftest import (  # noqa: F401  (re-exported for the data tests)
    BOND,
    CID,
    CURATOR_MNEMONIC,
    CURATOR_STAKE,
    GOOD,
    INFORMANT_STAKE,
    INITIAL_THRESHOLD,
    JUNK,
    PARAMS,
    POOL_BOND,
    POOL_SIZE,
    WEIGHTS,
    params_tuple,
    salt_for,
)
