// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title IStakeRegistry
/// @notice Stake per (account, role). What staking wallets and protocol modules call.
interface IStakeRegistry {
    /// @notice The network roles; a stake belongs to exactly one.
    enum Role {
        INFORMANT,
        CURATOR,
        TRAINER,
        EVALUATOR,
        STORAGE,
        INFERENCE
    }

    event Staked(address indexed account, Role indexed role, uint256 amount, uint256 newStake);
    event UnstakeRequested(address indexed account, Role indexed role, uint256 amount, uint256 releaseTime);
    event Withdrawn(address indexed account, Role indexed role, uint256 amount);
    event Locked(address indexed module, address indexed account, Role indexed role, uint256 amount);
    event Unlocked(address indexed module, address indexed account, Role indexed role, uint256 amount);
    event Slashed(
        address indexed module, address indexed account, Role indexed role, uint256 amount, address beneficiary
    );
    event MinStakeSet(Role indexed role, uint256 minStake);
    event UnbondingDelaySet(Role indexed role, uint256 delay);

    /// @notice Active stake of `account` in `role` (locked stake included, pending withdrawals excluded).
    function stakeOf(address account, Role role) external view returns (uint256);

    /// @notice Part of the active stake committed to open work, which cannot be unstaked.
    function lockedOf(address account, Role role) external view returns (uint256);

    /// @notice Stake `module` has locked for `account` in `role`; the most `module` can unlock or slash.
    function lockedBy(address module, address account, Role role) external view returns (uint256);

    /// @notice Sum of the active stakes of all accounts in `role`.
    function totalStaked(Role role) external view returns (uint256);

    /// @notice The smallest non-zero active stake allowed in `role`.
    function minStake(Role role) external view returns (uint256);

    /// @notice Locks `amount` of `account`'s unlocked stake in `role` for the calling module's open work.
    function lock(address account, Role role, uint256 amount) external;

    /// @notice Releases `amount` the calling module locked earlier.
    function unlock(address account, Role role, uint256 amount) external;

    /// @notice Takes `amount` of the stake the calling module locked and sends it to `beneficiary`.
    function slash(address account, Role role, uint256 amount, address beneficiary) external;
}
