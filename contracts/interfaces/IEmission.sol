// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title IEmission
/// @notice What reward-paying modules (data consensus, training rounds) see of the Emission contract.
interface IEmission {
    /// @notice Emitted when a module mints from an epoch's budget.
    /// @param module The drawing module.
    /// @param to The recipient.
    /// @param epoch The epoch drawn from.
    /// @param amount Wei minted.
    event Drawn(address indexed module, address indexed to, uint256 indexed epoch, uint256 amount);

    /// @notice The epoch the current block belongs to.
    function currentEpoch() external view returns (uint256);

    /// @notice The full budget of `epoch`, before any draw.
    /// @param epoch The epoch.
    /// @return Wei.
    function epochBudget(uint256 epoch) external view returns (uint256);

    /// @notice What modules can still mint in the current epoch (limited by its budget and by the token cap).
    function available() external view returns (uint256);

    /// @notice Mints `amount` of the current epoch's budget to `to`. Reverts past the budget or the cap.
    /// @param to The recipient.
    /// @param amount Wei.
    function draw(address to, uint256 amount) external;
}
