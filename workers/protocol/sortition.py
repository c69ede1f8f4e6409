"""Stake-weighted sortition, as `SortitionTree.sol` and `SortitionPool._drawPanel` compute it.

The tree is a Fenwick (binary indexed) tree over member slots 1..CAPACITY; a ticket in [0, total) selects the
member whose consecutive ticket range holds it. A panel draw takes tickets
`keccak256(abi.encode(seed, draw)) % total` for draw = 0, 1, ... with replacement: each ticket is one vote for
its member (one draw = one vote, as in Kleros), a ticket on the excluded member is drawn again, until `votes`
count or `max_draws` tickets are spent. A seat is a distinct member, weighing its draws. The modules seed a
draw with `panel_seed`, from the hash of a seed block fixed in advance; once that hash is out of `blockhash`'s
reach (`seed_expired`) nothing is drawn and the module ends the panel's submission or round (no fresh seed:
whoever computed the panel from the mined seed block could skip it by waiting).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from eth_abi import encode
from eth_utils import keccak

from .constants import BLOCKHASH_HORIZON, POOL_CAPACITY

UINT256_MAX = 2**256 - 1


class SortitionTree:
    """Python twin of `SortitionTree.Tree`. Where the library reverts this raises ValueError and changes
    nothing (a revert undoes the whole transaction)."""

    def __init__(self, capacity: int = POOL_CAPACITY):
        if capacity <= 0 or capacity & (capacity - 1):
            raise ValueError("capacity must be a power of two")
        self.capacity = capacity
        #: Fenwick partial sums, `nodes[i]` for i in 1..capacity (`nodes[0]` unused), in wei.
        self.nodes = [0] * (capacity + 1)
        self.total = 0

    def add(self, index: int, amount: int) -> None:
        """Adds `amount` (wei) to member `index` (1-based); ValueError for an index outside [1, capacity]
        (`IndexOutOfRange`) or a total past uint256."""
        self._update(index, self._amount(amount))

    def remove(self, index: int, amount: int) -> None:
        """Removes `amount` (wei) from member `index`; ValueError for an index outside [1, capacity] or for
        more than the member holds (`WeightTooSmall`)."""
        amount = self._amount(amount)
        weight = self.weight(index)
        if amount > weight:
            raise ValueError(f"member {index} holds {weight}, less than the {amount} removed")
        self._update(index, -amount)

    def weight(self, index: int) -> int:
        """The weight (wei) of member `index`, from the partial sums as `weightOf` reads them; ValueError for
        an index outside [1, capacity]."""
        self._path(index)  # the range check
        weight, start, i = self.nodes[index], index - (index & -index), index - 1
        while i > start:
            weight -= self.nodes[i]
            i -= i & -i
        return weight

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

    @staticmethod
    def _amount(amount: int) -> int:
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 <= amount <= UINT256_MAX:
            raise ValueError(f"amount must be a uint256 int, got {amount!r}")
        return amount

    def _path(self, index: int) -> list[int]:
        if not 1 <= index <= self.capacity:
            raise ValueError(f"index {index} out of range [1, {self.capacity}]")
        path, i = [], index
        while i <= self.capacity:
            path.append(i)
            i += i & -i
        return path

    def _update(self, index: int, amount: int) -> None:
        path = self._path(index)
        # Check everything before changing anything.
        for value in (self.total, *(self.nodes[i] for i in path)):
            if not 0 <= value + amount <= UINT256_MAX:
                raise ValueError("underflow" if amount < 0 else "overflow")
        for i in path:
            self.nodes[i] += amount
        self.total += amount


def panel_seed(block_hash: bytes, key: int, module: str) -> bytes:
    """The seed of a panel: `keccak256(abi.encode(blockhash(seedBlock), key, module))` with `key` the
    submission id or round and `module` the drawing contract's address."""
    return keccak(encode(["bytes32", "uint256", "address"], [block_hash, key, module]))


def seed_expired(seed_block: int, block: int) -> bool:
    """Whether a draw in block `block` finds the hash of `seed_block` out of reach (`SortitionPanel._seedExpired`):
    `blockhash` reads only the 256 blocks before the current one, so the last block that can draw from
    `seed_block` is `seed_block + 256`."""
    return block > seed_block + BLOCKHASH_HORIZON


def ticket(seed: bytes, draw: int, total: int) -> int:
    """The `draw`-th ticket of a panel seeded by `seed` (32 bytes): `keccak256(abi.encode(seed, draw)) % total`."""
    return int.from_bytes(keccak(encode(["bytes32", "uint256"], [seed, draw])), "big") % total


def draw_panel(
    seed: bytes, members: Sequence[str], bonds: Mapping[str, int], excluded: str | None, votes: int, max_draws: int
) -> dict[str, int]:
    """The panel `SortitionPool._drawPanel` draws: `members` in tree order (slot i + 1 holds members[i]),
    `bonds` their current pool bonds (wei; a member who left has none). One draw = one vote (Kleros): tickets
    with replacement until `votes` land off `excluded`, at most `max_draws` tickets. Returns {member: draws}
    in seat order (first draw first; the draws are the seat's weight); ValueError when nobody can be drawn
    (`NoEligibleMembers`)."""
    if len(set(members)) != len(members):
        raise ValueError("a member holds one slot of the tree")
    tree = SortitionTree()
    for index, member in enumerate(members, start=1):
        if bonds.get(member, 0):
            tree.add(index, bonds[member])
    if tree.total == 0:
        raise ValueError("no eligible members")
    seats: dict[str, int] = {}
    counted = 0
    for draw in range(max_draws):
        if counted >= votes:
            break
        candidate = members[tree.select(ticket(seed, draw, tree.total)) - 1]
        if excluded is not None and candidate == excluded:
            continue
        counted += 1
        seats[candidate] = seats.get(candidate, 0) + 1
    if not seats:
        raise ValueError("no eligible members")
    return seats
