// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title DeepshardToken (DSH)
/// @notice The network's stake and reward token: ERC20 with EIP-2612 permits, a hard cap and burning (the burned
///         share of access fees leaves the supply).
/// @dev Deployed by the Emission contract, which becomes the only minter for the token's lifetime.
///      The cap fits in 96 bits so that stake positions pack into one storage slot.
contract DeepshardToken is ERC20, ERC20Burnable, ERC20Capped, ERC20Permit {
    /// @notice The only address allowed to mint: the Emission contract that deployed this token.
    address public immutable minter;

    error NotMinter(address caller);
    error CapTooLarge(uint256 cap);

    /// @notice Deploys the token (its deployer, Emission, becomes the only minter) and mints the genesis supply.
    /// @param cap_ Hard cap on the total supply, in wei.
    /// @param genesisRecipient Receives the genesis allocation (the treasury or a distribution contract).
    /// @param genesisSupply Minted once at deployment; the rest of the cap can only be emitted as rewards.
    constructor(uint256 cap_, address genesisRecipient, uint256 genesisSupply)
        ERC20("Deepshard", "DSH")
        ERC20Capped(cap_)
        ERC20Permit("Deepshard")
    {
        if (cap_ > type(uint96).max) revert CapTooLarge(cap_);
        minter = msg.sender;
        if (genesisSupply != 0) _mint(genesisRecipient, genesisSupply);
    }

    /// @notice Mints `amount` to `to`. Only the Emission contract can call it; the cap always holds.
    /// @param to Recipient of the new tokens.
    /// @param amount Amount in wei.
    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override(ERC20, ERC20Capped) {
        super._update(from, to, value);
    }
}
