"""The Fenwick sortition tree and the panel draw of workers.protocol.sortition, against a plain prefix-sum
model (the contract's twin is checked in tests/contracts/libraries)."""

from __future__ import annotations

from collections import Counter

import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from workers.protocol.constants import DRAWS_PER_SEAT, POOL_CAPACITY
from workers.protocol.sortition import SortitionTree, draw_panel, panel_seed, ticket

SEED = keccak(b"seed")
MEMBERS = [f"0x{i:040x}" for i in range(1, 21)]


def owner(weights: dict[int, int], ticket_: int) -> int:
    """The member owning a ticket by the definition: members own consecutive ranges in index order."""
    cumulative = 0
    for index in sorted(weights):
        cumulative += weights[index]
        if ticket_ < cumulative:
            return index
    raise AssertionError("ticket beyond the total")


operations = st.lists(
    st.tuples(st.booleans(), st.integers(1, POOL_CAPACITY), st.integers(0, 2**96)), min_size=1, max_size=40
)


@given(operations, st.data())
def test_tree_selects_the_owner_of_each_ticket(ops, data):
    tree, weights = SortitionTree(), Counter()
    for is_add, index, amount in ops:
        if is_add:
            tree.add(index, amount)
            weights[index] += amount
        else:
            amount = min(amount, weights[index])  # callers remove at most what the member holds
            tree.remove(index, amount)
            weights[index] -= amount
    live = {index: w for index, w in weights.items() if w}
    assert tree.total == sum(live.values())
    assert all(tree.weight(index) == weights[index] for is_add, index, _ in ops)
    if not live:
        return
    tickets = data.draw(st.lists(st.integers(0, tree.total - 1), min_size=1, max_size=10))
    for ticket_ in [0, tree.total - 1, *tickets]:
        assert tree.select(ticket_) == owner(live, ticket_)


def test_tree_bounds_and_errors_change_nothing():
    tree = SortitionTree()
    tree.add(1, 5)
    tree.add(POOL_CAPACITY, 7)
    assert [tree.select(t) for t in (0, 4, 5, 11)] == [1, 1, POOL_CAPACITY, POOL_CAPACITY]
    nodes, total = list(tree.nodes), tree.total
    for call, message in [
        (lambda: tree.add(0, 1), "index 0 out of range"),
        (lambda: tree.add(POOL_CAPACITY + 1, 1), "out of range"),
        (lambda: tree.remove(1, 13), "member 1 holds 5, less than the 13 removed"),
        (lambda: tree.remove(3, 6), "member 3 holds 0"),  # though the total would allow it
        (lambda: tree.weight(0), "index 0 out of range"),
        (lambda: tree.add(1, -1), "uint256"),
        (lambda: tree.add(2, 2**256 - 12), "overflow"),
        (lambda: tree.select(12), r"ticket 12 out of range \[0, 12\)"),
        (lambda: tree.select(-1), "out of range"),
    ]:
        with pytest.raises(ValueError, match=message):
            call()
        assert tree.nodes == nodes and tree.total == total
    with pytest.raises(ValueError, match="power of two"):
        SortitionTree(1000)


def test_tree_refuses_more_than_the_member_holds_though_its_node_holds_more():
    """Node 2 sums members 1 and 2: removing 6 from member 2, which holds 5, fits the node and the total but
    would take member 1's weight."""
    tree = SortitionTree()
    tree.add(1, 10)
    tree.add(2, 5)
    assert (tree.nodes[2], tree.weight(1), tree.weight(2)) == (15, 10, 5)
    with pytest.raises(ValueError, match="member 2 holds 5, less than the 6 removed"):
        tree.remove(2, 6)
    tree.remove(2, 5)
    assert (tree.weight(1), tree.weight(2), tree.total) == (10, 0, 10)


def test_empty_tree_has_no_ticket():
    with pytest.raises(ValueError, match=r"ticket 0 out of range \[0, 0\)"):
        SortitionTree().select(0)


def test_seed_and_ticket_encoding():
    module = "0x" + "ab" * 20
    block_hash = keccak(b"block")
    packed = block_hash + (7).to_bytes(32, "big") + bytes(12) + bytes.fromhex("ab" * 20)  # abi.encode: 3 words
    assert panel_seed(block_hash, 7, module) == keccak(packed)
    assert ticket(SEED, 3, 10**30) == int.from_bytes(keccak(encode(["bytes32", "uint256"], [SEED, 3])), "big") % 10**30


bonds_strategy = st.lists(st.one_of(st.just(0), st.integers(1, 10**24)), min_size=1, max_size=20)


@given(bonds_strategy, st.integers(1, 15), st.integers(0, 19), st.binary(min_size=32, max_size=32))
def test_panel_counts_draws_of_bonded_members_other_than_the_excluded(bond_list, votes, excluded_index, seed):
    members = MEMBERS[: len(bond_list)]
    bonds = dict(zip(members, bond_list, strict=True))
    excluded = MEMBERS[excluded_index]
    eligible = [m for m in members if bonds[m] and m != excluded]
    try:
        panel = draw_panel(seed, members, bonds, excluded, votes, DRAWS_PER_SEAT * votes)
    except ValueError as error:
        assert "no eligible members" in str(error)
        # Only possible when no ticket can land on an eligible member, or every ticket missed them.
        return
    assert set(panel) <= set(eligible)
    assert all(draws >= 1 for draws in panel.values())
    # Every vote is drawn unless the excluded member's tickets used up the bound.
    assert sum(panel.values()) == votes or excluded in members and bonds[excluded]
    assert sum(panel.values()) <= votes
    assert draw_panel(seed, members, bonds, excluded, votes, DRAWS_PER_SEAT * votes) == panel  # deterministic


def test_panel_replays_its_tickets():
    bonds = {m: (i + 1) * 10**18 for i, m in enumerate(MEMBERS[:6])}
    tree = SortitionTree()
    for index, member in enumerate(MEMBERS[:6], start=1):
        tree.add(index, bonds[member])
    drawn = [MEMBERS[tree.select(ticket(SEED, draw, tree.total)) - 1] for draw in range(12)]
    votes = [member for member in drawn if member != MEMBERS[0]][:5]
    expected = {member: votes.count(member) for member in dict.fromkeys(votes)}  # seat order: first draw
    assert len(expected) < 5  # the vector repeats a member: a seat weighs its draws
    panel = draw_panel(SEED, MEMBERS[:6], bonds, MEMBERS[0], 5, 12)
    assert panel == expected and list(panel) == list(expected)


def test_panel_of_one_member_and_empty_pools():
    assert draw_panel(SEED, MEMBERS[:1], {MEMBERS[0]: 1}, None, 9, 36) == {MEMBERS[0]: 9}  # one seat, 9 votes
    with pytest.raises(ValueError, match="no eligible members"):
        draw_panel(SEED, MEMBERS[:2], {}, None, 9, 36)  # nobody bonded
    with pytest.raises(ValueError, match="no eligible members"):
        draw_panel(SEED, MEMBERS[:1], {MEMBERS[0]: 5}, MEMBERS[0], 9, 36)  # only the excluded member
    with pytest.raises(ValueError, match="one slot"):
        draw_panel(SEED, [MEMBERS[0], MEMBERS[0]], {MEMBERS[0]: 5}, None, 9, 36)


def test_votes_are_proportional_to_stake_however_it_is_split():
    """One draw = one vote: a 45% stake's expected votes are 45% of the panel as one address or as three, and
    it holds every vote only with the binomial probability (drawing distinct members would seat it always)."""
    honest = {MEMBERS[i]: 10**18 for i in range(11)}  # 11 units
    one = honest | {MEMBERS[11]: 9 * 10**18}  # 9 / 20 = 45%
    split = honest | {MEMBERS[11 + i]: 3 * 10**18 for i in range(3)}
    for bonds, cartel in ((one, MEMBERS[11:12]), (split, MEMBERS[11:14])):
        members = list(bonds)
        votes = [
            sum(
                draws
                for m, draws in draw_panel(keccak(i.to_bytes(4, "big")), members, bonds, None, 9, 36).items()
                if m in cartel
            )
            for i in range(400)
        ]
        # 400 panels of 9 draws at p = 0.45: mean 1,620 votes, sd ~30; 1,500..1,740 is a 4-sigma band
        assert 1_500 < sum(votes) < 1_740
        assert sum(v >= 5 for v in votes) < 220  # P(>= 5 of 9) = 0.379: expected 152


def test_heavier_members_are_drawn_more_often():
    bonds = {MEMBERS[0]: 9, MEMBERS[1]: 1}
    firsts = Counter(
        next(iter(draw_panel(keccak(i.to_bytes(4, "big")), MEMBERS[:2], bonds, None, 1, 4))) for i in range(400)
    )
    assert firsts[MEMBERS[0]] > 300  # expected 360; binomial(400, 0.9) is below 300 with probability < 1e-12
