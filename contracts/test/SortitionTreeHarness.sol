// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {SortitionTree} from "../libraries/SortitionTree.sol";

/// @title SortitionTreeHarness
/// @notice Test-only: one `SortitionTree.Tree` behind external wrappers, compared with
///         `workers.protocol.sortition.SortitionTree`.
contract SortitionTreeHarness {
    using SortitionTree for SortitionTree.Tree;

    SortitionTree.Tree private _tree;

    /// @notice `SortitionTree.CAPACITY`: member slots are 1..CAPACITY.
    /// @return The capacity.
    function capacity() external pure returns (uint256) {
        return SortitionTree.CAPACITY;
    }

    /// @notice Adds `amount` to the weight of member `index`.
    /// @param index The member slot.
    /// @param amount The weight added.
    function add(uint256 index, uint256 amount) external {
        _tree.add(index, amount);
    }

    /// @notice Removes `amount` from the weight of member `index`.
    /// @param index The member slot.
    /// @param amount The weight removed.
    function remove(uint256 index, uint256 amount) external {
        _tree.remove(index, amount);
    }

    /// @notice Applies `amounts[i]` to member `indexes[i]` in order (added, or removed where `removes[i]`),
    ///         so that a test sets up a tree in one transaction.
    /// @param indexes Member slots.
    /// @param amounts Weights, one per slot.
    /// @param removes Whether each amount is removed rather than added.
    function update(uint256[] calldata indexes, uint256[] calldata amounts, bool[] calldata removes) external {
        for (uint256 i = 0; i < indexes.length; ++i) {
            if (removes[i]) _tree.remove(indexes[i], amounts[i]);
            else _tree.add(indexes[i], amounts[i]);
        }
    }

    /// @notice The weight of member `index`.
    /// @param index The member slot.
    /// @return The weight.
    function weightOf(uint256 index) external view returns (uint256) {
        return _tree.weightOf(index);
    }

    /// @notice The member owning `ticket` (reverts `TicketOutOfRange` unless ticket < total).
    /// @param ticket A ticket in [0, total).
    /// @return The member slot.
    function select(uint256 ticket) external view returns (uint256) {
        return _tree.select(ticket);
    }

    /// @notice `select` for each ticket, in one call.
    /// @param tickets Tickets in [0, total).
    /// @return indexes The member slot of each.
    function selectMany(uint256[] calldata tickets) external view returns (uint256[] memory indexes) {
        indexes = new uint256[](tickets.length);
        for (uint256 i = 0; i < tickets.length; ++i) {
            indexes[i] = _tree.select(tickets[i]);
        }
    }

    /// @notice The sum of all weights.
    /// @return The total.
    function total() external view returns (uint256) {
        return _tree.total;
    }

    /// @notice The Fenwick partial sums `nodes[first..first + count)`.
    /// @param first The first node.
    /// @param count How many nodes.
    /// @return sums Their partial sums.
    function nodes(uint256 first, uint256 count) external view returns (uint256[] memory sums) {
        sums = new uint256[](count);
        for (uint256 i = 0; i < count; ++i) {
            sums[i] = _tree.nodes[first + i];
        }
    }
}
