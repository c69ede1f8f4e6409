// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title WeightedMedian
/// @notice Lower weighted median of small in-memory samples (panels of at most a few dozen voters).
/// @dev The lower weighted median is the smallest value v such that the weight of samples <= v is at least
///      half of the total. Voters holding less than half of the weight can therefore not move it outside the
///      range of the values the rest voted for.
library WeightedMedian {
    error NoWeight();
    /// @notice `count` samples asked of arrays holding `length`.
    error CountTooLarge(uint256 count, uint256 length);
    /// @notice A sample whose value is not below 2^64 or whose weight is not below 2^192 (`pack`).
    error SampleTooLarge(uint256 value, uint256 weight);

    /// @notice Lower weighted median of `values[0..count)` weighted by `weights[0..count)`.
    /// @dev Values must fit in 64 bits and weights in 192 bits (`SampleTooLarge` otherwise).
    /// @param values The samples.
    /// @param weights Their weights.
    /// @param count How many of them to take.
    /// @return The median value.
    function lowerMedian(uint256[] memory values, uint256[] memory weights, uint256 count)
        internal
        pure
        returns (uint256)
    {
        if (count > values.length || count > weights.length) {
            revert CountTooLarge(count, values.length < weights.length ? values.length : weights.length);
        }
        uint256[] memory packed = new uint256[](count);
        uint256 total = 0;
        for (uint256 i = 0; i < count; ++i) {
            packed[i] = pack(values[i], weights[i]);
            total += weights[i];
        }
        return medianOfPacked(packed, count, total);
    }

    /// @notice One sample: its value in the high 64 bits, its weight in the low 192, so that sorting
    ///         packed words sorts by value (`SampleTooLarge` for a value or weight that does not fit).
    /// @param value Below 2^64.
    /// @param weight Below 2^192.
    /// @return The packed sample.
    function pack(uint256 value, uint256 weight) internal pure returns (uint256) {
        if ((value >> 64) | (weight >> 192) != 0) revert SampleTooLarge(value, weight);
        return (value << 192) | weight;
    }

    /// @notice Lower weighted median of `packed[0..count)` (see `pack`) whose weights sum to `total`.
    ///         Sorts `packed[0..count)` in place.
    /// @dev Training rounds take hundreds of these per transaction with one reused buffer, so the loops work
    ///      on raw memory; `count` must not exceed the buffer's length. An insertion sort suits the bounded
    ///      panel sizes.
    /// @param packed Samples from `pack`.
    /// @param count How many of them to take.
    /// @param total Their summed weight (`NoWeight` if zero).
    /// @return median The median value.
    function medianOfPacked(uint256[] memory packed, uint256 count, uint256 total)
        internal
        pure
        returns (uint256 median)
    {
        if (count > packed.length) revert CountTooLarge(count, packed.length);
        if (total == 0) revert NoWeight();
        assembly ("memory-safe") {
            let data := add(packed, 0x20)
            for { let i := 1 } lt(i, count) { i := add(i, 1) } {
                let item := mload(add(data, shl(5, i)))
                let j := i
                for {} j { j := sub(j, 1) } {
                    let previous := mload(add(data, shl(5, sub(j, 1))))
                    if iszero(gt(previous, item)) { break }
                    mstore(add(data, shl(5, j)), previous)
                }
                mstore(add(data, shl(5, j)), item)
            }
            let cumulative := 0
            let mask := sub(shl(192, 1), 1)
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let word := mload(add(data, shl(5, i)))
                cumulative := add(cumulative, and(word, mask))
                // The loop always reaches half of the total, so the median is always set.
                if iszero(lt(shl(1, cumulative), total)) {
                    median := shr(192, word)
                    break
                }
            }
        }
    }
}
