"""The training-round tests' parameters and helpers. The fixtures (rounds, trainers, evaluators, train, evaluate
...) are shared with the model-registry and gas tests, so they live in tests/contracts/conftest.py with these."""

from tests.contracts.conftest import (  # noqa: F401  (re-exported for the training tests)
    EVALUATOR_BOND,
    GENESIS_CID,
    HONEST,
    POISONED,
    ROLE_MNEMONIC,
    ROUND_PARAMS,
    SPEC_HASH,
    TRAINER_BOND,
    delta_cid,
    mine_past,
    noisy,
    round_params,
    salt,
    seated_evaluators,
)
