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

    /// @notice `account` staked `amount` more in `role`.
    /// @param account The staker.
    /// @param role The role staked in.
    /// @param amount Wei added.
    /// @param newStake The account's active stake in `role` after it, in wei.
    event Staked(address indexed account, Role indexed role, uint256 amount, uint256 newStake);
    /// @notice `account` moved `amount` of its stake into a pending withdrawal.
    /// @param account The staker.
    /// @param role The role unstaked from.
    /// @param amount Wei now pending.
    /// @param releaseTime When `withdraw` releases it (unix seconds).
    event UnstakeRequested(address indexed account, Role indexed role, uint256 amount, uint256 releaseTime);
    /// @notice `account` withdrew its released stake.
    /// @param account The staker.
    /// @param role The role withdrawn from.
    /// @param amount Wei paid out.
    event Withdrawn(address indexed account, Role indexed role, uint256 amount);
    /// @notice `module` locked part of `account`'s stake for open work.
    /// @param module The locking module.
    /// @param account The staker.
    /// @param role The role.
    /// @param amount Wei locked.
    event Locked(address indexed module, address indexed account, Role indexed role, uint256 amount);
    /// @notice `module` released stake it had locked.
    /// @param module The module.
    /// @param account The staker.
    /// @param role The role.
    /// @param amount Wei unlocked.
    event Unlocked(address indexed module, address indexed account, Role indexed role, uint256 amount);
    /// @notice `module` slashed stake it had locked.
    /// @param module The module.
    /// @param account The staker.
    /// @param role The role.
    /// @param amount Wei taken.
    /// @param beneficiary Who received it.
    event Slashed(
        address indexed module, address indexed account, Role indexed role, uint256 amount, address beneficiary
    );
    /// @notice Governance set the minimum stake of `role`.
    /// @param role The role.
    /// @param minStake The new minimum, in wei.
    event MinStakeSet(Role indexed role, uint256 minStake);
    /// @notice Governance set the unbonding delay of `role`.
    /// @param role The role.
    /// @param delay The new delay, in seconds.
    event UnbondingDelaySet(Role indexed role, uint256 delay);

    /// @notice Active stake of `account` in `role` (locked stake included, pending withdrawals excluded).
    /// @param account The staker.
    /// @param role The role.
    /// @return Wei.
    function stakeOf(address account, Role role) external view returns (uint256);

    /// @notice Part of the active stake committed to open work, which cannot be unstaked.
    /// @param account The staker.
    /// @param role The role.
    /// @return Wei.
    function lockedOf(address account, Role role) external view returns (uint256);

    /// @notice Stake `module` has locked for `account` in `role`; the most `module` can unlock or slash.
    /// @param module The module.
    /// @param account The staker.
    /// @param role The role.
    /// @return Wei.
    function lockedBy(address module, address account, Role role) external view returns (uint256);

    /// @notice Sum of the active stakes of all accounts in `role`.
    /// @param role The role.
    /// @return Wei.
    function totalStaked(Role role) external view returns (uint256);

    /// @notice The smallest non-zero active stake allowed in `role`.
    /// @param role The role.
    /// @return Wei.
    function minStake(Role role) external view returns (uint256);

    /// @notice Locks `amount` of `account`'s unlocked stake in `role` for the calling module's open work.
    /// @param account The staker.
    /// @param role The role.
    /// @param amount Wei.
    function lock(address account, Role role, uint256 amount) external;

    /// @notice Releases `amount` the calling module locked earlier.
    /// @param account The staker.
    /// @param role The role.
    /// @param amount Wei.
    function unlock(address account, Role role, uint256 amount) external;

    /// @notice Takes `amount` of the stake the calling module locked and sends it to `beneficiary`.
    /// @param account The staker.
    /// @param role The role.
    /// @param amount Wei.
    /// @param beneficiary Receives the slashed tokens.
    function slash(address account, Role role, uint256 amount, address beneficiary) external;
}
