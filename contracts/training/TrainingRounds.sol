// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IDataConsensus} from "../interfaces/IDataConsensus.sol";
import {IEmission} from "../interfaces/IEmission.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";
import {IStakeRegistry} from "../interfaces/IStakeRegistry.sol";
import {ITrainingRounds} from "../interfaces/ITrainingRounds.sol";
import {FINGERPRINT_LENGTH, FingerprintAggregation} from "../libraries/FingerprintAggregation.sol";
import {TrainerBonds} from "../libraries/TrainerBonds.sol";
import {SortitionPanel} from "../panel/SortitionPanel.sol";

/// @title TrainingRounds
/// @notice Turns accepted data into new model versions without trusting any single trainer. Anyone opens a round on a
///         batch of accepted datasets; up to 16 trainers fine-tune the current version under the round's TrainingSpec
///         and seed, commit `keccak(deltaCid, salt, trainer)` with a bond of their choice (at least the round's
///         `trainerBond`), then reveal. A panel of 15 stake-weighted draws with replacement (one draw = one vote)
///         commits, then reveals, one probability-curvature fingerprint of K = 16 integers per revealed delta. Per
///         delta the coordinate-wise median over evaluators weighted by their draws is its fingerprint; the
///         coordinate-wise median over deltas weighted by their trainers' bonds is the reference; a delta within
///         `tolerance` (L1) of the reference is accepted when the deltas within it hold more than half of the revealed
///         bond (exactly half cannot set the reference). Outliers and silent trainers lose a share of their bond;
///         accepted trainers split that plus the round's emission in proportion to their bonds; the accepted delta
///         closest to the reference becomes the next version. A slot weighs its bond, not its address: 3 addresses
///         bonding B each earn and weigh exactly what 1 address bonding 3B does (Sybil: extra addresses are worth
///         nothing; one party counts for its capital).
/// @dev One round runs at a time, so versions form a chain. The evaluator panel (seats, draw, windows, commit-reveal,
///      per-seat settlement) is SortitionPanel's, over EVALUATOR stake; a reveal's record is a CodeStore pointer to the
///      fingerprints, and the judgement is the linked FingerprintAggregation library's. Trainer slots and their bonds
///      are the linked TrainerBonds library's (bytecode room); outliers' and silent trainers' bonds are settled in
///      `finalize` (at most 16) and rewards pulled. A round keeps the minimum trainer bond and the outlier slash in
///      force when it opened (as its panel keeps its penalty rates), so a governance change never resizes a bond
///      already locked. Every loop is bounded by MAX_TRAINERS, MAX_EVALUATORS, K or MAX_BATCH.
contract TrainingRounds is ITrainingRounds, SortitionPanel {
    using SafeERC20 for IERC20;

    /// @notice Most trainers (committed deltas) per round.
    uint256 public constant MAX_TRAINERS = TrainerBonds.MAX_SLOTS;
    /// @notice Votes on a round's panel: stake-weighted draws with replacement, one vote each (also its most
    ///         evaluators). A cartel holding 30% of the pool holds at least half of a panel's votes with the
    ///         binomial tail probability P(Bin(15, 0.3) >= 8) = 5% (9 votes: 9.9%). The 1% target needs 31 (0.95%,
    ///         as curators have), but `finalize` judges every seat's 16 x 16 fingerprint cells: with 31 seats on 16
    ///         deltas it measured 11.4M gas, 95% of a 12M block, so 15 until the judgement is split or cheaper.
    uint256 public constant MAX_EVALUATORS = 15;
    /// @notice Bound on sortition tickets per panel (the panel excludes nobody, so 15 are drawn).
    uint256 public constant MAX_DRAWS = 4 * MAX_EVALUATORS;
    /// @notice Coordinates per fingerprint.
    uint256 public constant K = FINGERPRINT_LENGTH;
    /// @notice Most datasets a round trains on.
    uint256 public constant MAX_BATCH = 32;
    /// @notice Longest delta CID, in bytes.
    uint256 public constant MAX_CID_LENGTH = 64;

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
        uint16 outlierSlashBps; // share of its own bond an outlier or silent trainer loses
        uint16 evaluatorShareBps; // share of the round's emission paid to coherent evaluators
        uint16 incoherentPenaltyBps; // share of the pool bond an incoherent evaluator loses
        uint16 noRevealPenaltyBps; // share of the pool bond a silent evaluator loses
        uint96 trainerBond; // least TRAINER stake (wei) a committed delta locks
        uint96 minPoolBond; // smallest evaluator pool bond
        uint96 roundReward; // emission drawn for a successful round
    }

    /// @notice A round as `getRound` returns it: the record below and its evaluator panel (SortitionPanel).
    struct Round {
        uint64 baseVersion;
        uint40 trainCommitDeadline;
        uint40 trainRevealDeadline;
        uint40 evalCommitDeadline;
        uint40 evalRevealDeadline;
        uint8 trainerCount;
        uint8 deltaCount;
        uint8 status; // a Status, as its uint8 (no enum range check on the way out: bytecode room)
        bytes32 specHash;
        bytes32 seed;
        uint40 panelSeedBlock;
        uint8 panelSize;
        uint32 evalRevealedMask; // bit s: evaluator seat s
        uint32 evalSettledMask;
        uint32 evalCoherentMask;
        uint16 acceptedDeltaMask;
        uint16 paidTrainerMask;
        uint64 newVersion;
        uint96 trainerRewardPool; // wei the accepted trainers share in proportion to their bonds
        uint96 evaluatorPayout;
        uint96 coherentEvaluatorWeight;
        uint96 trainerBond; // least bond (wei) per committed delta, fixed when the round opened
        uint16 outlierSlashBps; // share of its own bond an outlier or silent trainer loses, fixed at opening
        uint96 acceptedBond; // wei: the accepted deltas' summed bond
    }

    /// @dev What a round keeps besides its panel, in four slots: trainers' commits, reveals and claims touch
    ///      slot 0 only (and the panel's first slot, which holds the status).
    struct RoundRecord {
        // slot 0
        uint40 trainCommitDeadline;
        uint40 trainRevealDeadline;
        uint8 trainerCount;
        uint8 deltaCount;
        uint16 acceptedDeltaMask;
        uint16 paidTrainerMask;
        uint96 trainerRewardPool;
        uint32 baseVersion; // a version per round: 2^32 rounds outlast any chain
        // slot 1
        bytes32 specHash;
        // slot 2
        bytes32 seed;
        // slot 3: the trainers' terms, fixed at `openRound`, and the outcome
        uint32 newVersion;
        uint96 trainerBond;
        uint16 outlierSlashBps;
        uint96 acceptedBond;
    }

    /// @notice DataConsensus, whose accepted datasets rounds train on.
    IDataConsensus public immutable dataConsensus;
    /// @notice ModelRegistry, where a successful round registers the next version.
    IModelRegistry public immutable modelRegistry;
    /// @notice The Emission contract a successful round's reward is drawn from.
    IEmission public immutable emission;

    /// @notice Rounds opened so far (the last id).
    uint256 public roundCount;
    Params private _params;

    mapping(uint256 round => RoundRecord) private _rounds;
    mapping(uint256 round => uint256[]) private _datasets;
    mapping(uint256 round => mapping(uint256 slot => TrainerBonds.Slot)) private _trainers;
    mapping(uint256 round => mapping(address trainer => uint256 slotPlusOne)) private _trainerSlotOf;
    mapping(uint256 round => mapping(uint256 slot => bytes32)) private _deltaCommitments;
    mapping(uint256 round => mapping(uint256 delta => uint256 slot)) private _deltaSlot;
    mapping(uint256 round => mapping(uint256 delta => bytes)) private _deltaCids;

    error InvalidCid();
    error RoundActive(uint256 round);
    error BatchSize(uint256 size);
    /// @notice A commit's bond below the round's minimum `trainerBond`.
    error BondTooSmall(uint256 bond, uint256 minimum);
    error NotTrainer();
    error WrongFingerprintCount(uint256 given, uint256 expected);

    /// @notice Deploys the module; wire its roles on the registry, Emission, DataConsensus and ModelRegistry next.
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
    ) SortitionPanel(registry_, IStakeRegistry.Role.EVALUATOR, token_, admin, treasury_, MAX_EVALUATORS, MAX_DRAWS) {
        if (
            address(emission_) == address(0) || address(dataConsensus_) == address(0)
                || address(modelRegistry_) == address(0)
        ) revert ZeroAddress();
        emission = emission_;
        dataConsensus = dataConsensus_;
        modelRegistry = modelRegistry_;
        _params = params_;
        _checkParams();
    }

    // ------------------------------------------------------------------ opening

    /// @notice Opens a round on `datasetIds` (accepted, not yet trained on) over the newest model version.
    ///         Anyone can call it once the previous round has ended. The round keeps the current minimum trainer
    ///         bond and outlier slash, and its panel the current penalty rates, until it ends.
    /// @param datasetIds Accepted DataConsensus submissions, between `minBatch` and `maxBatch` of them.
    /// @param specHash Hash of the canonical TrainingSpec every trainer must follow.
    /// @return round The new round's id.
    function openRound(uint256[] calldata datasetIds, bytes32 specHash) external returns (uint256 round) {
        Params storage p = _params;
        uint256 previous = roundCount;
        if (previous != 0) {
            uint8 previousStatus = _panel(previous).status;
            if (previousStatus != uint8(Status.Finalized) && previousStatus != uint8(Status.Failed)) {
                revert RoundActive(previous);
            }
        }
        if (datasetIds.length < p.minBatch || datasetIds.length > p.maxBatch) revert BatchSize(datasetIds.length);
        round = previous + 1;
        roundCount = round;
        RoundRecord storage r = _rounds[round];
        uint256 baseVersion = _latestVersion();
        // The seed fixes LoRA init, data order and probes for every trainer alike; whoever opens the round
        // can only pick the block, and gains nothing from it since all trainers share the seed.
        bytes32 seed = keccak256(abi.encode(block.prevrandao, round, address(this)));
        uint256 commitDeadline = block.number + p.trainCommitWindow;
        uint256 revealDeadline = commitDeadline + p.trainRevealWindow;
        r.baseVersion = SafeCast.toUint32(baseVersion);
        r.trainCommitDeadline = uint40(commitDeadline);
        r.trainRevealDeadline = uint40(revealDeadline);
        // The panel's seed block comes after the trainers' reveals: nobody who knows the deltas picks it.
        _openPanel(round, revealDeadline + p.seedDelay, uint8(Status.Training));
        r.specHash = specHash;
        r.seed = seed;
        r.trainerBond = p.trainerBond;
        r.outlierSlashBps = p.outlierSlashBps;
        _datasets[round] = datasetIds;
        emit RoundOpened(round, baseVersion, datasetIds, specHash, seed, commitDeadline, revealDeadline);
        dataConsensus.consumeDatasets(datasetIds);
    }

    // ------------------------------------------------------------------ trainers

    /// @notice Commits a delta: `keccak256(abi.encode(bytes deltaCid, bytes32 salt, address trainer))`, within
    ///         the trainers' commit window. Locks `bond` of the caller's TRAINER stake until the round ends. The
    ///         slot weighs its bond: in the judgement (the reference is the bond-weighted median of the deltas),
    ///         in the reward (pro rata to the bond) and in the loss (`outlierSlashBps` of it), so that splitting
    ///         a bond over addresses gains nothing. Once all MAX_TRAINERS slots are taken, a bond strictly above
    ///         the smallest committed one takes that slot (lowest index on ties; DeltaDisplaced: the displaced
    ///         bond is unlocked in full and its trainer may commit again), so keeping honest trainers out takes
    ///         more bonded capital than theirs; a bond not above it reverts `RoundFull`.
    /// @dev The window is the phase check: it closes before the panel's seed block, so before any later phase
    ///      (nothing revealed is ever displaced). The slot bookkeeping is TrainerBonds.commit's.
    /// @param round The round.
    /// @param commitment The commitment.
    /// @param bond Wei to lock: at least the round's `trainerBond` (`BondTooSmall`), below 2^88 (SafeCast).
    function commitDelta(uint256 round, bytes32 commitment, uint256 bond) external {
        RoundRecord storage r = _rounds[round];
        if (block.number > r.trainCommitDeadline) revert WindowClosed();
        if (commitment == bytes32(0)) revert EmptyCommitment();
        if (bond < r.trainerBond) revert BondTooSmall(bond, r.trainerBond);
        uint256 trainers = r.trainerCount;
        if (trainers < MAX_TRAINERS) r.trainerCount = uint8(trainers + 1); // else a commit displaces or reverts
        TrainerBonds.commit(
            _trainers[round], _trainerSlotOf[round], _deltaCommitments[round], round, trainers, commitment, bond, registry
        );
    }

    /// @notice Reveals the committed delta's CID, after the commit window and before the reveal deadline.
    /// @param round The round.
    /// @param deltaCid Binary CID of the LoRA delta (safetensors) the trainer pinned.
    /// @param salt The committed salt.
    function revealDelta(uint256 round, bytes calldata deltaCid, bytes32 salt) external {
        RoundRecord storage r = _rounds[round];
        if (block.number <= r.trainCommitDeadline) revert WindowNotOpen();
        if (block.number > r.trainRevealDeadline) revert WindowClosed();
        uint256 slotPlusOne = _trainerSlotOf[round][msg.sender];
        if (slotPlusOne == 0) revert NotTrainer();
        TrainerBonds.Slot storage trainer = _trainers[round][slotPlusOne - 1];
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

    /// @notice Draws the evaluator panel once the panel's seed block is mined (anyone can call), until the seed
    ///         block is 256 blocks old. A round with too few revealed deltas to ever succeed fails here instead,
    ///         and its trainers who revealed reclaim their bonds. Past blockhash's horizon nothing can be drawn:
    ///         the round fails settling every trainer as a silent one (each loses `outlierSlashBps` of its own
    ///         bond to the treasury and gets the rest unlocked here; nobody has anything left to claim).
    /// @dev The seed is the hash of a block after the trainers' reveal deadline, so nobody who knows the
    ///      deltas chooses the panel; but anyone can compute it once that block is mined. A fresh seed for an
    ///      undrawn panel would let trainers with colluding evaluators skip the panels they dislike by waiting
    ///      256 blocks, and failing with the bonds back would let a poisoning cartel keep the bonds an honest
    ///      panel takes and try again next round: a skipped panel costs every trainer what silence costs.
    ///      Honest trainers never pay it: the round keeper and every trainer's worker draw at the first block
    ///      they can (workers.rounds.steps). Reference: workers.protocol.rounds.draw_outcome.
    /// @param round The round.
    function drawEvaluators(uint256 round) external {
        _requireStatus(round, uint8(Status.Training));
        _requireSeedMined(round);
        RoundRecord storage r = _rounds[round];
        uint256 kept = (uint256(1) << r.deltaCount) - 1;
        if (r.deltaCount >= _params.minAccepted) {
            if (!_seedExpired(round)) {
                _draw(round, address(0));
                _panel(round).status = uint8(Status.Evaluating);
                return;
            }
            // Every slot is settled here: `claimTrainer` must not unlock again what expiry released.
            r.paidTrainerMask = type(uint16).max;
            kept = 0;
        }
        _fail(round, r, kept);
    }

    /// @notice Commits the fingerprints: `fingerprintCommitmentFor(fingerprints, salt, evaluator)`, within the
    ///         evaluators' commit window.
    /// @param round The round.
    /// @param commitment The commitment.
    function commitFingerprints(uint256 round, bytes32 commitment) external {
        _commit(round, commitment);
    }

    /// @notice Reveals one fingerprint of K int32 per revealed delta, in delta order.
    /// @param round The round.
    /// @param fingerprints `deltaCount` fingerprints.
    /// @param salt The committed salt.
    function revealFingerprints(uint256 round, int32[K][] calldata fingerprints, bytes32 salt) external {
        uint256 deltas = _rounds[round].deltaCount;
        if (fingerprints.length != deltas) revert WrongFingerprintCount(fingerprints.length, deltas);
        bytes32 commitment = fingerprintCommitmentFor(fingerprints, salt, msg.sender);
        // The record is the blob's address; if any check in `_reveal` fails, the blob goes with the revert.
        address blob = FingerprintAggregation.store(fingerprints);
        _reveal(round, commitment, bytes32(uint256(uint160(blob))));
    }

    // ------------------------------------------------------------------ outcome

    /// @notice Aggregates the revealed fingerprints and settles the round, once the evaluators' reveal
    ///         window has passed (or every seat revealed after the commit window).
    /// @param round The round.
    function finalize(uint256 round) external {
        _requireStatus(round, uint8(Status.Evaluating));
        _requireRevealsOver(round);
        RoundRecord storage r = _rounds[round];
        Panel storage panel = _panel(round);
        if (panel.revealedMask == 0) {
            _fail(round, r, (uint256(1) << r.deltaCount) - 1);
            return;
        }
        Params storage p = _params;
        FingerprintAggregation.Judgement memory judgement = _judge(round, r, p);
        panel.coherentMask = uint32(judgement.coherentMask);
        panel.coherentWeight = uint96(judgement.coherentWeight);
        if (judgement.acceptedCount < p.minAccepted) {
            _fail(round, r, (uint256(1) << r.deltaCount) - 1);
            return;
        }
        r.acceptedDeltaMask = uint16(judgement.acceptedMask);
        // Locked stake: part of a supply under the token's 96-bit cap.
        r.acceptedBond = uint96(judgement.acceptedBond);
        panel.status = uint8(Status.Finalized);
        _complete(round, r, p, judgement.best);
    }

    /// @notice Settles the caller's trainer seat once the round has ended: an accepted trainer gets its bond unlocked
    ///         and its bond's share of the round's `trainerRewardPool` (`pool * bond / acceptedBond`, wei, rounded
    ///         down); in a failed round a trainer who revealed gets its bond unlocked. (Outliers and silent trainers
    ///         were settled by `finalize`, and every trainer of a round whose panel expired undrawn by
    ///         `drawEvaluators`: AlreadySettled.)
    /// @param round A finalized or failed round.
    function claimTrainer(uint256 round) external {
        RoundRecord storage r = _rounds[round];
        uint8 status = _panel(round).status;
        uint256 slotPlusOne = _trainerSlotOf[round][msg.sender];
        if (slotPlusOne == 0) revert NotTrainer();
        uint256 bit = uint256(1) << (slotPlusOne - 1);
        if (r.paidTrainerMask & bit != 0) revert AlreadySettled();
        r.paidTrainerMask = uint16(r.paidTrainerMask | bit);
        TrainerBonds.claim(
            _trainers[round][slotPlusOne - 1],
            round,
            status,
            r.acceptedDeltaMask,
            r.trainerRewardPool,
            r.acceptedBond,
            registry,
            token
        );
    }

    /// @notice Settles an evaluator seat of an ended round: pays a coherent evaluator its share, or takes the
    ///         penalty of an incoherent or silent one. Anyone can call it; rewards go to the seat's evaluator.
    /// @param round A finalized or failed round.
    /// @param seat Seat index in [0, panel size).
    function claimEvaluator(uint256 round, uint256 seat) external {
        _settle(round, seat);
    }

    // ------------------------------------------------------------------ governance

    /// @notice Replaces the parameters. The minimum trainer bond, the outlier slash and the penalty rates apply to
    ///         rounds opened afterwards; the rest also to rounds under way (pending windows, the next `finalize`).
    /// @param params_ New parameters.
    function setParams(Params calldata params_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _params = params_;
        _checkParams();
    }

    // ------------------------------------------------------------------ views

    /// @notice The commitment a trainer submits for `deltaCid` and `salt`.
    /// @param deltaCid Binary CID of the delta.
    /// @param salt A secret random salt.
    /// @param trainer The trainer, bound into the commitment so nobody can copy it.
    /// @return The commitment.
    function deltaCommitmentFor(bytes calldata deltaCid, bytes32 salt, address trainer) public pure returns (bytes32) {
        return keccak256(abi.encode(deltaCid, salt, trainer));
    }

    /// @notice The commitment an evaluator submits for `fingerprints` and `salt`.
    /// @param fingerprints One fingerprint per revealed delta, in delta order.
    /// @param salt A secret random salt.
    /// @param evaluator The evaluator, bound into the commitment so nobody can copy it.
    /// @return The commitment.
    function fingerprintCommitmentFor(int32[K][] calldata fingerprints, bytes32 salt, address evaluator)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(fingerprints, salt, evaluator));
    }

    /// @notice The current parameters.
    /// @return The parameters.
    function getParams() external view returns (Params memory) {
        return _params;
    }

    /// @notice The state of `round`.
    /// @param round The round.
    /// @return Its record and evaluator panel, as one struct.
    function getRound(uint256 round) external view returns (Round memory) {
        Panel storage panel = _panel(round);
        RoundRecord storage r = _rounds[round];
        // The evaluator panel's fields, then the round's own.
        return Round({
            status: panel.status,
            panelSeedBlock: panel.seedBlock,
            evalCommitDeadline: panel.commitDeadline,
            evalRevealDeadline: panel.revealDeadline,
            panelSize: panel.size,
            evalRevealedMask: panel.revealedMask,
            evalSettledMask: panel.settledMask,
            evalCoherentMask: panel.coherentMask,
            coherentEvaluatorWeight: panel.coherentWeight,
            evaluatorPayout: panel.payout,
            baseVersion: r.baseVersion,
            trainCommitDeadline: r.trainCommitDeadline,
            trainRevealDeadline: r.trainRevealDeadline,
            trainerCount: r.trainerCount,
            deltaCount: r.deltaCount,
            specHash: r.specHash,
            seed: r.seed,
            acceptedDeltaMask: r.acceptedDeltaMask,
            paidTrainerMask: r.paidTrainerMask,
            newVersion: r.newVersion,
            trainerRewardPool: r.trainerRewardPool,
            trainerBond: r.trainerBond,
            outlierSlashBps: r.outlierSlashBps,
            acceptedBond: r.acceptedBond
        });
    }

    /// @notice The datasets `round` trains on.
    /// @param round The round.
    /// @return The DataConsensus submission ids.
    function datasetsOf(uint256 round) external view returns (uint256[] memory) {
        return _datasets[round];
    }

    /// @notice The revealed deltas of `round`, in delta order: their trainers, CIDs and bonds.
    /// @param round The round.
    /// @return trainers Each delta's trainer.
    /// @return cids Each delta's binary CID.
    /// @return bonds Each delta's trainer bond, in wei (its weight in the judgement and the reward).
    function deltasOf(uint256 round)
        external
        view
        returns (address[] memory trainers, bytes[] memory cids, uint256[] memory bonds)
    {
        uint256 count = _rounds[round].deltaCount;
        trainers = new address[](count);
        cids = new bytes[](count);
        bonds = new uint256[](count);
        for (uint256 delta = 0; delta < count; ++delta) {
            TrainerBonds.Slot storage trainer = _trainers[round][_deltaSlot[round][delta]];
            (trainers[delta], bonds[delta]) = (trainer.trainer, trainer.bond);
            cids[delta] = _deltaCids[round][delta];
        }
    }

    /// @notice The fingerprint an evaluator revealed for a delta.
    /// @param round The round.
    /// @param seat The evaluator's seat.
    /// @param delta The delta.
    /// @return fp The K coordinates; zeros when the seat has not revealed or `delta` is out of range.
    function fingerprintOf(uint256 round, uint256 seat, uint256 delta) external view returns (int32[K] memory fp) {
        bytes32 record = _revealedRecord(round, seat);
        if (record == bytes32(0)) return fp;
        return FingerprintAggregation.fingerprint(address(uint160(uint256(record))), delta);
    }

    // ------------------------------------------------------------------ internal

    function _minPoolBond() internal view override returns (uint256) {
        return _params.minPoolBond;
    }

    function _panelParams() internal view override returns (PanelParams memory) {
        Params storage p = _params;
        return PanelParams(p.evalCommitWindow, p.evalRevealWindow, p.noRevealPenaltyBps, p.incoherentPenaltyBps);
    }

    /// @dev A finalized round was judged; a failed one was not (its evaluators who revealed go free).
    function _judged(uint8 status) internal pure override returns (bool) {
        if (status == uint8(Status.Finalized)) return true;
        if (status != uint8(Status.Failed)) revert WrongStatus(status);
        return false;
    }

    /// @dev The linked library's judgement of the revealed fingerprints, the deltas weighing their bonds.
    function _judge(uint256 round, RoundRecord storage r, Params storage p)
        private
        returns (FingerprintAggregation.Judgement memory)
    {
        (uint256[] memory seats, uint256[] memory weights, uint256[] memory blobs) = _revealed(round);
        return FingerprintAggregation.judge(
            round,
            seats,
            blobs,
            weights,
            _trainers[round],
            r.trainerCount,
            r.deltaCount,
            p.evaluatorTolerance,
            p.tolerance
        );
    }

    /// @dev Releases the bond of every trainer whose delta is not in `keptMask` (silent trainers included), less
    ///      its penalty (its own bond times the round's `outlierSlashBps`) slashed to `beneficiary`. Kept trainers
    ///      settle with `claimTrainer`.
    function _releaseTrainers(uint256 round, RoundRecord storage r, uint256 keptMask, address beneficiary) private {
        TrainerBonds.release(_trainers[round], r.trainerCount, keptMask, r.outlierSlashBps, registry, beneficiary);
    }

    /// @dev Fixes the payouts, then settles outlier bonds, draws the round's emission and registers the best
    ///      accepted delta as the next model version (state first, external calls last).
    function _complete(uint256 round, RoundRecord storage r, Params storage p, uint256 best) private {
        (uint256 emitted, uint256 pool) = _fixPayouts(round, r, p);
        uint256 newVersion = _latestVersion() + 1;
        r.newVersion = uint32(newVersion); // the base version's successor; versions fit 32 bits (`openRound`)
        _emitFinalized(round, Status.Finalized, r.acceptedDeltaMask, newVersion, pool);

        // Outliers and silent trainers pay the accepted ones, through this contract.
        _releaseTrainers(round, r, r.acceptedDeltaMask, address(this));
        if (emitted != 0) emission.draw(address(this), emitted);
        uint256 registered = modelRegistry.registerVersion(r.baseVersion, round, _deltaCids[round][best], emitted);
        assert(registered == newVersion); // one round at a time: nothing else registers in between
    }

    /// @dev The round's emission (capped by what Emission has left), the coherent evaluators' share of it, and
    ///      the accepted trainers' pool: the rest plus the rejected trainers' penalties, shared pro rata to bond.
    function _fixPayouts(uint256 round, RoundRecord storage r, Params storage p)
        private
        returns (uint256 emitted, uint256 pool)
    {
        // Exactly what `_releaseTrainers` slashes: each rejected slot's penalty on its own bond.
        pool = TrainerBonds.penalties(_trainers[round], r.trainerCount, r.acceptedDeltaMask, r.outlierSlashBps);
        emitted = p.roundReward;
        uint256 available = emission.available();
        if (emitted > available) emitted = available;
        Panel storage panel = _panel(round);
        uint256 evaluatorPayout = panel.coherentWeight != 0 ? emitted * p.evaluatorShareBps / BPS : 0;
        pool += emitted - evaluatorPayout;
        panel.payout = uint96(evaluatorPayout);
        // Slashed stake plus newly minted tokens: part of a supply under the token's 96-bit cap.
        r.trainerRewardPool = uint96(pool);
    }

    // One call site each for what two places call (bytecode room).
    function _latestVersion() private view returns (uint256) {
        return modelRegistry.latestVersion();
    }

    function _emitFinalized(uint256 round, Status status, uint256 mask, uint256 version, uint256 reward) private {
        emit RoundFinalized(round, status, mask, version, reward);
    }

    /// @dev A failed round: trainers whose delta is not in `keptMask` (silent ones always; every trainer when
    ///      the panel expired undrawn) lose their penalty (to the treasury, since no trainer is rewarded)
    ///      and get the rest of their bond unlocked; kept ones reclaim theirs with `claimTrainer`.
    function _fail(uint256 round, RoundRecord storage r, uint256 keptMask) private {
        _panel(round).status = uint8(Status.Failed);
        _releaseTrainers(round, r, keptMask, treasury);
        _emitFinalized(round, Status.Failed, 0, 0, 0);
    }

    /// @dev Reverts unless the stored parameters are usable (called after storing them: a revert undoes it).
    function _checkParams() private view {
        Params storage p = _params;
        if (
            p.trainCommitWindow == 0 || p.trainRevealWindow == 0 || p.minBatch == 0 || p.minBatch > p.maxBatch
                || p.maxBatch > MAX_BATCH || p.minAccepted == 0 || p.minAccepted > MAX_TRAINERS
                || p.outlierSlashBps > BPS || p.evaluatorShareBps > BPS || p.trainerBond == 0
                || p.trainerBond > type(uint88).max
        ) revert InvalidParams();
        _checkPanelParams(p.seedDelay);
    }
}
