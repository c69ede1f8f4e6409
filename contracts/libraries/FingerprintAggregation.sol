// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {ITrainingRounds} from "../interfaces/ITrainingRounds.sol";
import {CodeStore} from "./CodeStore.sol";
import {TrainerBonds} from "./TrainerBonds.sol";
import {WeightedMedian} from "./WeightedMedian.sol";

/// @dev Coordinates per fingerprint (file-level so that contracts can size their arrays with it).
uint256 constant FINGERPRINT_LENGTH = 16;

/// @title FingerprintAggregation
/// @notice How a training round judges its deltas from the evaluators' curvature fingerprints (K = 16 int32 per
///         delta): per delta and coordinate, the lower median over the evaluators weighted by draws is the delta's
///         consensus fingerprint; the coordinate-wise lower median over the deltas' consensus, each weighing its
///         trainer's bond, is the reference; a delta within `tolerance` (L1) of the reference is accepted if the
///         deltas within it hold more than half of the revealed bond (else none is: bond holding exactly half
///         must not set the reference, and a slot count is no weight since addresses are free), and an
///         evaluator within `evaluatorTolerance` of the consensus on every delta is coherent.
/// @dev An externally linked library (public functions, called by DELEGATECALL): TrainingRounds keeps its bytecode
///      room, and what crosses the boundary stays small (CodeStore pointers, seats, weights and the trainer slots'
///      storage in; masks, the coherent weight, the accepted bond and the best delta out; each delta's distance as the
///      round's DeltaJudged event, which a library running by DELEGATECALL emits in the round contract's name).
///      Fingerprints are stored as CodeStore blobs: per delta, K big-endian uint32, each the int32 coordinate plus
///      2^31, which keeps the order of the values.
library FingerprintAggregation {
    uint256 private constant K = FINGERPRINT_LENGTH;
    /// @dev Adding 2^31 maps an int32 to a uint32 without changing the order.
    uint256 private constant OFFSET = 2 ** 31;
    /// @dev Bytes of one stored fingerprint.
    uint256 private constant FINGERPRINT_BYTES = 4 * K;

    /// @notice A coordinate that is no int32 (an ABI encoding of int32 must be its sign extension).
    error NotInt32(uint256 value);

    /// @notice A round's judgement. Deltas in reveal order.
    struct Judgement {
        uint256 coherentMask; // bit s: the evaluator in seat s is within evaluatorTolerance on every delta
        uint256 coherentWeight; // the coherent evaluators' summed weight
        uint256 acceptedMask; // bit d: delta d is accepted (within tolerance, with more than half of the bond)
        uint256 acceptedCount;
        uint256 acceptedBond; // wei: the accepted deltas' summed bond
        uint256 best; // the accepted delta closest to the reference (the earliest revealed on a tie), else 0
    }

    /// @notice Stores one evaluator's fingerprints (one per delta, in delta order) as a CodeStore blob.
    /// @param fingerprints The revealed fingerprints.
    /// @return pointer Where the blob lives (an address created by the calling contract).
    function store(int32[K][] calldata fingerprints) public returns (address pointer) {
        uint256 count = fingerprints.length * K;
        bytes memory data = new bytes(count * 4);
        // Hundreds of coordinates per reveal: read the calldata words and write eight big-endian uint32 (the
        // int32 plus 2^31) per word of the blob, instead of indexing and storing byte by byte.
        bool malformed = false;
        uint256 malformedValue = 0;
        assembly ("memory-safe") {
            let src := fingerprints.offset
            let dst := add(data, 0x20)
            for { let i := 0 } lt(i, count) { i := add(i, 8) } {
                let word := 0
                for { let j := 0 } lt(j, 8) { j := add(j, 1) } {
                    let value := calldataload(add(src, shl(5, add(i, j))))
                    // An int32's ABI word is its own sign extension from 4 bytes; remember the first that is not.
                    if and(iszero(malformed), iszero(eq(signextend(3, value), value))) {
                        malformed := 1
                        malformedValue := value
                    }
                    word := or(shl(32, word), and(add(value, 0x80000000), 0xffffffff))
                }
                mstore(add(dst, shl(2, i)), word)
            }
        }
        if (malformed) revert NotInt32(malformedValue);
        pointer = CodeStore.write(data);
    }

    /// @notice One stored fingerprint.
    /// @param pointer A blob written by `store` (the zero address reads as empty).
    /// @param delta The delta's index.
    /// @return fp Its K coordinates; zeros when the blob holds no fingerprint for `delta`.
    function fingerprint(address pointer, uint256 delta) public view returns (int32[K] memory fp) {
        bytes memory data = CodeStore.read(pointer);
        if (data.length < (delta + 1) * FINGERPRINT_BYTES) return fp;
        for (uint256 k = 0; k < K; ++k) {
            uint256 value;
            assembly ("memory-safe") {
                // FINGERPRINT_BYTES (64) per delta, 4 per coordinate
                value := shr(224, mload(add(add(data, 0x20), add(mul(delta, 64), mul(k, 4)))))
            }
            fp[k] = int32(int256(value) - int256(OFFSET));
        }
    }

    /// @notice Judges a round: the evaluators' consensus per delta, their coherence, and each delta's distance to
    ///         the reference, emitted as DeltaJudged with whether it is within tolerance (see the library's notice;
    ///         `acceptedMask` is empty unless the deltas within tolerance hold more than half of the bond).
    /// @param round The round, for its DeltaJudged events (emitted from the caller: this runs by DELEGATECALL).
    /// @param seats Each revealed evaluator's seat, for `coherentMask`.
    /// @param stores Each revealed evaluator's blob (from `store`, as the low 20 bytes), `deltas` fingerprints each.
    /// @param weights Each evaluator's weight (its number of draws on the panel), in the same order.
    /// @param trainers The round's trainer slots, whose bonds (wei, at least 1 each) weigh their deltas in the
    ///        reference and the majority (read here: an array built by TrainingRounds costs its bytecode room).
    /// @param trainerCount Committed trainer slots.
    /// @param deltas Revealed deltas.
    /// @param evaluatorTolerance L1 distance within which an evaluator is coherent, per delta.
    /// @param tolerance L1 distance to the reference within which a delta is accepted.
    /// @return judgement The outcome.
    function judge(
        uint256 round,
        uint256[] memory seats,
        uint256[] memory stores,
        uint256[] memory weights,
        mapping(uint256 => TrainerBonds.Slot) storage trainers,
        uint256 trainerCount,
        uint256 deltas,
        uint256 evaluatorTolerance,
        uint256 tolerance
    ) public returns (Judgement memory judgement) {
        uint256[] memory bonds = TrainerBonds.bondsByDelta(trainers, trainerCount, deltas);
        _judge(round, seats, stores, weights, bonds, evaluatorTolerance, tolerance, judgement);
    }

    /// @dev `judge`, the deltas weighing `bonds` (delta order).
    function _judge(
        uint256 round,
        uint256[] memory seats,
        uint256[] memory stores,
        uint256[] memory weights,
        uint256[] memory bonds,
        uint256 evaluatorTolerance,
        uint256 tolerance,
        Judgement memory judgement
    ) private {
        uint256 deltas = bonds.length;
        uint256[] memory coordinates = _unpack(stores, deltas);
        uint256[] memory consensus = _consensus(coordinates, weights, deltas * K);
        for (uint256 e = 0; e < stores.length; ++e) {
            if (_maxDistance(coordinates, e * deltas * K, consensus, deltas) <= evaluatorTolerance) {
                judgement.coherentMask |= uint256(1) << seats[e];
                judgement.coherentWeight += weights[e];
            }
        }
        _verdicts(round, consensus, bonds, tolerance, judgement);
    }

    /// @dev Each delta's distance to the bond-weighted reference and verdict (DeltaJudged), into `judgement`'s
    ///      accepted mask, count, bond and best delta.
    function _verdicts(
        uint256 round,
        uint256[] memory consensus,
        uint256[] memory bonds,
        uint256 tolerance,
        Judgement memory judgement
    ) private {
        (uint256[] memory reference_, uint256 totalBond) = _reference(consensus, bonds);
        uint256 bestDistance = type(uint256).max;
        for (uint256 delta = 0; delta < bonds.length; ++delta) {
            uint256 distance = _maxDistance(consensus, delta * K, reference_, 1);
            bool accepted = distance <= tolerance;
            emit ITrainingRounds.DeltaJudged(round, delta, distance, accepted);
            if (!accepted) continue;
            judgement.acceptedMask |= uint256(1) << delta;
            ++judgement.acceptedCount;
            judgement.acceptedBond += bonds[delta];
            if (distance < bestDistance) (bestDistance, judgement.best) = (distance, delta);
        }
        // The reference is a lower weighted median: deltas holding half the bond, lying below the rest, set it
        // alone. A verdict needs more than half of the revealed bond within tolerance; otherwise none is accepted.
        if (2 * judgement.acceptedBond <= totalBond) {
            (judgement.acceptedMask, judgement.acceptedCount, judgement.acceptedBond) = (0, 0, 0);
        }
    }

    /// @dev Reads every fingerprint once into flat memory indexed `(e * deltas + d) * K + k`, so that the
    ///      hundreds of medians below read words instead of decoding blobs.
    function _unpack(uint256[] memory stores, uint256 deltas) private view returns (uint256[] memory coordinates) {
        uint256 perEvaluator = deltas * K;
        coordinates = new uint256[](stores.length * perEvaluator);
        for (uint256 e = 0; e < stores.length; ++e) {
            bytes memory data = CodeStore.read(address(uint160(stores[e])));
            uint256 base = e * perEvaluator;
            // Eight big-endian uint32 per 32-byte word of the blob.
            assembly ("memory-safe") {
                let src := add(data, 0x20)
                let dst := add(add(coordinates, 0x20), shl(5, base))
                for { let i := 0 } lt(i, perEvaluator) { i := add(i, 8) } {
                    let word := mload(add(src, shl(2, i)))
                    for { let j := 0 } lt(j, 8) { j := add(j, 1) } {
                        mstore(add(dst, shl(5, add(i, j))), and(shr(sub(224, shl(5, j)), word), 0xffffffff))
                    }
                }
            }
        }
    }

    /// @dev For each of the `stride` cells (delta, coordinate), the weighted median over the evaluators,
    ///      packing each cell's samples into one reused buffer.
    function _consensus(uint256[] memory coordinates, uint256[] memory weights, uint256 stride)
        private
        pure
        returns (uint256[] memory consensus)
    {
        uint256 count = weights.length;
        uint256 total = 0;
        for (uint256 e = 0; e < count; ++e) {
            total += weights[e];
        }
        consensus = new uint256[](stride);
        uint256[] memory packed = new uint256[](count);
        for (uint256 cell = 0; cell < stride; ++cell) {
            assembly ("memory-safe") {
                let src := add(add(coordinates, 0x20), shl(5, cell))
                let w := add(weights, 0x20)
                let dst := add(packed, 0x20)
                let step := shl(5, stride)
                for { let e := 0 } lt(e, count) { e := add(e, 1) } {
                    mstore(add(dst, shl(5, e)), or(shl(192, mload(add(src, mul(e, step)))), mload(add(w, shl(5, e)))))
                }
            }
            consensus[cell] = WeightedMedian.medianOfPacked(packed, count, total);
        }
    }

    /// @dev The largest, over `deltas` fingerprints, L1 distance between the fingerprints starting at `start` in
    ///      `coordinates` and those of `agreed`.
    function _maxDistance(uint256[] memory coordinates, uint256 start, uint256[] memory agreed, uint256 deltas)
        private
        pure
        returns (uint256 largest)
    {
        assembly ("memory-safe") {
            let mine := add(add(coordinates, 0x20), mul(start, 0x20))
            let theirs := add(agreed, 0x20)
            // K = 16 coordinates per fingerprint
            for { let delta := 0 } lt(delta, deltas) { delta := add(delta, 1) } {
                let distance := 0
                for { let k := 0 } lt(k, 16) { k := add(k, 1) } {
                    let offset := mul(add(mul(delta, 16), k), 0x20)
                    let a := mload(add(mine, offset))
                    let b := mload(add(theirs, offset))
                    switch gt(a, b)
                    case 1 { distance := add(distance, sub(a, b)) }
                    default { distance := add(distance, sub(b, a)) }
                }
                if gt(distance, largest) { largest := distance }
            }
        }
    }

    /// @dev Coordinate-wise lower median over the deltas' consensus fingerprints, weighted by their bonds; and
    ///      the bonds' total.
    function _reference(uint256[] memory consensus, uint256[] memory bonds)
        private
        pure
        returns (uint256[] memory reference_, uint256 totalBond)
    {
        uint256 deltas = bonds.length;
        for (uint256 delta = 0; delta < deltas; ++delta) {
            totalBond += bonds[delta];
        }
        reference_ = new uint256[](K);
        uint256[] memory packed = new uint256[](deltas);
        for (uint256 k = 0; k < K; ++k) {
            for (uint256 delta = 0; delta < deltas; ++delta) {
                // `WeightedMedian.pack(coordinate, bond)` without its range check: a coordinate is a uint32 and
                // a bond below 2^88 (TrainingRounds stores it so).
                packed[delta] = (consensus[delta * K + k] << 192) | bonds[delta];
            }
            reference_[k] = WeightedMedian.medianOfPacked(packed, deltas, totalBond);
        }
    }
}
