"""Role and factory fixtures shared by every contract test (brownie, yearn-vaults style).

Every test runs in its own chain snapshot (`fn_isolation`), so none depends on another's leftovers.
"""

import itertools
import re
import time

import brownie
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from web3.exceptions import TransactionNotFound

from workers.chain.staking import permit_typed_data

DSH = 10**18
WAD = 10**18
DAY = 24 * 3600

# Role enum of IStakeRegistry, in declaration order.
INFORMANT, CURATOR, TRAINER, EVALUATOR, STORAGE, INFERENCE = range(6)
ROLES = (INFORMANT, CURATOR, TRAINER, EVALUATOR, STORAGE, INFERENCE)

TOKEN_CAP = 10_000_000 * DSH
GENESIS_SUPPLY = 4_000_000 * DSH
EPOCH_DURATION = 7 * DAY
INITIAL_EPOCH_BUDGET = 100_000 * DSH
DECAY_PER_EPOCH = WAD // 2
UNBONDING_DELAY = 7 * DAY
MIN_STAKES = [100 * DSH, 1_000 * DSH, 1_000 * DSH, 1_000 * DSH, 500 * DSH, 10_000 * DSH]


def custom_error(name, *args):
    """The revert message brownie reports for a Solidity custom error (it prints addresses lower-case)."""
    values = (str(arg).lower() if str(arg).startswith("0x") else str(arg) for arg in args)
    return {"revert_msg": f"{name}: {', '.join(values)}"}


def reverts(name, *args):
    """`brownie.reverts` for a custom error; with no arguments any argument values match."""
    if args:
        return brownie.reverts(**custom_error(name, *args))
    return brownie.reverts(revert_pattern=re.escape(name) + r":.*")


_gas_price_offsets = itertools.count(1)


def use_unique_gas_price():
    """After a snapshot revert, repeating an earlier transaction byte for byte (same sender, nonce and
    calldata) gives the same hash, and anvil then loses track of it ("Tx dropped without known
    replacement"). A gas price unique to each test, or each property-test example, keeps hashes unique."""
    brownie.network.gas_price(10**9 + next(_gas_price_offsets))


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    use_unique_gas_price()


@pytest.fixture(scope="session", autouse=True)
def patient_receipts():
    """Brownie declares a transaction dropped when the sender's nonce has moved but the receipt is not yet
    found; on a loaded machine a local node can briefly answer in that order for a transaction it has just
    mined. Ask again for up to a second before brownie draws that conclusion."""
    eth = brownie.network.web3.eth
    original = eth.get_transaction_receipt

    def get_transaction_receipt(txid):
        for _ in range(20):
            try:
                return original(txid)
            except TransactionNotFound:
                time.sleep(0.05)
        return original(txid)

    eth.get_transaction_receipt = get_transaction_receipt
    yield
    del eth.get_transaction_receipt


@pytest.fixture(scope="module")
def deployer(accounts):
    return accounts[0]


@pytest.fixture(scope="module")
def gov(accounts):
    return accounts[1]


@pytest.fixture(scope="module")
def treasury(accounts):
    return accounts[2]


@pytest.fixture(scope="module")
def alice(accounts):
    return accounts[3]


@pytest.fixture(scope="module")
def bob(accounts):
    return accounts[4]


@pytest.fixture(scope="module")
def module(accounts):
    """An authorised protocol module (DataConsensus, TrainingRounds ... in the deployed network)."""
    return accounts[5]


@pytest.fixture(scope="module")
def other_module(accounts):
    return accounts[6]


@pytest.fixture(scope="module")
def outsider(accounts):
    return accounts[7]


@pytest.fixture(scope="module")
def deploy_emission(Emission, deployer, treasury):
    """Factory: an Emission (and its token) with overridable parameters."""

    def deploy(**overrides):
        params = dict(
            admin=deployer,
            cap=TOKEN_CAP,
            genesis_recipient=treasury,
            genesis_supply=GENESIS_SUPPLY,
            epoch_duration=EPOCH_DURATION,
            initial_epoch_budget=INITIAL_EPOCH_BUDGET,
            decay_per_epoch=DECAY_PER_EPOCH,
        )
        params.update(overrides)
        return Emission.deploy(*params.values(), {"from": deployer})

    return deploy


@pytest.fixture(scope="module")
def emission(deploy_emission, deployer, gov, module):
    emission = deploy_emission()
    emission.grantRole(emission.DRAWER_ROLE(), module, {"from": deployer})
    emission.grantRole(emission.DEFAULT_ADMIN_ROLE(), gov, {"from": deployer})
    emission.renounceRole(emission.DEFAULT_ADMIN_ROLE(), deployer, {"from": deployer})
    return emission


@pytest.fixture(scope="module")
def token(emission, DeepshardToken):
    return DeepshardToken.at(emission.token())


@pytest.fixture(scope="module")
def registry(StakeRegistry, token, deployer, gov, module, other_module):
    registry = StakeRegistry.deploy(token, deployer, UNBONDING_DELAY, MIN_STAKES, {"from": deployer})
    for authorised in (module, other_module):
        registry.grantRole(registry.MODULE_ROLE(), authorised, {"from": deployer})
    registry.grantRole(registry.DEFAULT_ADMIN_ROLE(), gov, {"from": deployer})
    registry.renounceRole(registry.DEFAULT_ADMIN_ROLE(), deployer, {"from": deployer})
    return registry


@pytest.fixture(scope="module")
def fund(token, treasury):
    """Factory: gives `account` DSH from the treasury's genesis allocation."""

    def fund(account, amount):
        token.transfer(account, amount, {"from": treasury})

    return fund


@pytest.fixture(scope="module")
def staked(registry, token, fund):
    """Factory: funds `account` and stakes `amount` in `role` through approve + stake."""

    def stake(account, role, amount):
        fund(account, amount)
        token.approve(registry, amount, {"from": account})
        return registry.stake(role, amount, {"from": account})

    return stake


@pytest.fixture(scope="module")
def sign_permit(token, chain):
    """Factory: an EIP-2612 permit signature (v, r, s) of `owner` (a brownie LocalAccount)."""

    def sign(owner, spender, value, deadline):
        domain = (token.name(), "1", chain.id, token.address)
        typed = permit_typed_data(domain, owner.address, str(spender), value, token.nonces(owner), deadline)
        signed = Account.sign_message(encode_typed_data(full_message=typed), owner.private_key)
        return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")

    return sign


@pytest.fixture
def local_account(accounts, deployer):
    """A fresh account that holds its private key (for signing permits), with ETH for gas."""
    account = accounts.add()
    deployer.transfer(account, "10 ether")
    return account
