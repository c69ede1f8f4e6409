"""SortitionTree (through SortitionTreeHarness) against workers.protocol.sortition.SortitionTree: the same
add/remove sequences give the same partial sums, total and owner of every ticket; and the reverts."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contracts.conftest import reverts, use_unique_gas_price
from tests.contracts.libraries.conftest import EXAMPLES
from workers.protocol.constants import POOL_CAPACITY
from workers.protocol.sortition import SortitionTree

indexes = st.one_of(st.sampled_from([1, 2, 3, 512, POOL_CAPACITY - 1, POOL_CAPACITY]), st.integers(1, POOL_CAPACITY))
amounts = st.one_of(st.sampled_from([0, 1, 2**96 - 1]), st.integers(0, 2**96 - 1), st.integers(0, 10**6))


@st.composite
def operations(draw):
    """Adds to a few members, then removals of at most what each holds (the pool never removes more)."""
    members = draw(st.lists(indexes, min_size=1, max_size=12, unique=True))
    ops, held = [], {}
    for _ in range(draw(st.integers(1, 24))):
        index = draw(st.sampled_from(members))
        if held.get(index) and draw(st.booleans()):
            amount = draw(st.one_of(st.just(held[index]), st.integers(0, held[index])))
            held[index] -= amount
            ops.append((index, amount, True))
        else:
            amount = draw(amounts)
            held[index] = held.get(index, 0) + amount
            ops.append((index, amount, False))
    return ops


def test_capacity(tree_harness):
    assert tree_harness.capacity() == POOL_CAPACITY


def test_tree_matches_the_reference(tree_harness, chain):
    chain.snapshot()

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(operations(), st.data())
    def check(ops, data):
        chain.revert()
        use_unique_gas_price()
        reference = SortitionTree()
        for index, amount, remove in ops:
            (reference.remove if remove else reference.add)(index, amount)
        tree_harness.update(*zip(*ops, strict=True))
        assert tree_harness.total() == reference.total
        assert list(tree_harness.nodes(1, POOL_CAPACITY)) == reference.nodes[1:]
        members = sorted({index for index, _, _ in ops})
        assert [tree_harness.weightOf(i) for i in members] == [reference.weight(i) for i in members]
        if reference.total == 0:
            with reverts("TicketOutOfRange", 0, 0):
                tree_harness.select(0)
            return
        # Each member's first and last ticket, the ends of the range, and random tickets.
        tickets, cumulative = {0, reference.total - 1}, 0
        for index in range(1, POOL_CAPACITY + 1):
            weight = sum(a if not r else -a for i, a, r in ops if i == index)
            if weight:
                tickets |= {cumulative, cumulative + weight - 1}
                cumulative += weight
        tickets |= set(data.draw(st.lists(st.integers(0, reference.total - 1), max_size=16)))
        tickets = sorted(tickets)
        assert list(tree_harness.selectMany(tickets)) == [reference.select(t) for t in tickets]
        with reverts("TicketOutOfRange", reference.total, reference.total):
            tree_harness.select(reference.total)

    check()


def test_reverts(tree_harness):
    for index in (0, POOL_CAPACITY + 1):
        with reverts("IndexOutOfRange", index):
            tree_harness.add(index, 1)
        with reverts("IndexOutOfRange", index):
            tree_harness.remove(index, 1)
        with reverts("IndexOutOfRange", index):
            tree_harness.weightOf(index)
    reference = SortitionTree()
    for index, amount in ((1, 10), (2, 5), (3, 5)):
        tree_harness.add(index, amount)
        reference.add(index, amount)
    # More than the total; more than member 2 holds, though node 2 (members 1 and 2) and the total hold more;
    # more than member 3 holds.
    for index, amount, held in ((2, 21, 5), (2, 6, 5), (3, 6, 5)):
        with reverts("WeightTooSmall", index, held, amount):
            tree_harness.remove(index, amount)
        with pytest.raises(ValueError, match=f"member {index} holds {held}, less than the {amount} removed"):
            reference.remove(index, amount)
    assert tree_harness.total() == reference.total == 20
    assert list(tree_harness.nodes(1, 4)) == reference.nodes[1:5]
    with reverts("TicketOutOfRange", 20, 20):
        tree_harness.select(20)
    with reverts("TicketOutOfRange", 2**256 - 1, 20):
        tree_harness.selectMany([0, 2**256 - 1])
