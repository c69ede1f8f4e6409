// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title CustodyPayouts
/// @notice What Storage and WeightAccess share: earnings credited per account and pulled with `claim`, and the
///         treasury governance (DEFAULT_ADMIN_ROLE) sets, which receives slashes and the treasury's fee share.
abstract contract CustodyPayouts is AccessControl {
    using SafeERC20 for IERC20;

    /// @notice DSH.
    IERC20 public immutable token;
    /// @notice Receives slashed bonds and the treasury's share.
    address public treasury;
    /// @notice Earned and unclaimed, in wei.
    mapping(address account => uint256) public owed;

    /// @notice An account pulled its earnings.
    /// @param account The account.
    /// @param amount Wei.
    event Claimed(address indexed account, uint256 amount);
    /// @notice Governance changed the treasury.
    /// @param treasury The new treasury.
    event TreasurySet(address treasury);

    error ZeroAddress();
    error NothingToClaim();

    /// @notice Sets the token, governance and the treasury.
    /// @param token_ DSH.
    /// @param admin Governance (DEFAULT_ADMIN_ROLE).
    /// @param treasury_ The treasury.
    constructor(IERC20 token_, address admin, address treasury_) {
        if (address(token_) == address(0) || admin == address(0) || treasury_ == address(0)) revert ZeroAddress();
        token = token_;
        treasury = treasury_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Pays the caller what it earned.
    function claim() external {
        uint256 amount = owed[msg.sender];
        if (amount == 0) revert NothingToClaim();
        owed[msg.sender] = 0;
        emit Claimed(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Sets the treasury.
    /// @param treasury_ The new treasury.
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (treasury_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
        emit TreasurySet(treasury_);
    }
}
