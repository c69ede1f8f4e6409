"""Stateful property test of StakeRegistry: random stake / unstake / withdraw / lock / unlock / slash / time
sequences against a Python model, checking the accounting after every step.

Brownie's own `state_machine` fixture is broken in this build, so hypothesis drives the machine directly and
each example starts from the same chain snapshot.
"""

import os

from brownie.exceptions import VirtualMachineError
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.contracts.conftest import DSH, INFORMANT, MIN_STAKES, TRAINER, UNBONDING_DELAY, use_unique_gas_price

FUNDING = 5_000 * DSH
ROLES_UNDER_TEST = (INFORMANT, TRAINER)
EXAMPLES = int(os.environ.get("DEEPSHARD_STATEFUL_EXAMPLES", "30"))

# Amounts around the minimums (100 and 1,000 DSH) so that edge cases come up often.
amounts = st.one_of(
    st.sampled_from([0, 1, 99 * DSH, 100 * DSH, 999 * DSH, 1_000 * DSH, 1_001 * DSH, 2_500 * DSH, FUNDING]),
    st.integers(min_value=1, max_value=FUNDING),
)


def test_stake_registry_accounting_holds(chain, registry, token, fund, module, other_module, accounts):
    stakers = [accounts[3], accounts[4], accounts[8]]
    modules = [module, other_module]
    beneficiary = accounts[9]
    for staker in stakers:
        fund(staker, FUNDING)
        token.approve(registry, 2**256 - 1, {"from": staker})
    chain.snapshot()

    class StakeRegistryMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            chain.revert()
            use_unique_gas_price()
            self.stake = {(s, r): 0 for s in stakers for r in ROLES_UNDER_TEST}
            self.pending = dict.fromkeys(self.stake, 0)
            self.release = dict.fromkeys(self.stake, 0)
            self.locked_by = {(m, s, r): 0 for m in modules for (s, r) in self.stake}
            self.deposited = dict.fromkeys(stakers, 0)
            self.withdrawn = dict.fromkeys(stakers, 0)
            self.slashed = 0
            self.touched = None

        def locked(self, staker, role):
            return sum(self.locked_by[(m, staker, role)] for m in modules)

        def expect(self, should_succeed, send):
            try:
                tx = send()
            except VirtualMachineError:
                assert not should_succeed, "a valid call reverted"
                return None
            assert should_succeed, "an invalid call succeeded"
            return tx

        @rule(staker=st.sampled_from(stakers), role=st.sampled_from(ROLES_UNDER_TEST), amount=amounts)
        def stake(self, staker, role, amount):
            self.touched = (staker, role)
            after = self.stake[(staker, role)] + amount
            ok = 0 < amount <= token.balanceOf(staker) and after >= MIN_STAKES[role]
            if self.expect(ok, lambda: registry.stake(role, amount, {"from": staker})):
                self.stake[(staker, role)] = after
                self.deposited[staker] += amount

        @rule(staker=st.sampled_from(stakers), role=st.sampled_from(ROLES_UNDER_TEST), amount=amounts)
        def request_unstake(self, staker, role, amount):
            self.touched = (staker, role)
            key = (staker, role)
            remaining = self.stake[key] - amount
            unlocked = self.stake[key] - self.locked(staker, role)
            ok = 0 < amount <= unlocked and (remaining == 0 or remaining >= MIN_STAKES[role])
            tx = self.expect(ok, lambda: registry.requestUnstake(role, amount, {"from": staker}))
            if tx:
                self.stake[key] = remaining
                self.pending[key] += amount
                self.release[key] = tx.timestamp + UNBONDING_DELAY

        @rule(staker=st.sampled_from(stakers), role=st.sampled_from(ROLES_UNDER_TEST))
        def withdraw(self, staker, role):
            self.touched = (staker, role)
            key = (staker, role)
            # The next block's timestamp is at least the current one; only predict the clear-cut cases.
            now = chain.time()
            if self.pending[key] and self.release[key] - 2 <= now <= self.release[key]:
                return
            ok = self.pending[key] > 0 and now > self.release[key]
            if self.expect(ok, lambda: registry.withdraw(role, {"from": staker})):
                self.withdrawn[staker] += self.pending[key]
                self.pending[key] = 0

        @rule(seconds=st.sampled_from([60, UNBONDING_DELAY // 2, UNBONDING_DELAY + 10]))
        def sleep(self, seconds):
            chain.sleep(seconds)

        @rule(
            module_=st.sampled_from(modules),
            staker=st.sampled_from(stakers),
            role=st.sampled_from(ROLES_UNDER_TEST),
            amount=amounts,
        )
        def lock(self, module_, staker, role, amount):
            self.touched = (staker, role)
            unlocked = self.stake[(staker, role)] - self.locked(staker, role)
            ok = 0 < amount <= unlocked
            if self.expect(ok, lambda: registry.lock(staker, role, amount, {"from": module_})):
                self.locked_by[(module_, staker, role)] += amount

        @rule(
            module_=st.sampled_from(modules),
            staker=st.sampled_from(stakers),
            role=st.sampled_from(ROLES_UNDER_TEST),
            amount=amounts,
        )
        def unlock(self, module_, staker, role, amount):
            self.touched = (staker, role)
            ok = 0 < amount <= self.locked_by[(module_, staker, role)]
            if self.expect(ok, lambda: registry.unlock(staker, role, amount, {"from": module_})):
                self.locked_by[(module_, staker, role)] -= amount

        @rule(
            module_=st.sampled_from(modules),
            staker=st.sampled_from(stakers),
            role=st.sampled_from(ROLES_UNDER_TEST),
            amount=amounts,
        )
        def slash(self, module_, staker, role, amount):
            self.touched = (staker, role)
            ok = 0 < amount <= self.locked_by[(module_, staker, role)]
            if self.expect(ok, lambda: registry.slash(staker, role, amount, beneficiary, {"from": module_})):
                self.locked_by[(module_, staker, role)] -= amount
                self.stake[(staker, role)] -= amount
                self.slashed += amount

        @invariant()
        def accounting_balances(self):
            # Per-key views change only when a rule touches that key, so checking the touched key after
            # every step keeps the whole chain state equal to the model without reading all of it each time.
            if self.touched:
                staker, role = self.touched
                assert registry.stakeOf(staker, role) == self.stake[self.touched]
                assert registry.lockedOf(staker, role) == self.locked(staker, role)
                assert registry.pendingWithdrawal(staker, role)[0] == self.pending[self.touched]
                assert self.withdrawn[staker] <= self.deposited[staker]
                assert token.balanceOf(staker) <= FUNDING
            for role in ROLES_UNDER_TEST:
                assert registry.totalStaked(role) == sum(self.stake[(s, role)] for s in stakers)
            assert token.balanceOf(registry) == sum(self.stake.values()) + sum(self.pending.values())
            assert token.balanceOf(beneficiary) == self.slashed

    run_state_machine_as_test(
        StakeRegistryMachine,
        settings=settings(max_examples=EXAMPLES, stateful_step_count=25, deadline=None),
    )
