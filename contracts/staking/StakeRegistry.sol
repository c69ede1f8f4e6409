// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IStakeRegistry} from "../interfaces/IStakeRegistry.sol";

/// @title StakeRegistry
/// @notice Holds DSH staked per (account, role). Stakers stake, request an unstake and withdraw after the
///         unbonding delay. Protocol modules (MODULE_ROLE) lock stake committed to open work, unlock it when
///         the work is done, and slash what they locked when the work was dishonest.
/// @dev Invariant: the registry's token balance equals the sum of all active stakes plus all pending
///      withdrawals. Amounts are stored in 96 bits: the token's cap fits, and every stored amount is backed
///      by tokens this contract received, so the narrowing casts below cannot truncate.
///      Nothing loops over stakers; each call touches one account.
contract StakeRegistry is IStakeRegistry, AccessControl {
    using SafeERC20 for IERC20;

    /// @notice Role of the protocol modules allowed to lock, unlock and slash.
    bytes32 public constant MODULE_ROLE = keccak256("MODULE_ROLE");
    /// @notice Upper bound on the unbonding delay governance can set.
    uint256 public constant MAX_UNBONDING_DELAY = 365 days;
    uint256 private constant ROLE_COUNT = 6;

    /// @dev One slot: what `stake` reads and writes for the staker.
    struct Position {
        uint96 amount;
        uint96 locked;
    }

    /// @dev One slot: an unstaked amount waiting for its release time.
    struct PendingWithdrawal {
        uint96 amount;
        uint64 releaseTime;
    }

    /// @dev One slot per role: what `stake` and `requestUnstake` read and update.
    struct RoleState {
        uint96 minStake;
        uint96 totalStaked;
        uint64 unbondingDelay;
    }

    /// @notice The staked token (DSH).
    IERC20 public immutable token;
    mapping(address account => mapping(Role role => Position)) private _positions;
    mapping(address account => mapping(Role role => PendingWithdrawal)) private _pending;
    mapping(address module => mapping(address account => mapping(Role role => uint256))) private _lockedBy;
    RoleState[ROLE_COUNT] private _roles;

    error ZeroAmount();
    error ZeroAddress();
    error BelowMinimum(uint256 stakeAfter, uint256 minStake);
    error ExceedsUnlocked(uint256 requested, uint256 unlocked);
    error ExceedsLocked(uint256 requested, uint256 lockedByModule);
    error NothingPending();
    error StillUnbonding(uint256 releaseTime);
    error DelayTooLong(uint256 delay);
    error AmountTooLarge(uint256 amount);

    /// @notice Deploys the registry for `token_` with the same unbonding delay for every role.
    /// @param token_ The DSH token.
    /// @param admin Receives DEFAULT_ADMIN_ROLE (governance): sets minimums and delays, admits modules.
    /// @param initialUnbondingDelay Initial unbonding delay of every role, in seconds.
    /// @param minStakes Initial minimum stake of each role, indexed by `Role`.
    constructor(IERC20 token_, address admin, uint64 initialUnbondingDelay, uint96[ROLE_COUNT] memory minStakes) {
        if (address(token_) == address(0) || admin == address(0)) revert ZeroAddress();
        token = token_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        for (uint256 i = 0; i < ROLE_COUNT; ++i) {
            _setMinStake(Role(i), minStakes[i]);
            _setUnbondingDelay(Role(i), initialUnbondingDelay);
        }
    }

    // ---------------------------------------------------------------- stakers

    /// @notice Stakes `amount` DSH in `role`, pulled with a prior `approve`.
    /// @param role The role to stake in.
    /// @param amount Amount in wei; the resulting stake must reach the role's minimum.
    function stake(Role role, uint256 amount) external {
        _stake(role, amount);
    }

    /// @notice Stakes `amount` DSH in `role` using an EIP-2612 permit instead of a prior `approve`.
    /// @dev The permit is tried and its failure ignored, so a permit front-run by someone else (which
    ///      already set the allowance) cannot block the stake; `transferFrom` still enforces the allowance.
    /// @param role The role to stake in.
    /// @param amount Amount in wei, also the permitted value.
    /// @param deadline Permit deadline.
    /// @param v Permit signature v.
    /// @param r Permit signature r.
    /// @param s Permit signature s.
    function stakeWithPermit(Role role, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external {
        // Both blocks are empty on purpose: a failed permit is ignored (see @dev).
        // solhint-disable-next-line no-empty-blocks
        try IERC20Permit(address(token)).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}
        _stake(role, amount);
    }

    /// @notice Moves `amount` of unlocked stake in `role` into a pending withdrawal that `withdraw` releases
    ///         after the unbonding delay. A further request adds to the pending amount and restarts the delay.
    /// @param role The role to unstake from.
    /// @param amount Amount in wei; what stays staked must be zero or at least the role's minimum.
    function requestUnstake(Role role, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        Position storage position = _positions[msg.sender][role];
        uint256 current = position.amount;
        uint256 unlocked = current - position.locked;
        if (amount > unlocked) revert ExceedsUnlocked(amount, unlocked);
        uint256 remaining = current - amount;
        RoleState storage roleState = _roles[uint256(role)];
        uint256 minimum = roleState.minStake;
        if (remaining != 0 && remaining < minimum) revert BelowMinimum(remaining, minimum);

        position.amount = uint96(remaining);
        roleState.totalStaked -= uint96(amount);
        PendingWithdrawal storage pending = _pending[msg.sender][role];
        uint256 releaseTime = block.timestamp + roleState.unbondingDelay;
        pending.amount += uint96(amount);
        pending.releaseTime = uint64(releaseTime);
        emit UnstakeRequested(msg.sender, role, amount, releaseTime);
    }

    /// @notice Sends the caller its pending withdrawal in `role` once the unbonding delay has passed.
    /// @param role The role whose pending withdrawal to release.
    function withdraw(Role role) external {
        PendingWithdrawal memory pending = _pending[msg.sender][role];
        // Our own bookkeeping, not a token balance anyone can push: the exact zero check is safe.
        // slither-disable-next-line incorrect-equality
        if (pending.amount == 0) revert NothingPending();
        if (block.timestamp < pending.releaseTime) revert StillUnbonding(pending.releaseTime);
        delete _pending[msg.sender][role];
        emit Withdrawn(msg.sender, role, pending.amount);
        token.safeTransfer(msg.sender, pending.amount);
    }

    // ---------------------------------------------------------------- modules

    /// @inheritdoc IStakeRegistry
    /// @param account The staker whose stake is committed.
    /// @param role The role of the stake.
    /// @param amount Amount in wei; at most the account's unlocked stake.
    function lock(address account, Role role, uint256 amount) external onlyRole(MODULE_ROLE) {
        if (amount == 0) revert ZeroAmount();
        Position storage position = _positions[account][role];
        uint256 unlocked = position.amount - position.locked;
        if (amount > unlocked) revert ExceedsUnlocked(amount, unlocked);
        position.locked += uint96(amount);
        _lockedBy[msg.sender][account][role] += amount;
        emit Locked(msg.sender, account, role, amount);
    }

    /// @inheritdoc IStakeRegistry
    /// @param account The staker whose stake is released.
    /// @param role The role of the stake.
    /// @param amount Amount in wei; at most what the calling module has locked for the account.
    function unlock(address account, Role role, uint256 amount) external onlyRole(MODULE_ROLE) {
        _releaseLock(account, role, amount);
        emit Unlocked(msg.sender, account, role, amount);
    }

    /// @inheritdoc IStakeRegistry
    /// @param account The staker to slash.
    /// @param role The role of the stake.
    /// @param amount Amount in wei; at most what the calling module has locked for the account.
    /// @param beneficiary Receives the slashed tokens (usually the module, which redistributes them).
    function slash(address account, Role role, uint256 amount, address beneficiary) external onlyRole(MODULE_ROLE) {
        if (beneficiary == address(0)) revert ZeroAddress();
        _releaseLock(account, role, amount);
        _positions[account][role].amount -= uint96(amount);
        _roles[uint256(role)].totalStaked -= uint96(amount);
        emit Slashed(msg.sender, account, role, amount, beneficiary);
        token.safeTransfer(beneficiary, amount);
    }

    // ---------------------------------------------------------------- governance

    /// @notice Sets the minimum non-zero stake of `role`. Existing stakes below it stay until changed.
    /// @param role The role to configure.
    /// @param minimum Amount in wei.
    function setMinStake(Role role, uint96 minimum) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setMinStake(role, minimum);
    }

    /// @notice Sets the unbonding delay of `role` for future unstake requests.
    /// @param role The role to configure.
    /// @param delay Seconds, at most MAX_UNBONDING_DELAY.
    function setUnbondingDelay(Role role, uint64 delay) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setUnbondingDelay(role, delay);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IStakeRegistry
    function stakeOf(address account, Role role) external view returns (uint256) {
        return _positions[account][role].amount;
    }

    /// @inheritdoc IStakeRegistry
    function lockedOf(address account, Role role) external view returns (uint256) {
        return _positions[account][role].locked;
    }

    /// @inheritdoc IStakeRegistry
    function lockedBy(address module, address account, Role role) external view returns (uint256) {
        return _lockedBy[module][account][role];
    }

    /// @notice The pending withdrawal of `account` in `role` and the time `withdraw` releases it.
    /// @param account The staker.
    /// @param role The role.
    /// @return amount Pending amount in wei.
    /// @return releaseTime Earliest timestamp of `withdraw`.
    function pendingWithdrawal(address account, Role role) external view returns (uint256 amount, uint256 releaseTime) {
        PendingWithdrawal memory pending = _pending[account][role];
        return (pending.amount, pending.releaseTime);
    }

    /// @inheritdoc IStakeRegistry
    function totalStaked(Role role) external view returns (uint256) {
        return _roles[uint256(role)].totalStaked;
    }

    /// @inheritdoc IStakeRegistry
    function minStake(Role role) external view returns (uint256) {
        return _roles[uint256(role)].minStake;
    }

    /// @notice Seconds between `requestUnstake` in `role` and the earliest `withdraw`.
    /// @param role The role.
    /// @return Delay in seconds.
    function unbondingDelay(Role role) external view returns (uint256) {
        return _roles[uint256(role)].unbondingDelay;
    }

    // ---------------------------------------------------------------- internal

    function _stake(Role role, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint96).max) revert AmountTooLarge(amount);
        Position storage position = _positions[msg.sender][role];
        RoleState storage roleState = _roles[uint256(role)];
        uint256 stakeAfter = position.amount + amount;
        if (stakeAfter < roleState.minStake) revert BelowMinimum(stakeAfter, roleState.minStake);
        position.amount = uint96(stakeAfter);
        roleState.totalStaked += uint96(amount);
        emit Staked(msg.sender, role, amount, stakeAfter);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    function _releaseLock(address account, Role role, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        uint256 lockedByModule = _lockedBy[msg.sender][account][role];
        if (amount > lockedByModule) revert ExceedsLocked(amount, lockedByModule);
        _lockedBy[msg.sender][account][role] = lockedByModule - amount;
        _positions[account][role].locked -= uint96(amount);
    }

    function _setMinStake(Role role, uint96 minimum) private {
        _roles[uint256(role)].minStake = minimum;
        emit MinStakeSet(role, minimum);
    }

    function _setUnbondingDelay(Role role, uint64 delay) private {
        if (delay > MAX_UNBONDING_DELAY) revert DelayTooLong(delay);
        _roles[uint256(role)].unbondingDelay = delay;
        emit UnbondingDelaySet(role, delay);
    }
}
