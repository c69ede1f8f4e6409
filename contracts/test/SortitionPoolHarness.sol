// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {IStakeRegistry} from "../interfaces/IStakeRegistry.sol";
import {SortitionPool} from "../staking/SortitionPool.sol";

/// @title SortitionPoolHarness
/// @notice Test-only: the smallest concrete SortitionPool, over a real StakeRegistry (it needs the registry's
///         MODULE_ROLE), with its internal draw and seat closing exposed to anyone.
contract SortitionPoolHarness is SortitionPool {
    uint256 private immutable _minimumBond;
    address private immutable _beneficiary;

    /// @notice The members and weights of the last `drawPanel`.
    /// @param members The drawn members, in seat order.
    /// @param weights Their numbers of draws (votes).
    event Drawn(address[] members, uint256[] weights);

    /// @notice A pool over `registry_`'s `role` stake.
    /// @param registry_ The StakeRegistry holding the bonds.
    /// @param role The role whose stake members lock.
    /// @param minimumBond The smallest pool bond (wei).
    /// @param beneficiary Receives the penalties of `closeSeat`.
    constructor(IStakeRegistry registry_, IStakeRegistry.Role role, uint256 minimumBond, address beneficiary)
        SortitionPool(registry_, role)
    {
        _minimumBond = minimumBond;
        _beneficiary = beneficiary;
    }

    /// @notice `_drawPanel`: draws `votes` tickets with replacement (at most `maxDraws` in all), never `excluded`.
    /// @param seed The draw's seed.
    /// @param excluded A member never drawn (address(0) for none).
    /// @param votes Draws that count.
    /// @param maxDraws Most tickets drawn.
    /// @return members The drawn members, in seat order.
    /// @return weights Their numbers of draws (votes).
    function drawPanel(bytes32 seed, address excluded, uint256 votes, uint256 maxDraws)
        external
        returns (address[] memory members, uint256[] memory weights)
    {
        (members, weights) = _drawPanel(seed, excluded, votes, maxDraws);
        emit Drawn(members, weights);
    }

    /// @notice `_closeSeat`: closes one of `member`'s seats, taking `penaltyBps` of its bond.
    /// @param member The member.
    /// @param penaltyBps Share of its bond taken, in bps.
    /// @return penalty The amount slashed (wei).
    function closeSeat(address member, uint256 penaltyBps) external returns (uint256 penalty) {
        return _closeSeat(member, penaltyBps);
    }

    function _minPoolBond() internal view override returns (uint256) {
        return _minimumBond;
    }

    function _penaltyBeneficiary() internal view override returns (address) {
        return _beneficiary;
    }
}
