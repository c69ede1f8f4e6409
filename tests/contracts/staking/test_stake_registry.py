import brownie
import pytest

from tests.contracts.conftest import (
    CURATOR,
    DSH,
    INFERENCE,
    INFORMANT,
    MIN_STAKES,
    ROLES,
    TRAINER,
    UNBONDING_DELAY,
    reverts,
)

ZERO_ADDRESS = "0x" + "00" * 20


def pending(registry, account, role):
    amount, release_time = registry.pendingWithdrawal(account, role)
    return int(amount), int(release_time)


# ------------------------------------------------------------------ stake


@pytest.mark.parametrize("role", ROLES)
def test_stake_at_minimum_in_every_role(registry, token, staked, alice, role):
    minimum = MIN_STAKES[role]
    tx = staked(alice, role, minimum)
    assert registry.stakeOf(alice, role) == minimum
    assert registry.totalStaked(role) == minimum
    assert token.balanceOf(registry) == minimum
    assert tx.events["Staked"] == {"account": alice, "role": role, "amount": minimum, "newStake": minimum}
    others = [r for r in ROLES if r != role]
    assert all(registry.stakeOf(alice, r) == 0 for r in others)


def test_repeat_stake_adds_up(registry, staked, alice, bob):
    staked(alice, TRAINER, 1_000 * DSH)
    tx = staked(alice, TRAINER, 1)
    staked(bob, TRAINER, 2_000 * DSH)
    assert registry.stakeOf(alice, TRAINER) == 1_000 * DSH + 1
    assert tx.events["Staked"]["newStake"] == 1_000 * DSH + 1
    assert registry.totalStaked(TRAINER) == 3_000 * DSH + 1


def test_stake_below_minimum_reverts(registry, token, fund, alice):
    fund(alice, 1_000 * DSH)
    token.approve(registry, 1_000 * DSH, {"from": alice})
    with reverts("BelowMinimum", 1_000 * DSH - 1, 1_000 * DSH):
        registry.stake(CURATOR, 1_000 * DSH - 1, {"from": alice})


def test_zero_stake_reverts(registry, alice):
    with reverts("ZeroAmount"):
        registry.stake(INFORMANT, 0, {"from": alice})


def test_stake_above_96_bits_reverts(registry, alice):
    with reverts("AmountTooLarge", 2**96):
        registry.stake(INFORMANT, 2**96, {"from": alice})


def test_unknown_role_reverts(registry, token, fund, alice):
    fund(alice, 100 * DSH)
    token.approve(registry, 100 * DSH, {"from": alice})
    with brownie.reverts():
        registry.stake(len(ROLES), 100 * DSH, {"from": alice})


def test_stake_without_allowance_or_balance_reverts(registry, token, fund, alice):
    fund(alice, 100 * DSH)
    with reverts("ERC20InsufficientAllowance"):
        registry.stake(INFORMANT, 100 * DSH, {"from": alice})
    token.approve(registry, 200 * DSH, {"from": alice})
    with reverts("ERC20InsufficientBalance"):
        registry.stake(INFORMANT, 200 * DSH, {"from": alice})
    assert registry.stakeOf(alice, INFORMANT) == 0


def test_stake_with_permit(registry, token, fund, local_account, sign_permit, chain):
    fund(local_account, 1_000 * DSH)
    deadline = chain.time() + 600
    v, r, s = sign_permit(local_account, registry, 1_000 * DSH, deadline)
    registry.stakeWithPermit(TRAINER, 1_000 * DSH, deadline, v, r, s, {"from": local_account})
    assert registry.stakeOf(local_account, TRAINER) == 1_000 * DSH
    assert token.allowance(local_account, registry) == 0


def test_front_run_permit_does_not_block_stake(registry, token, fund, local_account, bob, sign_permit, chain):
    fund(local_account, 1_000 * DSH)
    deadline = chain.time() + 600
    v, r, s = sign_permit(local_account, registry, 1_000 * DSH, deadline)
    # Someone submits the permit first; the nonce is spent but the allowance is in place.
    token.permit(local_account, registry, 1_000 * DSH, deadline, v, r, s, {"from": bob})
    registry.stakeWithPermit(TRAINER, 1_000 * DSH, deadline, v, r, s, {"from": local_account})
    assert registry.stakeOf(local_account, TRAINER) == 1_000 * DSH


def test_invalid_permit_without_allowance_reverts(registry, fund, local_account, alice, sign_permit, chain):
    fund(local_account, 1_000 * DSH)
    deadline = chain.time() + 600
    v, r, s = sign_permit(local_account, alice, 1_000 * DSH, deadline)  # signed for the wrong spender
    with reverts("ERC20InsufficientAllowance"):
        registry.stakeWithPermit(TRAINER, 1_000 * DSH, deadline, v, r, s, {"from": local_account})


# ------------------------------------------------------------------ unstake and withdraw


def test_request_unstake_moves_stake_to_pending(registry, staked, alice, chain):
    staked(alice, TRAINER, 3_000 * DSH)
    tx = registry.requestUnstake(TRAINER, 1_000 * DSH, {"from": alice})
    release = tx.timestamp + UNBONDING_DELAY
    assert registry.stakeOf(alice, TRAINER) == 2_000 * DSH
    assert registry.totalStaked(TRAINER) == 2_000 * DSH
    assert pending(registry, alice, TRAINER) == (1_000 * DSH, release)
    assert tx.events["UnstakeRequested"]["releaseTime"] == release


def test_withdraw_after_delay(registry, token, staked, alice, chain):
    staked(alice, TRAINER, 3_000 * DSH)
    registry.requestUnstake(TRAINER, 3_000 * DSH, {"from": alice})
    chain.sleep(UNBONDING_DELAY)
    chain.mine()
    tx = registry.withdraw(TRAINER, {"from": alice})
    assert token.balanceOf(alice) == 3_000 * DSH
    assert token.balanceOf(registry) == 0
    assert pending(registry, alice, TRAINER) == (0, 0)
    assert tx.events["Withdrawn"] == {"account": alice, "role": TRAINER, "amount": 3_000 * DSH}


def test_withdraw_before_delay_reverts(registry, staked, alice, chain):
    staked(alice, TRAINER, 3_000 * DSH)
    tx = registry.requestUnstake(TRAINER, 1_000 * DSH, {"from": alice})
    chain.sleep(UNBONDING_DELAY // 2)
    with reverts("StillUnbonding", tx.timestamp + UNBONDING_DELAY):
        registry.withdraw(TRAINER, {"from": alice})


def test_withdraw_with_nothing_pending_reverts(registry, staked, alice):
    staked(alice, TRAINER, 3_000 * DSH)
    with reverts("NothingPending"):
        registry.withdraw(TRAINER, {"from": alice})


def test_withdraw_twice_reverts(registry, staked, alice, chain):
    staked(alice, TRAINER, 3_000 * DSH)
    registry.requestUnstake(TRAINER, 1_000 * DSH, {"from": alice})
    chain.sleep(UNBONDING_DELAY)
    registry.withdraw(TRAINER, {"from": alice})
    with reverts("NothingPending"):
        registry.withdraw(TRAINER, {"from": alice})


def test_second_request_adds_and_restarts_delay(registry, staked, alice, chain):
    staked(alice, TRAINER, 4_000 * DSH)
    registry.requestUnstake(TRAINER, 1_000 * DSH, {"from": alice})
    chain.sleep(UNBONDING_DELAY - 100)
    tx = registry.requestUnstake(TRAINER, 1_000 * DSH, {"from": alice})
    assert pending(registry, alice, TRAINER) == (2_000 * DSH, tx.timestamp + UNBONDING_DELAY)
    chain.sleep(200)
    with reverts("StillUnbonding"):
        registry.withdraw(TRAINER, {"from": alice})


def test_unstake_leaving_dust_below_minimum_reverts(registry, staked, alice):
    staked(alice, TRAINER, 1_500 * DSH)
    with reverts("BelowMinimum", 500 * DSH, 1_000 * DSH):
        registry.requestUnstake(TRAINER, 1_000 * DSH, {"from": alice})
    registry.requestUnstake(TRAINER, 1_500 * DSH, {"from": alice})  # a full exit is always allowed
    assert registry.stakeOf(alice, TRAINER) == 0


def test_unstake_zero_or_more_than_stake_reverts(registry, staked, alice):
    staked(alice, TRAINER, 1_000 * DSH)
    with reverts("ZeroAmount"):
        registry.requestUnstake(TRAINER, 0, {"from": alice})
    with reverts("ExceedsUnlocked", 1_000 * DSH + 1, 1_000 * DSH):
        registry.requestUnstake(TRAINER, 1_000 * DSH + 1, {"from": alice})
    with reverts("ExceedsUnlocked", 1, 0):
        registry.requestUnstake(CURATOR, 1, {"from": alice})


def test_locked_stake_cannot_be_unstaked(registry, staked, module, alice):
    staked(alice, TRAINER, 3_000 * DSH)
    registry.lock(alice, TRAINER, 2_500 * DSH, {"from": module})
    with reverts("ExceedsUnlocked", 501 * DSH, 500 * DSH):
        registry.requestUnstake(TRAINER, 501 * DSH, {"from": alice})
    with reverts("ExceedsUnlocked", 3_000 * DSH, 500 * DSH):
        registry.requestUnstake(TRAINER, 3_000 * DSH, {"from": alice})
    registry.requestUnstake(TRAINER, 500 * DSH, {"from": alice})
    assert registry.stakeOf(alice, TRAINER) == 2_500 * DSH


# ------------------------------------------------------------------ lock, unlock, slash


def test_module_locks_and_unlocks(registry, staked, module, alice):
    staked(alice, TRAINER, 3_000 * DSH)
    tx = registry.lock(alice, TRAINER, 1_000 * DSH, {"from": module})
    assert tx.events["Locked"] == {"module": module, "account": alice, "role": TRAINER, "amount": 1_000 * DSH}
    assert registry.lockedOf(alice, TRAINER) == 1_000 * DSH
    assert registry.lockedBy(module, alice, TRAINER) == 1_000 * DSH
    tx = registry.unlock(alice, TRAINER, 400 * DSH, {"from": module})
    assert tx.events["Unlocked"]["amount"] == 400 * DSH
    assert registry.lockedOf(alice, TRAINER) == 600 * DSH
    assert registry.stakeOf(alice, TRAINER) == 3_000 * DSH


def test_lock_more_than_unlocked_reverts(registry, staked, module, other_module, alice):
    staked(alice, TRAINER, 3_000 * DSH)
    registry.lock(alice, TRAINER, 2_000 * DSH, {"from": other_module})
    with reverts("ExceedsUnlocked", 1_000 * DSH + 1, 1_000 * DSH):
        registry.lock(alice, TRAINER, 1_000 * DSH + 1, {"from": module})
    with reverts("ZeroAmount"):
        registry.lock(alice, TRAINER, 0, {"from": module})


def test_a_module_only_releases_its_own_lock(registry, staked, module, other_module, alice):
    staked(alice, TRAINER, 3_000 * DSH)
    registry.lock(alice, TRAINER, 1_000 * DSH, {"from": module})
    with reverts("ExceedsLocked", 1, 0):
        registry.unlock(alice, TRAINER, 1, {"from": other_module})
    with reverts("ExceedsLocked", 1, 0):
        registry.slash(alice, TRAINER, 1, other_module, {"from": other_module})
    with reverts("ExceedsLocked", 1_000 * DSH + 1, 1_000 * DSH):
        registry.unlock(alice, TRAINER, 1_000 * DSH + 1, {"from": module})


@pytest.mark.parametrize("call", ["lock", "unlock", "slash"])
def test_outsider_cannot_lock_unlock_or_slash(registry, staked, module, outsider, gov, alice, call):
    staked(alice, TRAINER, 3_000 * DSH)
    registry.lock(alice, TRAINER, 1_000 * DSH, {"from": module})
    args = {"lock": (alice, TRAINER, DSH), "unlock": (alice, TRAINER, DSH), "slash": (alice, TRAINER, DSH, outsider)}
    for caller in (outsider, gov, alice):
        with reverts("AccessControlUnauthorizedAccount"):
            getattr(registry, call)(*args[call], {"from": caller})


def test_slash_takes_locked_stake_to_beneficiary(registry, token, staked, module, alice, bob):
    staked(alice, TRAINER, 3_000 * DSH)
    registry.lock(alice, TRAINER, 2_000 * DSH, {"from": module})
    tx = registry.slash(alice, TRAINER, 1_500 * DSH, bob, {"from": module})
    assert tx.events["Slashed"] == {
        "module": module,
        "account": alice,
        "role": TRAINER,
        "amount": 1_500 * DSH,
        "beneficiary": bob,
    }
    assert token.balanceOf(bob) == 1_500 * DSH
    assert registry.stakeOf(alice, TRAINER) == 1_500 * DSH
    assert registry.lockedOf(alice, TRAINER) == 500 * DSH
    assert registry.lockedBy(module, alice, TRAINER) == 500 * DSH
    assert registry.totalStaked(TRAINER) == 1_500 * DSH
    assert token.balanceOf(registry) == 1_500 * DSH


def test_slash_more_than_stake_reverts(registry, staked, module, alice, bob):
    staked(alice, TRAINER, 1_000 * DSH)
    registry.lock(alice, TRAINER, 1_000 * DSH, {"from": module})
    with reverts("ExceedsLocked", 1_000 * DSH + 1, 1_000 * DSH):
        registry.slash(alice, TRAINER, 1_000 * DSH + 1, bob, {"from": module})
    with reverts("ZeroAmount"):
        registry.slash(alice, TRAINER, 0, bob, {"from": module})
    with reverts("ZeroAddress"):
        registry.slash(alice, TRAINER, DSH, ZERO_ADDRESS, {"from": module})


def test_slashed_stake_below_minimum_can_still_exit(registry, staked, module, alice, bob, chain):
    staked(alice, TRAINER, 1_000 * DSH)
    registry.lock(alice, TRAINER, 600 * DSH, {"from": module})
    registry.slash(alice, TRAINER, 600 * DSH, bob, {"from": module})
    registry.requestUnstake(TRAINER, 400 * DSH, {"from": alice})
    chain.sleep(UNBONDING_DELAY)
    registry.withdraw(TRAINER, {"from": alice})
    assert registry.stakeOf(alice, TRAINER) == 0


# ------------------------------------------------------------------ governance


def test_governance_sets_minimum_and_delay(registry, gov):
    tx = registry.setMinStake(INFERENCE, 1, {"from": gov})
    assert tx.events["MinStakeSet"] == {"role": INFERENCE, "minStake": 1}
    assert registry.minStake(INFERENCE) == 1
    tx = registry.setUnbondingDelay(TRAINER, 3600, {"from": gov})
    assert tx.events["UnbondingDelaySet"] == {"role": TRAINER, "delay": 3600}
    assert registry.unbondingDelay(TRAINER) == 3600
    assert registry.unbondingDelay(CURATOR) == UNBONDING_DELAY


def test_unstake_uses_its_roles_delay(registry, staked, gov, alice, chain):
    registry.setUnbondingDelay(INFORMANT, 60, {"from": gov})
    staked(alice, INFORMANT, 100 * DSH)
    staked(alice, TRAINER, 1_000 * DSH)
    registry.requestUnstake(INFORMANT, 100 * DSH, {"from": alice})
    registry.requestUnstake(TRAINER, 1_000 * DSH, {"from": alice})
    chain.sleep(61)
    registry.withdraw(INFORMANT, {"from": alice})
    with reverts("StillUnbonding"):
        registry.withdraw(TRAINER, {"from": alice})


def test_unbonding_delay_is_bounded(registry, gov):
    limit = registry.MAX_UNBONDING_DELAY()
    with reverts("DelayTooLong", limit + 1):
        registry.setUnbondingDelay(TRAINER, limit + 1, {"from": gov})


def test_only_governance_configures(registry, deployer, outsider):
    for caller in (deployer, outsider):
        with reverts("AccessControlUnauthorizedAccount"):
            registry.setMinStake(INFORMANT, 1, {"from": caller})
        with reverts("AccessControlUnauthorizedAccount"):
            registry.setUnbondingDelay(TRAINER, 1, {"from": caller})
        with reverts("AccessControlUnauthorizedAccount"):
            registry.grantRole(registry.MODULE_ROLE(), caller, {"from": caller})


def test_constructor_rejects_zero_addresses_and_long_delay(StakeRegistry, token, deployer):
    with reverts("ZeroAddress"):
        StakeRegistry.deploy(ZERO_ADDRESS, deployer, 0, MIN_STAKES, {"from": deployer})
    with reverts("ZeroAddress"):
        StakeRegistry.deploy(token, ZERO_ADDRESS, 0, MIN_STAKES, {"from": deployer})
    with reverts("DelayTooLong"):
        StakeRegistry.deploy(token, deployer, 366 * 24 * 3600, MIN_STAKES, {"from": deployer})
