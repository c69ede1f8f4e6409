// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {FixedPointMath} from "../libraries/FixedPointMath.sol";

/// @title FixedPointMathHarness
/// @notice Test-only: external wrappers around `FixedPointMath`, compared with `workers.protocol.fixedpoint`.
contract FixedPointMathHarness {
    /// @notice `FixedPointMath.WAD`, one in 18-decimal fixed point.
    /// @return One WAD.
    function wad() external pure returns (uint256) {
        return FixedPointMath.WAD;
    }

    /// @notice `FixedPointMath.mulWad`: `x * y / WAD`, rounded down (reverts on overflow).
    /// @param x A WAD value.
    /// @param y A WAD value.
    /// @return The product (WAD).
    function mulWad(uint256 x, uint256 y) external pure returns (uint256) {
        return FixedPointMath.mulWad(x, y);
    }

    /// @notice `FixedPointMath.powWad`: `base ** exponent` for a WAD base of at most one.
    /// @param base The base (WAD, at most one).
    /// @param exponent The exponent.
    /// @return The power (WAD).
    function powWad(uint256 base, uint256 exponent) external pure returns (uint256) {
        return FixedPointMath.powWad(base, exponent);
    }

    /// @notice `FixedPointMath.expWad`: e**x for a WAD x of at most MAX_EXP_INPUT.
    /// @param x The exponent (WAD).
    /// @return The power (WAD).
    function expWad(uint256 x) external pure returns (uint256) {
        return FixedPointMath.expWad(x);
    }
}
