import brownie
import pytest

from tests.contracts.conftest import DSH, GENESIS_SUPPLY, TOKEN_CAP, reverts


def test_metadata_cap_and_genesis(token, emission, treasury):
    assert token.name() == "Deepshard"
    assert token.symbol() == "DSH"
    assert token.decimals() == 18
    assert token.cap() == TOKEN_CAP
    assert token.totalSupply() == GENESIS_SUPPLY
    assert token.balanceOf(treasury) == GENESIS_SUPPLY
    assert token.minter() == emission


def test_only_the_emission_contract_mints(token, gov, deployer, outsider):
    for caller in (gov, deployer, outsider):
        with reverts("NotMinter", caller.address):
            token.mint(caller, 1, {"from": caller})


def test_cap_must_fit_in_96_bits(deploy_emission):
    too_large = 2**96
    with reverts("CapTooLarge", too_large):
        deploy_emission(cap=too_large, genesis_supply=0)


def test_genesis_above_cap_reverts(deploy_emission):
    with reverts("ERC20ExceededCap"):
        deploy_emission(cap=10 * DSH, genesis_supply=11 * DSH)


def test_zero_genesis_mints_nothing(deploy_emission, DeepshardToken):
    emission = deploy_emission(genesis_supply=0)
    assert DeepshardToken.at(emission.token()).totalSupply() == 0


def test_permit_sets_allowance(token, local_account, bob, sign_permit, chain):
    deadline = chain.time() + 3600
    v, r, s = sign_permit(local_account, bob, 5 * DSH, deadline)
    token.permit(local_account, bob, 5 * DSH, deadline, v, r, s, {"from": bob})
    assert token.allowance(local_account, bob) == 5 * DSH
    assert token.nonces(local_account) == 1


def test_permit_replay_and_expiry_revert(token, local_account, bob, sign_permit, chain):
    deadline = chain.time() + 3600
    v, r, s = sign_permit(local_account, bob, DSH, deadline)
    token.permit(local_account, bob, DSH, deadline, v, r, s, {"from": bob})
    with reverts("ERC2612InvalidSigner"):
        token.permit(local_account, bob, DSH, deadline, v, r, s, {"from": bob})
    expired = chain.time() - 1
    v, r, s = sign_permit(local_account, bob, DSH, expired)
    with reverts("ERC2612ExpiredSignature"):
        token.permit(local_account, bob, DSH, expired, v, r, s, {"from": bob})


@pytest.mark.parametrize("amount", [0, 1, GENESIS_SUPPLY])
def test_transfer_moves_balances(token, treasury, alice, amount):
    token.transfer(alice, amount, {"from": treasury})
    assert token.balanceOf(alice) == amount
    assert token.balanceOf(treasury) == GENESIS_SUPPLY - amount


def test_transfer_above_balance_reverts(token, alice, bob):
    with reverts("ERC20InsufficientBalance"):
        token.transfer(bob, 1, {"from": alice})
    assert brownie.history[-1].status == 0
