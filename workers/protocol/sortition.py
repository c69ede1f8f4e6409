"""Stake-weighted sortition, as `SortitionTree.sol` and `SortitionPool._drawPanel` compute it.

The tree is a Fenwick (binary indexed) tree over member slots 1..CAPACITY; a ticket in [0, total) selects the
member whose consecutive ticket range holds it. A panel draw takes tickets
`keccak256(abi.encode(seed, draw)) % total` for draw = 0, 1, ... and redraws on a repeat or on the excluded
member, at most `max_draws` tickets in all.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from eth_abi import encode
from eth_utils import keccak

from .constants import POOL_CAPACITY


class SortitionTree:
    """Python twin of `SortitionTree.Tree` (errors are ValueError where the library reverts)."""

    def __init__(self, capacity: int = POOL_CAPACITY):
        if capacity <= 0 or capacity & (capacity - 1):
            raise ValueError("capacity must be a power of two")
        self.capacity = capacity
        self.nodes = [0] * (capacity + 1)
        self.total = 0

    def add(self, index: int, amount: int) -> None:
        """Adds `amount` to member `index` (1-based)."""
        self._update(index, amount)

    def remove(self, index: int, amount: int) -> None:
        """Removes `amount` from member `index`; ValueError if the tree would go negative."""
        if amount > self.total:
            raise ValueError("underflow")
        self._update(index, -amount)

    def select(self, ticket: int) -> int:
        """The member (1-based) owning `ticket` in [0, total); ValueError outside (`TicketOutOfRange`)."""
        if not 0 <= ticket < self.total:
            raise ValueError(f"ticket {ticket} out of range [0, {self.total})")
        position, step = 0, self.capacity
        while step:
            following = position + step
            if following <= self.capacity and self.nodes[following] <= ticket:
                position = following
                ticket -= self.nodes[following]
            step >>= 1
        return position + 1

    def _update(self, index: int, amount: int) -> None:
        if not 1 <= index <= self.capacity:
            raise ValueError(f"index {index} out of range [1, {self.capacity}]")
        i = index
        while i <= self.capacity:
            if self.nodes[i] + amount < 0:
                raise ValueError("underflow")
            self.nodes[i] += amount
            i += i & -i
        self.total += amount


def ticket(seed: bytes, draw: int, total: int) -> int:
    """The `draw`-th ticket of a panel seeded by `seed` (32 bytes): `keccak256(abi.encode(seed, draw)) % total`."""
    return int.from_bytes(keccak(encode(["bytes32", "uint256"], [seed, draw])), "big") % total


def draw_panel(seed: bytes, members: Sequence[str], bonds: Mapping[str, int], excluded: str | None,
               max_seats: int, max_draws: int) -> list[str]:
    """The panel `SortitionPool._drawPanel` draws: `members` in tree order (slot i + 1 holds members[i]),
    `bonds` their current pool bonds (wei). Returns the drawn members in seat order (possibly fewer than
    `max_seats`); ValueError when nobody can be drawn (`NoEligibleMembers`)."""
    tree = SortitionTree()
    for index, member in enumerate(members, start=1):
        if bonds.get(member, 0):
            tree.add(index, bonds[member])
    if tree.total == 0:
        raise ValueError("no eligible members")
    seats: list[str] = []
    for draw in range(max_draws):
        if len(seats) >= max_seats:
            break
        candidate = members[tree.select(ticket(seed, draw, tree.total)) - 1]
        if candidate == excluded or candidate in seats:
            continue
        seats.append(candidate)
    if not seats:
        raise ValueError("no eligible members")
    return seats
