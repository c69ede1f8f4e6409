// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title FixedPointMath
/// @notice 18-decimal fixed-point helpers ("WAD"). Kept tiny so every caller reads the same rounding rules.
library FixedPointMath {
    uint256 internal constant WAD = 1e18;

    /// @notice `powWad` takes bases of at most 1 (WAD).
    error BaseAboveOne(uint256 base);

    /// @notice `x * y / WAD`, rounded down.
    /// @param x A WAD.
    /// @param y A WAD.
    /// @return The WAD product.
    function mulWad(uint256 x, uint256 y) internal pure returns (uint256) {
        return (x * y) / WAD;
    }

    /// @notice `base ** exponent` for a WAD `base <= WAD`, by repeated squaring, rounded down at each step.
    /// @dev Restricting the base to at most 1 keeps every intermediate below 2**120, so nothing can overflow
    ///      and a huge exponent simply decays to zero in at most 256 squarings.
    /// @param base A WAD of at most 1 (`BaseAboveOne` otherwise).
    /// @param exponent Any integer.
    /// @return result The WAD power.
    function powWad(uint256 base, uint256 exponent) internal pure returns (uint256 result) {
        if (base > WAD) revert BaseAboveOne(base);
        result = WAD;
        while (exponent != 0 && base != 0) {
            if (exponent & 1 == 1) result = mulWad(result, base);
            base = mulWad(base, base);
            exponent >>= 1;
        }
        if (exponent != 0) result = 0;
    }
}
