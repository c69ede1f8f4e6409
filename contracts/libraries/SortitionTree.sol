// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title SortitionTree
/// @notice Stake-weighted random selection over a bounded set of members without looping over them:
///         a Fenwick (binary indexed) tree of weights, O(log n) to update a weight and O(log n) to map a
///         random ticket to the member holding it.
/// @dev Members are 1-indexed slots in [1, CAPACITY]. CAPACITY is a power of two so the search can walk
///      the tree by halving steps.
library SortitionTree {
    uint256 internal constant CAPACITY = 1024;

    struct Tree {
        mapping(uint256 node => uint256 partialSum) nodes;
        uint256 total;
    }

    error IndexOutOfRange(uint256 index);
    error TicketOutOfRange(uint256 ticket, uint256 total);
    /// @notice `amount` asked of member `index`, which holds only `weight`.
    error WeightTooSmall(uint256 index, uint256 weight, uint256 amount);

    /// @notice Adds `amount` to the weight of member `index`.
    /// @param tree The tree.
    /// @param index The member's slot, in [1, CAPACITY].
    /// @param amount Weight added.
    function add(Tree storage tree, uint256 index, uint256 amount) internal {
        if (index == 0 || index > CAPACITY) revert IndexOutOfRange(index);
        tree.total += amount;
        for (uint256 i = index; i <= CAPACITY; i += i & (~i + 1)) {
            tree.nodes[i] += amount;
        }
    }

    /// @notice Removes `amount` from the weight of member `index` (`WeightTooSmall` if it holds less: the
    ///         partial sums on its path hold other members' weight too, so they alone would not catch it).
    /// @param tree The tree.
    /// @param index The member's slot, in [1, CAPACITY].
    /// @param amount Weight removed.
    function remove(Tree storage tree, uint256 index, uint256 amount) internal {
        if (index == 0 || index > CAPACITY) revert IndexOutOfRange(index);
        uint256 weight = _weight(tree, index);
        if (amount > weight) revert WeightTooSmall(index, weight, amount);
        // The total and every node on the member's path include its weight: none of them underflows.
        unchecked {
            tree.total -= amount;
            for (uint256 i = index; i <= CAPACITY; i += i & (~i + 1)) {
                tree.nodes[i] -= amount;
            }
        }
    }

    /// @notice The weight of member `index`.
    /// @param tree The tree.
    /// @param index The member's slot, in [1, CAPACITY].
    /// @return Its weight.
    function weightOf(Tree storage tree, uint256 index) internal view returns (uint256) {
        if (index == 0 || index > CAPACITY) revert IndexOutOfRange(index);
        return _weight(tree, index);
    }

    /// @notice The member owning `ticket`, for a ticket in [0, total): members own consecutive ticket ranges
    ///         as long as their weight, so a uniform ticket picks a member with probability weight / total.
    /// @param tree The tree.
    /// @param ticket A ticket in [0, total).
    /// @return index The member's slot.
    function select(Tree storage tree, uint256 ticket) internal view returns (uint256 index) {
        if (ticket >= tree.total) revert TicketOutOfRange(ticket, tree.total);
        uint256 position = 0;
        for (uint256 step = CAPACITY; step != 0; step >>= 1) {
            uint256 next = position + step;
            if (next <= CAPACITY) {
                uint256 sum = tree.nodes[next];
                if (sum <= ticket) {
                    position = next;
                    ticket -= sum;
                }
            }
        }
        return position + 1;
    }

    /// @dev The weight of member `index` (in range): its node's partial sum less those of the nodes it covers
    ///      besides itself, as many reads as `index` has trailing zero bits (none for an odd slot).
    function _weight(Tree storage tree, uint256 index) private view returns (uint256 weight) {
        assembly ("memory-safe") {
            // The slot of `tree.nodes[i]`, as Solidity lays out a mapping.
            mstore(0x20, tree.slot)
            mstore(0, index)
            weight := sload(keccak256(0, 0x40))
            // Node `index` sums the slots (index - lowbit(index), index]; the nodes below it sum all of them but
            // the last, so their sum never exceeds it and nothing underflows.
            let start := sub(index, and(index, sub(0, index)))
            for { let i := sub(index, 1) } gt(i, start) { i := sub(i, and(i, sub(0, i))) } {
                mstore(0, i)
                weight := sub(weight, sload(keccak256(0, 0x40)))
            }
        }
    }
}
