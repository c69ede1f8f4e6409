// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title IStorage
/// @notice What WeightAccess needs of Storage: a place for the storage nodes' share of a version's access fees.
interface IStorage {
    /// @notice Adds `amount` (already transferred to Storage) to `version`'s pot, which pays audited holders.
    /// @param version The model version whose holders earn it.
    /// @param amount Wei.
    function fund(uint256 version, uint256 amount) external;
}
