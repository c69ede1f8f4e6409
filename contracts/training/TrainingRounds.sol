// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IDataConsensus} from "../interfaces/IDataConsensus.sol";
import {IEmission} from "../interfaces/IEmission.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";
import {IStakeRegistry} from "../interfaces/IStakeRegistry.sol";
import {ITrainingRounds} from "../interfaces/ITrainingRounds.sol";
import {CodeStore} from "../libraries/CodeStore.sol";
import {WeightedMedian} from "../libraries/WeightedMedian.sol";
import {SortitionPool} from "../staking/SortitionPool.sol";

/// @title TrainingRounds
/// @notice Turns accepted data into new model versions without trusting any single trainer. Anyone opens a
///         round on a batch of accepted datasets; up to 16 trainers fine-tune the current version under the
///         round's TrainingSpec and seed, commit `keccak(deltaCid, salt, trainer)` with a locked bond, then
///         reveal. A stake-weighted panel of up to 9 evaluators commits, then reveals, one probability-curvature
///         fingerprint of K = 16 integers per revealed delta. Per delta the coordinate-wise stake-weighted
///         median over evaluators is its fingerprint; the coordinate-wise median over deltas is the reference;
///         a delta within `tolerance` (L1) of the reference is accepted. Outliers and silent trainers are
///         slashed; accepted trainers split that plus the round's emission; the accepted delta closest to the
///         reference becomes the next version.
/// @dev One round runs at a time, so versions form a chain. Evaluators are a SortitionPool over EVALUATOR
///      stake and settle per seat (pull); trainer bonds are settled in `finalize` (at most 16) and rewards
///      pulled. Every loop is bounded by MAX_TRAINERS, MAX_EVALUATORS, K or MAX_BATCH.
contract TrainingRounds is ITrainingRounds, SortitionPool, AccessControl {
    using SafeERC20 for IERC20;

    uint256 public constant MAX_TRAINERS = 16;
    uint256 public constant MAX_EVALUATORS = 9;
    uint256 public constant MAX_DRAWS = 4 * MAX_EVALUATORS;
    uint256 public constant K = 16;
    uint256 public constant MAX_BATCH = 32;
    uint256 public constant MAX_CID_LENGTH = 64;
    uint256 private constant BPS = 10_000;
    /// @dev Fingerprint coordinates are int32; adding 2^31 maps them to uint32 without changing their order.
    uint256 private constant OFFSET = 2 ** 31;
    /// @dev Bytes of one stored fingerprint: K big-endian uint32.
    uint256 private constant FINGERPRINT_BYTES = 4 * K;

    /// @notice Governance parameters; windows in blocks, shares in basis points, distances in fingerprint units.
    struct Params {
        uint16 trainCommitWindow;
        uint16 trainRevealWindow;
        uint16 evalCommitWindow;
        uint16 evalRevealWindow;
        uint16 seedDelay; // blocks between the trainers' reveal deadline and the block seeding the panel
        uint16 minBatch; // fewest accepted datasets a round trains on
        uint16 maxBatch; // most datasets a round trains on (at most MAX_BATCH)
        uint8 minAccepted; // fewest accepted deltas for a round to succeed
        uint32 tolerance; // L1 distance to the reference within which a delta is accepted
        uint32 evaluatorTolerance; // L1 distance, per delta, within which an evaluator is coherent
        uint16 outlierSlashBps; // share of the trainer bond an outlier or silent trainer loses
        uint16 evaluatorShareBps; // share of the round's emission paid to coherent evaluators
        uint16 incoherentPenaltyBps; // share of the pool bond an incoherent evaluator loses
        uint16 noRevealPenaltyBps; // share of the pool bond a silent evaluator loses
        uint96 trainerBond; // TRAINER stake locked per committed delta
        uint96 minPoolBond; // smallest evaluator pool bond
        uint96 roundReward; // emission drawn for a successful round
    }

    struct Round {
        // slot 0
        uint64 baseVersion;
        uint40 trainCommitDeadline;
        uint40 trainRevealDeadline;
        uint40 evalCommitDeadline;
        uint40 evalRevealDeadline;
        uint8 trainerCount;
        uint8 deltaCount;
        Status status;
        // slot 1
        bytes32 specHash;
        // slot 2
        bytes32 seed;
        // slot 3
        uint40 panelSeedBlock;
        uint8 panelSize;
        uint16 evalRevealedMask;
        uint16 evalSettledMask;
        uint16 evalCoherentMask;
        uint16 acceptedDeltaMask;
        uint16 paidTrainerMask;
        uint64 newVersion;
        uint96 rewardPerTrainer;
        // slot 4
        uint96 evaluatorPayout;
        uint96 coherentEvaluatorWeight;
    }

    struct TrainerSlot {
        address trainer;
        uint8 deltaPlusOne; // 0 until revealed
    }

    struct Seat {
        address evaluator;
        uint96 weight;
    }

    IDataConsensus public immutable dataConsensus;
    IModelRegistry public immutable modelRegistry;
    IEmission public immutable emission;
    IERC20 public immutable token;

    /// @notice Receives slashes and penalties that no accepted trainer or coherent evaluator receives.
    address public treasury;
    uint256 public roundCount;
    Params private _params;

    mapping(uint256 round => Round) private _rounds;
    mapping(uint256 round => uint256[]) private _datasets;
    mapping(uint256 round => mapping(uint256 slot => TrainerSlot)) private _trainers;
    mapping(uint256 round => mapping(address trainer => uint256 slotPlusOne)) private _trainerSlotOf;
    mapping(uint256 round => mapping(uint256 slot => bytes32)) private _deltaCommitments;
    mapping(uint256 round => mapping(uint256 delta => uint256 slot)) private _deltaSlot;
    mapping(uint256 round => mapping(uint256 delta => bytes)) private _deltaCids;
    mapping(uint256 round => mapping(uint256 seat => Seat)) private _seats;
    mapping(uint256 round => mapping(address evaluator => uint256 seatPlusOne)) private _seatOf;
    mapping(uint256 round => mapping(uint256 seat => bytes32)) private _fingerprintCommitments;
    /// @dev Per seat, a CodeStore pointer to its revealed fingerprints: per delta, K offset uint32.
    mapping(uint256 round => mapping(uint256 seat => address)) private _fingerprints;

    error ZeroAddress();
    error InvalidParams();
    error InvalidCid();
    error RoundActive(uint256 round);
    error BatchSize(uint256 size);
    error WrongStatus(Status status);
    error TooEarly(uint256 block_);
    error WindowClosed();
    error WindowNotOpen();
    error RoundFull();
    error AlreadyCommitted();
    error EmptyCommitment();
    error NotCommitted();
    error NotTrainer();
    error NotOnPanel();
    error AlreadyRevealed();
    error CommitmentMismatch();
    error WrongFingerprintCount(uint256 given, uint256 expected);
    error InvalidSeat(uint256 seat);
    error AlreadySettled();
    error NothingToClaim();

    /// @param registry_ The StakeRegistry (this contract needs its MODULE_ROLE).
    /// @param emission_ Emission (this contract needs its DRAWER_ROLE).
    /// @param token_ The DSH token.
    /// @param dataConsensus_ DataConsensus (this contract needs its CONSUMER_ROLE).
    /// @param modelRegistry_ ModelRegistry (this contract needs its REGISTRAR_ROLE).
    /// @param admin Governance: receives DEFAULT_ADMIN_ROLE.
    /// @param treasury_ Receives unassigned slashes and penalties.
    /// @param params_ Initial parameters.
    constructor(
        IStakeRegistry registry_,
        IEmission emission_,
        IERC20 token_,
        IDataConsensus dataConsensus_,
        IModelRegistry modelRegistry_,
        address admin,
        address treasury_,
        Params memory params_
    ) SortitionPool(registry_, IStakeRegistry.Role.EVALUATOR) {
        if (
            address(registry_) == address(0) || address(emission_) == address(0) || address(token_) == address(0)
                || address(dataConsensus_) == address(0) || address(modelRegistry_) == address(0)
                || admin == address(0) || treasury_ == address(0)
        ) revert ZeroAddress();
        emission = emission_;
        token = token_;
        dataConsensus = dataConsensus_;
        modelRegistry = modelRegistry_;
        treasury = treasury_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setParams(params_);
    }

    // ------------------------------------------------------------------ opening

    /// @notice Opens a round on `datasetIds` (accepted, not yet trained on) over the newest model version.
    ///         Anyone can call it once the previous round has ended.
    /// @param datasetIds Accepted DataConsensus submissions, between `minBatch` and `maxBatch` of them.
    /// @param specHash Hash of the canonical TrainingSpec every trainer must follow.
    /// @return round The new round's id.
    function openRound(uint256[] calldata datasetIds, bytes32 specHash) external returns (uint256 round) {
        Params memory p = _params;
        uint256 previous = roundCount;
        if (previous != 0) {
            Status previousStatus = _rounds[previous].status;
            if (previousStatus != Status.Finalized && previousStatus != Status.Failed) revert RoundActive(previous);
        }
        if (datasetIds.length < p.minBatch || datasetIds.length > p.maxBatch) revert BatchSize(datasetIds.length);
        round = previous + 1;
        roundCount = round;
        Round storage r = _rounds[round];
        uint256 baseVersion = modelRegistry.latestVersion();
        // The seed fixes LoRA init, data order and probes for every trainer alike; whoever opens the round
        // can only pick the block, and gains nothing from it since all trainers share the seed.
        bytes32 seed = keccak256(abi.encode(block.prevrandao, round, address(this)));
        uint256 commitDeadline = block.number + p.trainCommitWindow;
        uint256 revealDeadline = commitDeadline + p.trainRevealWindow;
        r.baseVersion = uint64(baseVersion);
        r.trainCommitDeadline = uint40(commitDeadline);
        r.trainRevealDeadline = uint40(revealDeadline);
        r.panelSeedBlock = uint40(revealDeadline + p.seedDelay);
        r.status = Status.Training;
        r.specHash = specHash;
        r.seed = seed;
        _datasets[round] = datasetIds;
        emit RoundOpened(round, baseVersion, datasetIds, specHash, seed, commitDeadline, revealDeadline);
        dataConsensus.consumeDatasets(datasetIds);
    }

    // ------------------------------------------------------------------ trainers

    /// @notice Commits a delta: `keccak256(abi.encode(bytes deltaCid, bytes32 salt, address trainer))`.
    ///         Locks `trainerBond` of the caller's TRAINER stake until the round ends.
    /// @param round The round.
    /// @param commitment The commitment.
    function commitDelta(uint256 round, bytes32 commitment) external {
        Round storage r = _rounds[round];
        if (r.status != Status.Training) revert WrongStatus(r.status);
        if (block.number > r.trainCommitDeadline) revert WindowClosed();
        if (commitment == bytes32(0)) revert EmptyCommitment();
        if (_trainerSlotOf[round][msg.sender] != 0) revert AlreadyCommitted();
        uint256 slot = r.trainerCount;
        if (slot >= MAX_TRAINERS) revert RoundFull();
        r.trainerCount = uint8(slot + 1);
        _trainers[round][slot].trainer = msg.sender;
        _trainerSlotOf[round][msg.sender] = slot + 1;
        _deltaCommitments[round][slot] = commitment;
        emit DeltaCommitted(round, msg.sender, slot);
        registry.lock(msg.sender, IStakeRegistry.Role.TRAINER, _params.trainerBond);
    }

    /// @notice Reveals the committed delta's CID, after the commit window and before the reveal deadline.
    /// @param round The round.
    /// @param deltaCid Binary CID of the LoRA delta (safetensors) the trainer pinned.
    /// @param salt The committed salt.
    function revealDelta(uint256 round, bytes calldata deltaCid, bytes32 salt) external {
        Round storage r = _rounds[round];
        if (r.status != Status.Training) revert WrongStatus(r.status);
        if (block.number <= r.trainCommitDeadline) revert WindowNotOpen();
        if (block.number > r.trainRevealDeadline) revert WindowClosed();
        uint256 slotPlusOne = _trainerSlotOf[round][msg.sender];
        if (slotPlusOne == 0) revert NotTrainer();
        TrainerSlot storage trainer = _trainers[round][slotPlusOne - 1];
        if (trainer.deltaPlusOne != 0) revert AlreadyRevealed();
        if (deltaCommitmentFor(deltaCid, salt, msg.sender) != _deltaCommitments[round][slotPlusOne - 1]) {
            revert CommitmentMismatch();
        }
        if (deltaCid.length == 0 || deltaCid.length > MAX_CID_LENGTH) revert InvalidCid();
        uint256 delta = r.deltaCount;
        r.deltaCount = uint8(delta + 1);
        trainer.deltaPlusOne = uint8(delta + 1);
        _deltaSlot[round][delta] = slotPlusOne - 1;
        _deltaCids[round][delta] = deltaCid;
        emit DeltaRevealed(round, msg.sender, delta, deltaCid);
    }

    // ------------------------------------------------------------------ evaluators

    /// @notice Draws the evaluator panel once the panel's seed block is mined (anyone can call). A round
    ///         with too few revealed deltas to ever succeed fails here instead.
    /// @dev The seed is the hash of a block after the trainers' reveal deadline, so nobody who knows the
    ///      deltas can choose the panel. Past blockhash's 256-block horizon a new seed block is set.
    /// @param round The round.
    function drawEvaluators(uint256 round) external {
        Round storage r = _rounds[round];
        if (r.status != Status.Training) revert WrongStatus(r.status);
        uint256 seedBlock = r.panelSeedBlock;
        if (block.number <= seedBlock) revert TooEarly(seedBlock);
        if (r.deltaCount < _params.minAccepted) {
            _fail(round, r);
            return;
        }
        bytes32 seedHash = blockhash(seedBlock);
        if (seedHash == bytes32(0)) {
            r.panelSeedBlock = uint40(block.number + _params.seedDelay);
            return;
        }
        bytes32 seed = keccak256(abi.encode(seedHash, round, address(this)));
        (address[] memory drawn, uint256[] memory weights) = _drawPanel(seed, address(0), MAX_EVALUATORS, MAX_DRAWS);
        for (uint256 seat = 0; seat < drawn.length; ++seat) {
            _seats[round][seat] = Seat(drawn[seat], uint96(weights[seat]));
            _seatOf[round][drawn[seat]] = seat + 1;
        }
        uint256 commitDeadline = block.number + _params.evalCommitWindow;
        uint256 revealDeadline = commitDeadline + _params.evalRevealWindow;
        r.panelSize = uint8(drawn.length);
        r.evalCommitDeadline = uint40(commitDeadline);
        r.evalRevealDeadline = uint40(revealDeadline);
        r.status = Status.Evaluating;
        emit EvaluatorsDrawn(round, drawn, commitDeadline, revealDeadline);
    }

    /// @notice Commits the fingerprints: `fingerprintCommitmentFor(fingerprints, salt, evaluator)`.
    /// @param round The round.
    /// @param commitment The commitment.
    function commitFingerprints(uint256 round, bytes32 commitment) external {
        Round storage r = _rounds[round];
        if (r.status != Status.Evaluating) revert WrongStatus(r.status);
        if (block.number > r.evalCommitDeadline) revert WindowClosed();
        uint256 seat = _seatIndex(round, msg.sender);
        if (commitment == bytes32(0)) revert EmptyCommitment();
        if (_fingerprintCommitments[round][seat] != bytes32(0)) revert AlreadyCommitted();
        _fingerprintCommitments[round][seat] = commitment;
        emit FingerprintsCommitted(round, msg.sender);
    }

    /// @notice Reveals one fingerprint of K int32 per revealed delta, in delta order.
    /// @param round The round.
    /// @param fingerprints `deltaCount` fingerprints.
    /// @param salt The committed salt.
    function revealFingerprints(uint256 round, int32[K][] calldata fingerprints, bytes32 salt) external {
        Round storage r = _rounds[round];
        if (r.status != Status.Evaluating) revert WrongStatus(r.status);
        if (block.number <= r.evalCommitDeadline) revert WindowNotOpen();
        if (block.number > r.evalRevealDeadline) revert WindowClosed();
        uint256 seat = _seatIndex(round, msg.sender);
        uint256 mask = uint256(1) << seat;
        if (r.evalRevealedMask & mask != 0) revert AlreadyRevealed();
        bytes32 commitment = _fingerprintCommitments[round][seat];
        if (commitment == bytes32(0)) revert NotCommitted();
        if (fingerprintCommitmentFor(fingerprints, salt, msg.sender) != commitment) revert CommitmentMismatch();
        uint256 deltas = r.deltaCount;
        if (fingerprints.length != deltas) revert WrongFingerprintCount(fingerprints.length, deltas);
        r.evalRevealedMask = uint16(r.evalRevealedMask | mask);
        _fingerprints[round][seat] = CodeStore.write(_encode(fingerprints));
        emit FingerprintsRevealed(round, msg.sender);
    }

    // ------------------------------------------------------------------ outcome

    /// @notice Aggregates the revealed fingerprints and settles the round, once the evaluators' reveal
    ///         window has passed (or every seat revealed after the commit window).
    /// @param round The round.
    function finalize(uint256 round) external {
        Round storage r = _rounds[round];
        if (r.status != Status.Evaluating) revert WrongStatus(r.status);
        bool allRevealed = r.evalRevealedMask == (uint256(1) << r.panelSize) - 1;
        if (block.number <= r.evalRevealDeadline && !(allRevealed && block.number > r.evalCommitDeadline)) {
            revert TooEarly(r.evalRevealDeadline);
        }
        if (r.evalRevealedMask == 0) {
            _fail(round, r);
            return;
        }
        Params memory p = _params;
        (uint256[] memory consensus, uint256 coherentMask, uint256 coherentWeight) =
            _aggregate(round, r.deltaCount, r.panelSize, r.evalRevealedMask, p.evaluatorTolerance);
        r.evalCoherentMask = uint16(coherentMask);
        r.coherentEvaluatorWeight = uint96(coherentWeight);
        (uint256 acceptedMask, uint256 acceptedCount, uint256 best) =
            _judge(round, consensus, r.deltaCount, p.tolerance);
        if (acceptedCount < p.minAccepted) {
            _fail(round, r);
            return;
        }
        r.acceptedDeltaMask = uint16(acceptedMask);
        r.status = Status.Finalized;
        _complete(round, r, p, acceptedCount, best);
    }

    /// @notice Settles the caller's trainer seat once the round has ended: an accepted trainer gets its bond
    ///         unlocked and its share of the slashes and emission; in a failed round a trainer who revealed
    ///         gets its bond unlocked. (Outliers and silent trainers were settled by `finalize`.)
    /// @param round A finalized or failed round.
    function claimTrainer(uint256 round) external {
        Round storage r = _rounds[round];
        Status status = r.status;
        uint256 slotPlusOne = _trainerSlotOf[round][msg.sender];
        if (slotPlusOne == 0) revert NotTrainer();
        uint256 bit = uint256(1) << (slotPlusOne - 1);
        if (r.paidTrainerMask & bit != 0) revert AlreadySettled();
        uint256 deltaPlusOne = _trainers[round][slotPlusOne - 1].deltaPlusOne;
        bool accepted = status == Status.Finalized && deltaPlusOne != 0
            && r.acceptedDeltaMask & (uint256(1) << (deltaPlusOne - 1)) != 0;
        bool released = status == Status.Failed && deltaPlusOne != 0;
        if (!accepted && !released) revert NothingToClaim();
        r.paidTrainerMask = uint16(r.paidTrainerMask | bit);
        uint256 reward = accepted ? r.rewardPerTrainer : 0;
        emit TrainerSettled(round, msg.sender, reward);
        registry.unlock(msg.sender, IStakeRegistry.Role.TRAINER, _params.trainerBond);
        if (reward != 0) token.safeTransfer(msg.sender, reward);
    }

    /// @notice Settles an evaluator seat of an ended round: pays a coherent evaluator its share, or takes the
    ///         penalty of an incoherent or silent one. Anyone can call it; rewards go to the seat's evaluator.
    /// @param round A finalized or failed round.
    /// @param seat Seat index in [0, panel size).
    function claimEvaluator(uint256 round, uint256 seat) external {
        Round storage r = _rounds[round];
        if (r.status != Status.Finalized && r.status != Status.Failed) revert WrongStatus(r.status);
        if (seat >= r.panelSize) revert InvalidSeat(seat);
        uint256 mask = uint256(1) << seat;
        if (r.evalSettledMask & mask != 0) revert AlreadySettled();
        r.evalSettledMask = uint16(r.evalSettledMask | mask);
        Seat memory info = _seats[round][seat];
        uint256 reward = 0;
        uint256 penaltyBps = 0;
        if (r.evalRevealedMask & mask == 0) {
            penaltyBps = _params.noRevealPenaltyBps;
        } else if (r.status == Status.Finalized) {
            if (r.evalCoherentMask & mask != 0) {
                reward = uint256(r.evaluatorPayout) * info.weight / r.coherentEvaluatorWeight;
            } else {
                penaltyBps = _params.incoherentPenaltyBps;
            }
        }
        uint256 penalty = _closeSeat(info.evaluator, penaltyBps);
        emit EvaluatorSettled(round, info.evaluator, reward, penalty);
        if (reward != 0) token.safeTransfer(info.evaluator, reward);
    }

    // ------------------------------------------------------------------ governance

    /// @notice Replaces the parameters (they apply to rounds opened afterwards and to pending windows).
    /// @param params_ New parameters.
    function setParams(Params calldata params_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setParams(params_);
    }

    /// @notice Sets the address receiving unassigned slashes and penalties.
    /// @param treasury_ The new treasury.
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (treasury_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
    }

    // ------------------------------------------------------------------ views

    /// @notice The commitment a trainer submits for `deltaCid` and `salt`.
    function deltaCommitmentFor(bytes calldata deltaCid, bytes32 salt, address trainer) public pure returns (bytes32) {
        return keccak256(abi.encode(deltaCid, salt, trainer));
    }

    /// @notice The commitment an evaluator submits for `fingerprints` and `salt`.
    function fingerprintCommitmentFor(int32[K][] calldata fingerprints, bytes32 salt, address evaluator)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(fingerprints, salt, evaluator));
    }

    /// @notice The current parameters.
    function getParams() external view returns (Params memory) {
        return _params;
    }

    /// @notice The stored state of `round`.
    function getRound(uint256 round) external view returns (Round memory) {
        return _rounds[round];
    }

    /// @notice The datasets `round` trains on.
    function datasetsOf(uint256 round) external view returns (uint256[] memory) {
        return _datasets[round];
    }

    /// @notice The revealed deltas of `round`, in delta order: their trainers and CIDs.
    function deltasOf(uint256 round) external view returns (address[] memory trainers, bytes[] memory cids) {
        uint256 count = _rounds[round].deltaCount;
        trainers = new address[](count);
        cids = new bytes[](count);
        for (uint256 delta = 0; delta < count; ++delta) {
            trainers[delta] = _trainerOfDelta(round, delta);
            cids[delta] = _deltaCids[round][delta];
        }
    }

    /// @notice The evaluator panel of `round`, in seat order, with the weights drawn.
    function panelOf(uint256 round) external view returns (address[] memory evaluators, uint256[] memory weights) {
        uint256 size = _rounds[round].panelSize;
        evaluators = new address[](size);
        weights = new uint256[](size);
        for (uint256 seat = 0; seat < size; ++seat) {
            Seat memory info = _seats[round][seat];
            (evaluators[seat], weights[seat]) = (info.evaluator, info.weight);
        }
    }

    /// @notice The seat of `evaluator` on the panel of `round`, and whether it has one.
    function seatOf(uint256 round, address evaluator) external view returns (uint256 seat, bool onPanel) {
        uint256 seatPlusOne = _seatOf[round][evaluator];
        return (seatPlusOne == 0 ? 0 : seatPlusOne - 1, seatPlusOne != 0);
    }

    /// @notice The fingerprint an evaluator revealed for a delta.
    function fingerprintOf(uint256 round, uint256 seat, uint256 delta) external view returns (int32[K] memory fp) {
        bytes memory data = CodeStore.read(_fingerprints[round][seat]);
        if (data.length < (delta + 1) * FINGERPRINT_BYTES) return fp;
        for (uint256 k = 0; k < K; ++k) {
            uint256 value;
            assembly ("memory-safe") {
                value := shr(224, mload(add(add(data, 0x20), add(mul(delta, 64), mul(k, 4)))))
            }
            fp[k] = int32(int256(value) - int256(OFFSET));
        }
    }

    // ------------------------------------------------------------------ internal

    function _minPoolBond() internal view override returns (uint256) {
        return _params.minPoolBond;
    }

    function _penaltyBeneficiary() internal view override returns (address) {
        return treasury;
    }

    function _seatIndex(uint256 round, address evaluator) private view returns (uint256) {
        uint256 seatPlusOne = _seatOf[round][evaluator];
        if (seatPlusOne == 0) revert NotOnPanel();
        return seatPlusOne - 1;
    }

    /// @dev Per delta and coordinate, the lower stake-weighted median over the revealed evaluators; then each
    ///      evaluator is coherent iff, for every delta, its fingerprint is within `evaluatorTolerance` (L1).
    ///      Hundreds of medians run here, so coordinates are unpacked once into flat memory arrays indexed
    ///      `(evaluator * deltas + delta) * K + k` and the hot loops read them in assembly.
    /// @return consensus Flat `[delta * K + k]` array of the consensus fingerprints (offset uint32 values).
    function _aggregate(uint256 round, uint256 deltas, uint256 panelSize, uint256 revealedMask, uint256 evaluatorTolerance)
        private
        view
        returns (uint256[] memory consensus, uint256 coherentMask, uint256 coherentWeight)
    {
        (uint256[] memory seats, uint256[] memory weights) = _revealedSeats(round, panelSize, revealedMask);
        uint256[] memory coordinates = _unpackFingerprints(round, seats, deltas);
        consensus = _consensus(coordinates, weights, deltas * K);
        for (uint256 e = 0; e < seats.length; ++e) {
            if (_maxDistance(coordinates, e * deltas * K, consensus, deltas) <= evaluatorTolerance) {
                coherentMask |= uint256(1) << seats[e];
                coherentWeight += weights[e];
            }
        }
    }

    /// @dev The seats that revealed, and their weights.
    function _revealedSeats(uint256 round, uint256 panelSize, uint256 revealedMask)
        private
        view
        returns (uint256[] memory seats, uint256[] memory weights)
    {
        seats = new uint256[](panelSize);
        weights = new uint256[](panelSize);
        uint256 count = 0;
        for (uint256 seat = 0; seat < panelSize; ++seat) {
            if (revealedMask & (uint256(1) << seat) == 0) continue;
            seats[count] = seat;
            weights[count] = _seats[round][seat].weight;
            ++count;
        }
        assembly ("memory-safe") {
            mstore(seats, count)
            mstore(weights, count)
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

    /// @dev Reads every revealed fingerprint once into `[(e * deltas + d) * K + k]`.
    function _unpackFingerprints(uint256 round, uint256[] memory seats, uint256 deltas)
        private
        view
        returns (uint256[] memory coordinates)
    {
        uint256 perEvaluator = deltas * K;
        coordinates = new uint256[](seats.length * perEvaluator);
        for (uint256 e = 0; e < seats.length; ++e) {
            bytes memory data = CodeStore.read(_fingerprints[round][seats[e]]);
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

    /// @dev The largest, over deltas, L1 distance between one evaluator's fingerprints (starting at `start`
    ///      in `coordinates`) and the consensus.
    function _maxDistance(uint256[] memory coordinates, uint256 start, uint256[] memory consensus, uint256 deltas)
        private
        pure
        returns (uint256 largest)
    {
        assembly ("memory-safe") {
            let mine := add(add(coordinates, 0x20), mul(start, 0x20))
            let agreed := add(consensus, 0x20)
            for { let delta := 0 } lt(delta, deltas) { delta := add(delta, 1) } {
                let distance := 0
                for { let k := 0 } lt(k, 16) { k := add(k, 1) } {
                    let offset := mul(add(mul(delta, 16), k), 0x20)
                    let a := mload(add(mine, offset))
                    let b := mload(add(agreed, offset))
                    switch gt(a, b)
                    case 1 { distance := add(distance, sub(a, b)) }
                    default { distance := add(distance, sub(b, a)) }
                }
                if gt(distance, largest) { largest := distance }
            }
        }
    }

    /// @dev The reference is the coordinate-wise median over deltas; a delta is accepted iff its L1 distance
    ///      to the reference is within `tolerance`. `best` is the accepted delta closest to the reference
    ///      (the earliest revealed on a tie).
    function _judge(uint256 round, uint256[] memory consensus, uint256 deltas, uint256 tolerance)
        private
        returns (uint256 acceptedMask, uint256 acceptedCount, uint256 best)
    {
        uint256[] memory reference_ = _reference(consensus, deltas);
        uint256 bestDistance = type(uint256).max;
        for (uint256 delta = 0; delta < deltas; ++delta) {
            uint256 distance = _maxDistance(consensus, delta * K, reference_, 1);
            bool accepted = distance <= tolerance;
            if (accepted) {
                acceptedMask |= uint256(1) << delta;
                ++acceptedCount;
                if (distance < bestDistance) (bestDistance, best) = (distance, delta);
            }
            emit DeltaJudged(round, delta, distance, accepted);
        }
    }

    /// @dev Coordinate-wise (lower) median over the deltas' consensus fingerprints.
    function _reference(uint256[] memory consensus, uint256 deltas) private pure returns (uint256[] memory reference_) {
        reference_ = new uint256[](K);
        uint256[] memory column = new uint256[](deltas);
        uint256[] memory ones = new uint256[](deltas);
        for (uint256 delta = 0; delta < deltas; ++delta) {
            ones[delta] = 1;
        }
        for (uint256 k = 0; k < K; ++k) {
            for (uint256 delta = 0; delta < deltas; ++delta) {
                column[delta] = consensus[delta * K + k];
            }
            reference_[k] = WeightedMedian.lowerMedian(column, ones, deltas);
        }
    }

    function _trainerOfDelta(uint256 round, uint256 delta) private view returns (address) {
        return _trainers[round][_deltaSlot[round][delta]].trainer;
    }

    /// @dev Outliers and silent trainers lose `outlierSlashBps` of their bond to this contract, for the
    ///      accepted ones, and get the rest unlocked. Accepted bonds stay locked until `claimTrainer`.
    function _settleTrainers(uint256 round, uint256 trainers, uint256 acceptedMask, Params memory p) private {
        uint256 bond = p.trainerBond;
        uint256 penalty = bond * p.outlierSlashBps / BPS;
        for (uint256 slot = 0; slot < trainers; ++slot) {
            TrainerSlot memory trainer = _trainers[round][slot];
            if (trainer.deltaPlusOne != 0 && acceptedMask & (uint256(1) << (trainer.deltaPlusOne - 1)) != 0) continue;
            _releaseTrainer(trainer.trainer, bond, penalty, address(this));
        }
    }

    /// @dev Fixes the payouts, then settles outlier bonds, draws the round's emission and registers the best
    ///      accepted delta as the next model version (state first, external calls last).
    function _complete(uint256 round, Round storage r, Params memory p, uint256 acceptedCount, uint256 best) private {
        (uint256 emitted, uint256 rewardPerTrainer) = _fixPayouts(r, p, acceptedCount);
        uint256 newVersion = modelRegistry.latestVersion() + 1;
        r.newVersion = uint64(newVersion);
        emit RoundFinalized(round, Status.Finalized, r.acceptedDeltaMask, newVersion, rewardPerTrainer);

        _settleTrainers(round, r.trainerCount, r.acceptedDeltaMask, p);
        if (emitted != 0) emission.draw(address(this), emitted);
        uint256 registered = modelRegistry.registerVersion(r.baseVersion, round, _deltaCids[round][best], emitted);
        assert(registered == newVersion); // one round at a time: nothing else registers in between
    }

    /// @dev The round's emission (capped by what Emission has left), the coherent evaluators' share of it,
    ///      and each accepted trainer's share of the rest plus the outliers' slashed bonds.
    function _fixPayouts(Round storage r, Params memory p, uint256 acceptedCount)
        private
        returns (uint256 emitted, uint256 rewardPerTrainer)
    {
        // Exactly what `_settleTrainers` slashes: the rounded per-trainer penalty, once per rejected trainer.
        // slither-disable-next-line divide-before-multiply
        uint256 slashed = (r.trainerCount - acceptedCount) * (uint256(p.trainerBond) * p.outlierSlashBps / BPS);
        emitted = p.roundReward;
        uint256 available = emission.available();
        if (emitted > available) emitted = available;
        uint256 evaluatorPayout = r.coherentEvaluatorWeight != 0 ? emitted * p.evaluatorShareBps / BPS : 0;
        rewardPerTrainer = (slashed + emitted - evaluatorPayout) / acceptedCount;
        r.evaluatorPayout = uint96(evaluatorPayout);
        r.rewardPerTrainer = uint96(rewardPerTrainer);
    }

    /// @dev A failed round: silent trainers lose their share (to the treasury, since no trainer is
    ///      rewarded) and the rest of their bond; trainers who revealed reclaim theirs with `claimTrainer`.
    function _fail(uint256 round, Round storage r) private {
        r.status = Status.Failed;
        uint256 bond = _params.trainerBond;
        uint256 penalty = bond * _params.outlierSlashBps / BPS;
        address beneficiary = treasury;
        uint256 trainers = r.trainerCount;
        for (uint256 slot = 0; slot < trainers; ++slot) {
            TrainerSlot memory trainer = _trainers[round][slot];
            if (trainer.deltaPlusOne == 0) _releaseTrainer(trainer.trainer, bond, penalty, beneficiary);
        }
        emit RoundFinalized(round, Status.Failed, 0, 0, 0);
    }

    function _releaseTrainer(address trainer, uint256 bond, uint256 penalty, address beneficiary) private {
        if (bond > penalty) registry.unlock(trainer, IStakeRegistry.Role.TRAINER, bond - penalty);
        if (penalty != 0) registry.slash(trainer, IStakeRegistry.Role.TRAINER, penalty, beneficiary);
    }

    function _setParams(Params memory p) private {
        if (
            p.trainCommitWindow == 0 || p.trainRevealWindow == 0 || p.evalCommitWindow == 0
                || p.evalRevealWindow == 0 || p.seedDelay == 0 || p.minBatch == 0 || p.minBatch > p.maxBatch
                || p.maxBatch > MAX_BATCH || p.minAccepted == 0 || p.minAccepted > MAX_TRAINERS
                || p.outlierSlashBps > BPS || p.evaluatorShareBps > BPS || p.incoherentPenaltyBps > BPS
                || p.noRevealPenaltyBps > BPS || p.minPoolBond == 0
        ) revert InvalidParams();
        _params = p;
    }

    /// @dev The fingerprints as stored: per delta, K uint32 (int32 + 2^31), big-endian.
    function _encode(int32[K][] calldata fingerprints) private pure returns (bytes memory data) {
        data = new bytes(fingerprints.length * FINGERPRINT_BYTES);
        for (uint256 delta = 0; delta < fingerprints.length; ++delta) {
            for (uint256 k = 0; k < K; ++k) {
                uint256 value = uint256(int256(fingerprints[delta][k]) + int256(OFFSET));
                uint256 at = delta * FINGERPRINT_BYTES + 4 * k;
                assembly ("memory-safe") {
                    mstore8(add(add(data, 0x20), at), shr(24, value))
                    mstore8(add(add(data, 0x21), at), shr(16, value))
                    mstore8(add(add(data, 0x22), at), shr(8, value))
                    mstore8(add(add(data, 0x23), at), value)
                }
            }
        }
    }

}
