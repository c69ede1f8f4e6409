// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title FixedPointMath
/// @notice 18-decimal fixed-point helpers ("WAD"). Kept tiny so every caller reads the same rounding rules.
library FixedPointMath {
    uint256 internal constant WAD = 1e18;
    /// @notice ln 2 in WAD, rounded down.
    uint256 internal constant LN2_WAD = 693_147_180_559_945_309;
    /// @notice Largest input of `expWad`: e**135.99 * 1e18 is the last that fits in uint256; 135 keeps a margin.
    uint256 internal constant MAX_EXP_INPUT = 135e18;
    /// @dev Taylor terms of e**r for 0 <= r < ln 2: the 19th term is below 1e-18, so 24 ends every series.
    uint256 private constant EXP_TERMS = 24;

    /// @notice `powWad` takes bases of at most 1 (WAD).
    error BaseAboveOne(uint256 base);
    /// @notice `expWad` takes inputs of at most MAX_EXP_INPUT.
    error ExpInputTooLarge(uint256 x);

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

    /// @notice e**x for a WAD `x` in 0..MAX_EXP_INPUT, rounded down: e**x = 2**k * e**r with k = x / ln 2 and
    ///         r = x - k ln 2 in [0, ln 2), e**r by its Taylor series (each term rounded down) until a term is 0.
    /// @dev Every intermediate stays below 2 * 1e18 * 2**195 < 2**256. workers.protocol.fixedpoint.exp_wad is the
    ///      reference, equal to the wei.
    /// @param x A WAD of at most MAX_EXP_INPUT (`ExpInputTooLarge` otherwise).
    /// @return result The WAD e**x.
    function expWad(uint256 x) internal pure returns (uint256 result) {
        if (x > MAX_EXP_INPUT) revert ExpInputTooLarge(x);
        // Range reduction x = k*ln2 + r: k is meant to be floored (the remainder r is what the series needs).
        uint256 k = x / LN2_WAD;
        // slither-disable-next-line divide-before-multiply
        uint256 r = x - k * LN2_WAD;
        uint256 term = WAD;
        result = WAD;
        for (uint256 i = 1; i <= EXP_TERMS && term != 0; ++i) {
            term = (term * r) / (WAD * i);
            result += term;
        }
        result <<= k;
    }
}
