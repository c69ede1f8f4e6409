"""SortitionPool (through SortitionPoolHarness, over the real StakeRegistry) against workers.protocol.sortition:
random bonds joined, topped up and withdrawn; the panel `_drawPanel` draws equals `draw_panel`; `_closeSeat`
takes the penalty to the beneficiary and the next draw sees the smaller bond; and the pool's reverts."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contracts.conftest import EVALUATOR, reverts, use_unique_gas_price
from tests.contracts.libraries.conftest import EXAMPLES, POOL_MIN_BOND, POOL_STAKE
from workers.protocol.constants import BPS
from workers.protocol.sortition import draw_panel

# Room is left for a top-up of up to POOL_MIN_BOND within the member's stake.
bonds = st.one_of(
    st.sampled_from([POOL_MIN_BOND, POOL_STAKE - POOL_MIN_BOND]),
    st.integers(POOL_MIN_BOND, POOL_STAKE - POOL_MIN_BOND),
    st.integers(POOL_MIN_BOND, 2 * POOL_MIN_BOND),
)


def test_draws_and_seats_match_the_reference(sortition_pool, pool_members, registry, token, treasury, chain):
    chain.snapshot()

    @settings(max_examples=max(EXAMPLES // 2, 1), deadline=None)
    @given(st.data())
    def check(data):
        chain.revert()
        use_unique_gas_price()
        count = data.draw(st.integers(1, len(pool_members)))
        members = pool_members[:count]
        joined = {}
        for member in members:
            bond = data.draw(bonds)
            sortition_pool.joinPool(bond, {"from": member})
            top_up = data.draw(st.sampled_from([0, 0, 1, POOL_MIN_BOND]))
            if top_up:
                sortition_pool.joinPool(top_up, {"from": member})
            joined[member.address] = bond + top_up
        leaving = [m for m in members if data.draw(st.integers(0, 4)) == 0]
        for member in leaving:
            sortition_pool.leavePool({"from": member})
            joined[member.address] = 0
        order = [str(sortition_pool.poolMemberAt(i)) for i in range(1, sortition_pool.poolMemberCount() + 1)]
        assert order == [m.address for m in members]
        assert sortition_pool.poolWeight() == sum(joined.values())
        for member in members:
            assert registry.lockedOf(member, EVALUATOR) == joined[member.address]

        for _ in range(2):  # a draw, seats closed with penalties, then a draw over the smaller bonds
            seed = data.draw(st.binary(min_size=32, max_size=32))
            excluded = data.draw(st.sampled_from([None, *[m.address for m in members]]))
            seats = data.draw(st.integers(1, 15))
            draws = data.draw(st.integers(seats, 4 * seats))
            try:
                expected = draw_panel(seed, order, joined, excluded, seats, draws)
            except ValueError:
                with reverts("NoEligibleMembers"):  # as a call: Ganache cannot trace the reverted draw loop
                    sortition_pool.drawPanel.call(seed, excluded or "0x" + "00" * 20, seats, draws)
                return
            event = sortition_pool.drawPanel(seed, excluded or "0x" + "00" * 20, seats, draws).events["Drawn"]
            assert list(event["members"]) == list(expected)
            assert list(event["weights"]) == list(expected.values())  # draws: one draw = one vote
            for member in expected:
                assert sortition_pool.poolMembers(member)["openPanels"] == 1
                before = (registry.stakeOf(member, EVALUATOR), token.balanceOf(treasury))
                penalty_bps = data.draw(st.sampled_from([0, 1, 100, 500, BPS]))
                penalty = joined[member] * penalty_bps // BPS
                assert sortition_pool.closeSeat(member, penalty_bps).return_value == penalty
                joined[member] -= penalty
                assert registry.stakeOf(member, EVALUATOR) == before[0] - penalty
                assert token.balanceOf(treasury) == before[1] + penalty
                assert sortition_pool.poolMembers(member)["bond"] == joined[member]
                assert sortition_pool.poolMembers(member)["openPanels"] == 0
            assert sortition_pool.poolWeight() == sum(joined.values())

    check()


def test_pool_reverts(sortition_pool, pool_members, registry):
    first, second = pool_members[:2]
    with reverts("PoolBondTooSmall", POOL_MIN_BOND - 1, POOL_MIN_BOND):
        sortition_pool.joinPool(POOL_MIN_BOND - 1, {"from": first})
    with reverts("AmountTooLarge", 2**96):
        sortition_pool.joinPool(2**96, {"from": first})
    with reverts("NotInPool"):
        sortition_pool.leavePool({"from": first})
    with reverts("NoEligibleMembers"):
        sortition_pool.drawPanel(b"\x01" * 32, "0x" + "00" * 20, 9, 36)
    sortition_pool.joinPool(POOL_MIN_BOND, {"from": first})
    with reverts("PoolBondTooSmall", POOL_MIN_BOND, POOL_MIN_BOND):
        sortition_pool.joinPool(0, {"from": first})  # a top-up must add something
    with reverts("NoEligibleMembers"):
        sortition_pool.drawPanel.call(b"\x01" * 32, first, 9, 36)  # only the excluded member (a call: see above)
    sortition_pool.joinPool(3 * POOL_MIN_BOND, {"from": second})
    sortition_pool.drawPanel(b"\x02" * 32, second, 1, 4)
    with reverts("OpenPanels", 1):
        sortition_pool.leavePool({"from": first})
    sortition_pool.closeSeat(first, 0)
    sortition_pool.leavePool({"from": first})
    assert registry.lockedOf(first, EVALUATOR) == 0 and sortition_pool.poolWeight() == 3 * POOL_MIN_BOND
    assert sortition_pool.poolMembers(first)["index"] == 1  # a member keeps its slot for a later join
    sortition_pool.joinPool(POOL_MIN_BOND, {"from": first})
    assert sortition_pool.poolMemberCount() == 2 and sortition_pool.poolWeight() == 4 * POOL_MIN_BOND
