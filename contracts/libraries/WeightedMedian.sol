// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title WeightedMedian
/// @notice Lower weighted median of small in-memory samples (panels of at most a few dozen voters).
/// @dev The lower weighted median is the smallest value v such that the weight of samples <= v is at least
///      half of the total. Voters holding less than half of the weight can therefore not move it outside the
///      range of the values the rest voted for.
library WeightedMedian {
    /// @notice Lower weighted median of `values[0..count)` weighted by `weights[0..count)`.
    /// @dev Sorts copies in memory (insertion sort: count is bounded by the caller's panel size).
    ///      Weights must fit in 192 bits and values in 64 bits; reverts on an empty or weightless sample.
    function lowerMedian(uint256[] memory values, uint256[] memory weights, uint256 count)
        internal
        pure
        returns (uint256)
    {
        // Pack (value, weight) into one word so sorting the words sorts by value.
        uint256[] memory packed = new uint256[](count);
        uint256 total = 0;
        for (uint256 i = 0; i < count; ++i) {
            packed[i] = (values[i] << 192) | weights[i];
            total += weights[i];
        }
        require(total != 0, "WeightedMedian: no weight");
        for (uint256 i = 1; i < count; ++i) {
            uint256 item = packed[i];
            uint256 j = i;
            while (j != 0 && packed[j - 1] > item) {
                packed[j] = packed[j - 1];
                --j;
            }
            packed[j] = item;
        }
        uint256 cumulative = 0;
        for (uint256 i = 0; i < count; ++i) {
            cumulative += packed[i] & type(uint192).max;
            if (2 * cumulative >= total) return packed[i] >> 192;
        }
        return packed[count - 1] >> 192; // unreachable: the loop always reaches half of the total
    }
}
