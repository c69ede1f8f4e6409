// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {WeightedMedian} from "../libraries/WeightedMedian.sol";

/// @title WeightedMedianHarness
/// @notice Test-only: external wrappers around the internal functions of `WeightedMedian`, so tests can feed
///         the library and its Python reference (`workers.protocol.median`) the same samples.
contract WeightedMedianHarness {
    /// @notice `WeightedMedian.lowerMedian`: the lower weighted median of the first `count` samples.
    /// @param values Sample values (below 2**64).
    /// @param weights Sample weights (below 2**192), summing to more than zero over the first `count`.
    /// @param count Samples to use, at most the length of either array.
    /// @return The median value.
    function lowerMedian(uint256[] calldata values, uint256[] calldata weights, uint256 count)
        external
        pure
        returns (uint256)
    {
        return WeightedMedian.lowerMedian(values, weights, count);
    }

    /// @notice `WeightedMedian.pack`: one sample as a single sortable word.
    /// @param value The value (below 2**64).
    /// @param weight The weight (below 2**192).
    /// @return The packed word.
    function pack(uint256 value, uint256 weight) external pure returns (uint256) {
        return WeightedMedian.pack(value, weight);
    }

    /// @notice `WeightedMedian.medianOfPacked`, and the buffer as the library left it (sorted in place).
    /// @param packed Packed samples (see `pack`).
    /// @param count Samples to use.
    /// @param total The sum of their weights.
    /// @return median The median value.
    /// @return sorted The buffer after the call (the library sorts it in place, hence memory, not calldata).
    function medianOfPacked(uint256[] memory packed, uint256 count, uint256 total) // solhint-disable-line gas-calldata-parameters
        external
        pure
        returns (uint256 median, uint256[] memory sorted)
    {
        median = WeightedMedian.medianOfPacked(packed, count, total);
        sorted = packed;
    }
}
