// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title IModelRegistry
/// @notice What training rounds need of the model lineage.
interface IModelRegistry {
    /// @notice Number of versions, which is also the newest version's id.
    function latestVersion() external view returns (uint256);

    /// @notice Registers the child of `parent` produced by `round`.
    /// @param parent The version the delta was trained on.
    /// @param round The training round that produced it.
    /// @param deltaCid Binary CID of the accepted LoRA delta.
    /// @param valueCreated Rewards (wei) the round paid out.
    /// @return id The new version's id.
    function registerVersion(uint256 parent, uint256 round, bytes calldata deltaCid, uint256 valueCreated)
        external
        returns (uint256 id);
}
