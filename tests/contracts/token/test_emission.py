from brownie.test import given, strategy
from hypothesis import settings

from tests.contracts.conftest import (
    DAY,
    DECAY_PER_EPOCH,
    DSH,
    EPOCH_DURATION,
    GENESIS_SUPPLY,
    INITIAL_EPOCH_BUDGET,
    WAD,
    reverts,
)


def reference_budget(initial, decay, epoch):
    """Python model of FixedPointMath.powWad + mulWad: square-and-multiply, flooring at each step."""
    result, base = WAD, decay
    while epoch and base:
        if epoch & 1:
            result = result * base // WAD
        base = base * base // WAD
        epoch >>= 1
    if epoch:
        result = 0
    return initial * result // WAD


def test_budget_decays_geometrically(emission):
    assert emission.epochBudget(0) == INITIAL_EPOCH_BUDGET
    assert emission.epochBudget(1) == INITIAL_EPOCH_BUDGET // 2
    assert emission.epochBudget(3) == INITIAL_EPOCH_BUDGET // 8
    assert emission.epochBudget(300) == 0
    assert emission.epochBudget(2**255) == 0


@settings(max_examples=40)
@given(
    decay=strategy("uint256", max_value=WAD),
    epoch=strategy("uint256", max_value=10_000),
    initial=strategy("uint256", max_value=10**9 * DSH),
)
def test_budget_matches_reference_model(deploy_emission, decay, epoch, initial):
    emission = deploy_emission(decay_per_epoch=decay, initial_epoch_budget=initial)
    assert emission.epochBudget(epoch) == reference_budget(initial, decay, epoch)


def test_epochs_advance_with_time(emission, chain):
    assert emission.currentEpoch() == 0
    chain.sleep(EPOCH_DURATION)
    chain.mine()
    assert emission.currentEpoch() == 1


def test_module_draws_from_current_budget(emission, token, module, alice):
    tx = emission.draw(alice, 40_000 * DSH, {"from": module})
    assert token.balanceOf(alice) == 40_000 * DSH
    assert token.totalSupply() == GENESIS_SUPPLY + 40_000 * DSH
    assert emission.drawnInEpoch(0) == 40_000 * DSH
    assert emission.available() == INITIAL_EPOCH_BUDGET - 40_000 * DSH
    assert tx.events["Drawn"] == {"module": module, "to": alice, "epoch": 0, "amount": 40_000 * DSH}


def test_draw_beyond_epoch_budget_reverts(emission, module, alice):
    emission.draw(alice, INITIAL_EPOCH_BUDGET - 1, {"from": module})
    with reverts("ExceedsEpochBudget", 2, 1):
        emission.draw(alice, 2, {"from": module})
    emission.draw(alice, 1, {"from": module})
    assert emission.available() == 0


def test_unused_budget_is_not_carried_over(emission, module, alice, chain):
    emission.draw(alice, DSH, {"from": module})
    chain.sleep(EPOCH_DURATION)
    chain.mine()
    next_budget = INITIAL_EPOCH_BUDGET // 2
    assert emission.available() == next_budget
    with reverts("ExceedsEpochBudget", next_budget + 1, next_budget):
        emission.draw(alice, next_budget + 1, {"from": module})


def test_draw_beyond_cap_reverts(deploy_emission, DeepshardToken, deployer, module, alice):
    emission = deploy_emission(cap=1_000 * DSH, genesis_supply=990 * DSH, initial_epoch_budget=100 * DSH)
    emission.grantRole(emission.DRAWER_ROLE(), module, {"from": deployer})
    assert emission.available() == 10 * DSH
    with reverts("ExceedsCap", 11 * DSH, 10 * DSH):
        emission.draw(alice, 11 * DSH, {"from": module})
    emission.draw(alice, 10 * DSH, {"from": module})
    token = DeepshardToken.at(emission.token())
    assert token.totalSupply() == token.cap()
    assert emission.available() == 0


def test_outsider_cannot_draw(emission, outsider, gov):
    for caller in (outsider, gov):
        with reverts("AccessControlUnauthorizedAccount"):
            emission.draw(caller, DSH, {"from": caller})


def test_zero_amount_and_zero_recipient_revert(emission, module, alice):
    with reverts("ZeroAmount"):
        emission.draw(alice, 0, {"from": module})
    with reverts("ZeroAddress"):
        emission.draw("0x" + "00" * 20, DSH, {"from": module})


def test_constructor_rejects_bad_parameters(deploy_emission):
    with reverts("DecayAboveOne", WAD + 1):
        deploy_emission(decay_per_epoch=WAD + 1)
    with reverts("ZeroEpochDuration"):
        deploy_emission(epoch_duration=0)
    with reverts("ZeroAddress"):
        deploy_emission(admin="0x" + "00" * 20)


def test_governance_holds_admin(emission, gov, deployer, outsider):
    admin_role = emission.DEFAULT_ADMIN_ROLE()
    assert emission.hasRole(admin_role, gov)
    assert not emission.hasRole(admin_role, deployer)
    with reverts("AccessControlUnauthorizedAccount"):
        emission.grantRole(emission.DRAWER_ROLE(), outsider, {"from": deployer})
    emission.grantRole(emission.DRAWER_ROLE(), outsider, {"from": gov})
    assert emission.hasRole(emission.DRAWER_ROLE(), outsider)
    assert DECAY_PER_EPOCH == emission.decayPerEpoch() and DAY * 7 == emission.epochDuration()
