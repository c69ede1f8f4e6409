"""Fixtures of the library tests: the test-only harness contracts of contracts/test/, each a thin external
wrapper around a library (or, for the sortition pool, a minimal concrete pool over the real StakeRegistry).

The tests here feed them and `workers.protocol`, the Python reference, the same vectors.
"""

import os

import pytest

from tests.contracts.conftest import DSH, EVALUATOR

#: Hypothesis examples per property (Ganache runs fewer through DEEPSHARD_STATEFUL_EXAMPLES).
EXAMPLES = int(os.environ.get("DEEPSHARD_STATEFUL_EXAMPLES", "30"))
POOL_MIN_BOND = 10 * DSH
# A public BIP-39 test mnemonic used by no other fixture: deterministic pool members.
POOL_MNEMONIC = "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong"
POOL_STAKE = 100_000 * DSH


@pytest.fixture(scope="module")
def median_harness(WeightedMedianHarness, deployer):
    return WeightedMedianHarness.deploy({"from": deployer})


@pytest.fixture(scope="module")
def math_harness(FixedPointMathHarness, deployer):
    return FixedPointMathHarness.deploy({"from": deployer})


@pytest.fixture(scope="module")
def tree_harness(SortitionTreeHarness, deployer):
    """A fresh, empty tree (tests that change it run in their own snapshot)."""
    return SortitionTreeHarness.deploy({"from": deployer})


@pytest.fixture(scope="module")
def code_store(CodeStoreHarness, deployer):
    return CodeStoreHarness.deploy({"from": deployer})


@pytest.fixture(scope="module")
def sortition_pool(SortitionPoolHarness, registry, gov, treasury, deployer):
    """A SortitionPool over EVALUATOR stake with a 10 DSH minimum bond; penalties go to the treasury."""
    pool = SortitionPoolHarness.deploy(registry, EVALUATOR, POOL_MIN_BOND, treasury, {"from": deployer})
    registry.grantRole(registry.MODULE_ROLE(), pool, {"from": gov})
    return pool


@pytest.fixture(scope="module")
def pool_members(accounts, staked, deployer):
    """Twelve accounts with 100,000 DSH of EVALUATOR stake each, not yet in the pool."""
    members = accounts.from_mnemonic(POOL_MNEMONIC, count=12)
    for member in members:
        deployer.transfer(member, "1 ether")
        staked(member, EVALUATOR, POOL_STAKE)
    return members
