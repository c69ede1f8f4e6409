// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IDataConsensus} from "../interfaces/IDataConsensus.sol";
import {IEmission} from "../interfaces/IEmission.sol";
import {IStakeRegistry} from "../interfaces/IStakeRegistry.sol";
import {SortitionPool} from "../staking/SortitionPool.sol";
import {WeightedMedian} from "../libraries/WeightedMedian.sol";

/// @title DataConsensus
/// @notice Informants stake a bond to propose a dataset (a manifest pinned on IPFS). A panel of at most 15
///         curators, drawn by stake-weighted sortition from the hash of a block mined after the submission,
///         scores it on five criteria with commit-reveal votes. Per criterion the stake-weighted median is the
///         consensus; the weighted sum of the medians is the dataset's value, accepted iff it reaches a
///         threshold that follows a target acceptance rate. Accepted: bond back plus an Emission reward.
///         Rejected: part of the bond goes to the coherent curators. Curators far from the consensus lose a
///         small share of their pool bond, those who do not reveal a larger one.
/// @dev Curators join the SortitionPool by locking CURATOR stake in the StakeRegistry; the locked bond is
///      their sortition weight and what penalties are taken from. Every loop is bounded by the panel size or by
///      the tree depth. Curator rewards and penalties are settled per seat (`claim`/`settle`), so finalize
///      stays O(panel) and payouts are pulled.
contract DataConsensus is IDataConsensus, SortitionPool, AccessControl {
    using SafeERC20 for IERC20;

    /// @notice Role of the module (TrainingRounds) that takes accepted datasets for training.
    bytes32 public constant CONSUMER_ROLE = keccak256("CONSUMER_ROLE");
    uint256 public constant MAX_PANEL = 15;
    /// @notice Bound on sortition draws per panel (repeats are redrawn up to this many tickets in all).
    uint256 public constant MAX_DRAWS = 4 * MAX_PANEL;
    uint256 public constant CRITERIA = 5;
    uint256 public constant MAX_SCORE = 100;
    uint256 public constant MAX_CID_LENGTH = 64;
    uint256 private constant BPS = 10_000;

    /// @notice Governance parameters. Values in basis points unless named otherwise; windows in blocks.
    struct Params {
        uint16 quorumBps; // revealed weight needed, as a share of the panel's weight
        uint16 toleranceL1; // max sum over criteria of |score - consensus| for a coherent curator
        uint16 incoherentPenaltyBps; // share of the pool bond lost by a curator outside the tolerance
        uint16 noRevealPenaltyBps; // share of the pool bond lost by a curator who did not reveal
        uint16 rejectSlashBps; // share of a rejected informant's bond paid to the coherent curators
        uint16 curatorShareBps; // share of an accepted dataset's reward paid to the coherent curators
        uint16 thresholdFloor; // lowest threshold, in value points (0..10,000)
        uint16 thresholdCeiling; // highest threshold, in value points
        uint16 targetAcceptanceBps; // acceptance rate the threshold steers toward
        uint16 emaAlphaBps; // weight of the newest outcome in the acceptance-rate EMA
        uint16 thresholdGainBps; // threshold move per unit of (EMA - target)
        uint16 seedDelay; // blocks between a submission and the block whose hash seeds its panel
        uint16 commitWindow; // blocks for commits after the panel is drawn
        uint16 revealWindow; // blocks for reveals after the commit window
        uint96 minBond; // smallest informant bond
        uint96 minPoolBond; // smallest curator pool bond
        uint88 maxReward; // reward of a dataset of value 10,000 (a perfect score), drawn from Emission
    }

    /// @dev Four slots, laid out so that each phase touches as few as possible: claims read slots 1 and 3.
    struct Submission {
        // slot 0
        address informant;
        uint96 bond;
        // slot 1
        uint40 seedBlock;
        uint40 commitDeadline;
        uint40 revealDeadline;
        uint16 revealedMask;
        uint16 settledMask;
        uint8 panelSize;
        Status status;
        uint88 informantReward; // unclaimed; zeroed when claimed
        // slot 2
        uint96 panelWeight;
        uint96 revealedWeight;
        uint16 value;
        bool consumed; // taken into a training round
        // slot 3
        uint96 coherentWeight;
        uint96 curatorPayout;
        uint40 consensus; // five packed uint8 medians
    }

    struct Seat {
        address curator;
        uint96 weight; // the curator's pool bond when the panel was drawn
    }

    IEmission public immutable emission;
    IERC20 public immutable token;

    Params private _params;
    /// @notice Weight of each criterion in the value, in basis points summing to 10,000.
    uint16[CRITERIA] public criteriaWeights;
    /// @notice Receives penalties and payouts that have no coherent curator to go to.
    address public treasury;
    /// @notice Current acceptance threshold, in value points (0..10,000).
    uint16 public threshold;
    /// @notice Exponential moving average of recent outcomes, in basis points (10,000 = all accepted).
    uint16 public acceptanceEma;
    /// @notice Accepted datasets not yet taken for training.
    uint64 public pendingDatasetCount;
    uint256 public submissionCount;

    mapping(uint256 id => Submission) private _submissions;
    mapping(uint256 id => bytes) private _manifestCids;
    mapping(uint256 id => mapping(uint256 seat => Seat)) private _seats;
    /// @dev The commitment until the reveal, then the five packed scores (revealedMask tells which).
    mapping(uint256 id => mapping(uint256 seat => bytes32)) private _ballots;
    mapping(uint256 id => mapping(address curator => uint256 seatPlusOne)) private _seatOf;

    error ZeroAddress();
    error InvalidParams();
    error InvalidCid();
    error BondTooSmall(uint256 bond, uint256 minBond);
    error WrongStatus(Status status);
    error TooEarly(uint256 block_);
    error NotOnPanel();
    error CommitClosed();
    error RevealNotOpen();
    error RevealClosed();
    error AlreadyCommitted();
    error EmptyCommitment();
    error NotCommitted();
    error AlreadyRevealed();
    error CommitmentMismatch();
    error ScoreOutOfRange(uint256 score);
    error InvalidSeat(uint256 seat);
    error AlreadySettled();
    error NotInformant();
    error NothingToClaim();
    error NotPending(uint256 id);

    /// @param registry_ The StakeRegistry (this contract needs its MODULE_ROLE).
    /// @param emission_ The Emission contract (this contract needs its DRAWER_ROLE).
    /// @param token_ The DSH token the registry holds.
    /// @param admin Governance: receives DEFAULT_ADMIN_ROLE.
    /// @param treasury_ Receives unassigned penalties and payouts.
    /// @param params_ Initial parameters.
    /// @param weights_ Criteria weights in basis points, summing to 10,000.
    /// @param initialThreshold Starting threshold, within the floor and ceiling.
    constructor(
        IStakeRegistry registry_,
        IEmission emission_,
        IERC20 token_,
        address admin,
        address treasury_,
        Params memory params_,
        uint16[CRITERIA] memory weights_,
        uint16 initialThreshold
    ) SortitionPool(registry_, IStakeRegistry.Role.CURATOR) {
        if (
            address(registry_) == address(0) || address(emission_) == address(0) || address(token_) == address(0)
                || admin == address(0) || treasury_ == address(0)
        ) revert ZeroAddress();
        emission = emission_;
        token = token_;
        treasury = treasury_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setParams(params_, weights_);
        if (initialThreshold < params_.thresholdFloor || initialThreshold > params_.thresholdCeiling) {
            revert InvalidParams();
        }
        threshold = initialThreshold;
        acceptanceEma = params_.targetAcceptanceBps;
    }

    // ------------------------------------------------------------------ informants

    /// @notice Proposes a dataset. Locks `bond` of the caller's INFORMANT stake until the outcome.
    /// @param cid Binary CID of the dataset manifest (1 to 64 bytes).
    /// @param bond Amount in wei, at least `minBond`.
    /// @return id The submission id.
    function submit(bytes calldata cid, uint256 bond) external returns (uint256 id) {
        if (cid.length == 0 || cid.length > MAX_CID_LENGTH) revert InvalidCid();
        if (bond < _params.minBond) revert BondTooSmall(bond, _params.minBond);
        if (bond > type(uint96).max) revert AmountTooLarge(bond);
        id = ++submissionCount;
        Submission storage submission = _submissions[id];
        submission.informant = msg.sender;
        submission.bond = uint96(bond);
        uint256 seedBlock = block.number + _params.seedDelay;
        submission.seedBlock = uint40(seedBlock);
        submission.status = Status.AwaitingPanel;
        _manifestCids[id] = cid;
        emit Submitted(id, msg.sender, cid, bond, seedBlock);
        registry.lock(msg.sender, IStakeRegistry.Role.INFORMANT, bond);
    }

    /// @notice Draws the panel of submission `id`; anyone can call it once the seed block is mined.
    /// @dev The seed is the hash of a block mined after the submission (it commits to that block's
    ///      prevrandao), so neither the informant nor a curator chooses it, and the caller cannot grind it
    ///      by picking when to call. Past the 256-block horizon of `blockhash` a new seed block is set.
    /// @param id The submission.
    function drawPanel(uint256 id) external {
        Submission storage submission = _submissions[id];
        if (submission.status != Status.AwaitingPanel) revert WrongStatus(submission.status);
        uint256 seedBlock = submission.seedBlock;
        if (block.number <= seedBlock) revert TooEarly(seedBlock);
        bytes32 seedHash = blockhash(seedBlock);
        if (seedHash == bytes32(0)) {
            seedBlock = block.number + _params.seedDelay;
            submission.seedBlock = uint40(seedBlock);
            emit PanelReseeded(id, seedBlock);
            return;
        }
        bytes32 seed = keccak256(abi.encode(seedHash, id, address(this)));
        (address[] memory drawn, uint256[] memory weights) =
            _drawPanel(seed, submission.informant, MAX_PANEL, MAX_DRAWS);
        uint256 size = drawn.length;
        uint256 panelWeight = 0;
        for (uint256 seat = 0; seat < size; ++seat) {
            _seats[id][seat] = Seat(drawn[seat], uint96(weights[seat]));
            _seatOf[id][drawn[seat]] = seat + 1;
            panelWeight += weights[seat];
        }
        uint256 commitDeadline = block.number + _params.commitWindow;
        uint256 revealDeadline = commitDeadline + _params.revealWindow;
        submission.panelSize = uint8(size);
        submission.panelWeight = uint96(panelWeight);
        submission.commitDeadline = uint40(commitDeadline);
        submission.revealDeadline = uint40(revealDeadline);
        submission.status = Status.Voting;
        emit PanelDrawn(id, drawn, commitDeadline, revealDeadline);
    }

    // ------------------------------------------------------------------ curators

    /// @notice Commits a hidden vote: `commitmentFor(scores, salt, msg.sender)`.
    /// @param id The submission.
    /// @param commitment keccak256(abi.encode(uint8[5] scores, bytes32 salt, address curator)).
    function commit(uint256 id, bytes32 commitment) external {
        Submission storage submission = _submissions[id];
        if (submission.status != Status.Voting) revert WrongStatus(submission.status);
        if (block.number > submission.commitDeadline) revert CommitClosed();
        uint256 seat = _seatIndex(id, msg.sender);
        if (commitment == bytes32(0)) revert EmptyCommitment();
        if (_ballots[id][seat] != bytes32(0)) revert AlreadyCommitted();
        _ballots[id][seat] = commitment;
        emit Committed(id, msg.sender);
    }

    /// @notice Reveals the committed scores (0..100 each: novelty, reproducibility, alignment with human
    ///         values, empirical truthfulness, objectivity), after the commit window and before its deadline.
    /// @param id The submission.
    /// @param scores The five scores committed to.
    /// @param salt The salt committed to.
    function reveal(uint256 id, uint8[5] calldata scores, bytes32 salt) external {
        Submission storage submission = _submissions[id];
        if (submission.status != Status.Voting) revert WrongStatus(submission.status);
        if (block.number <= submission.commitDeadline) revert RevealNotOpen();
        if (block.number > submission.revealDeadline) revert RevealClosed();
        uint256 seat = _seatIndex(id, msg.sender);
        uint256 mask = uint256(1) << seat;
        if (submission.revealedMask & mask != 0) revert AlreadyRevealed();
        bytes32 commitment = _ballots[id][seat];
        if (commitment == bytes32(0)) revert NotCommitted();
        if (commitmentFor(scores, salt, msg.sender) != commitment) revert CommitmentMismatch();
        uint256 packed = 0;
        for (uint256 i = 0; i < CRITERIA; ++i) {
            if (scores[i] > MAX_SCORE) revert ScoreOutOfRange(scores[i]);
            packed |= uint256(scores[i]) << (8 * i);
        }
        _ballots[id][seat] = bytes32(packed);
        submission.revealedMask = uint16(submission.revealedMask | mask);
        submission.revealedWeight += _seats[id][seat].weight;
        emit Revealed(id, msg.sender, scores);
    }

    // ------------------------------------------------------------------ outcome

    /// @notice Closes the vote once the reveal window has passed (or every seat has revealed): computes the
    ///         consensus, accepts or rejects, settles the informant's bond and moves the threshold.
    /// @param id The submission.
    function finalize(uint256 id) external {
        Submission storage submission = _submissions[id];
        if (submission.status != Status.Voting) revert WrongStatus(submission.status);
        uint256 size = submission.panelSize;
        bool allRevealed = submission.revealedMask == (uint256(1) << size) - 1;
        if (block.number <= submission.revealDeadline && !(allRevealed && block.number > submission.commitDeadline)) {
            revert TooEarly(submission.revealDeadline);
        }
        Params memory p = _params;
        uint256 currentThreshold = threshold;
        uint256 revealedWeight = submission.revealedWeight;
        if (revealedWeight == 0 || revealedWeight * BPS < uint256(p.quorumBps) * submission.panelWeight) {
            submission.status = Status.NoQuorum;
            emit Finalized(id, Status.NoQuorum, _unpack(0), 0, currentThreshold, currentThreshold);
            registry.unlock(submission.informant, IStakeRegistry.Role.INFORMANT, submission.bond);
            return;
        }

        (uint256 packedConsensus, uint256 value, uint256 coherentWeight) = _tally(id, size, p.toleranceL1);
        bool accepted = value >= currentThreshold;
        uint256 nextThreshold = _updateThreshold(p, accepted, currentThreshold);
        submission.consensus = uint40(packedConsensus);
        submission.value = uint16(value);
        submission.coherentWeight = uint96(coherentWeight);
        submission.status = accepted ? Status.Accepted : Status.Rejected;
        emit Finalized(id, submission.status, _unpack(packedConsensus), value, currentThreshold, nextThreshold);

        if (accepted) {
            pendingDatasetCount += 1;
            _drawReward(submission, p, value, coherentWeight);
            registry.unlock(submission.informant, IStakeRegistry.Role.INFORMANT, submission.bond);
        } else {
            _slashRejected(submission, p.rejectSlashBps, coherentWeight);
        }
    }

    /// @notice Settles one seat of a finalized submission: pays its curator's reward share or takes its
    ///         penalty. Anyone can call it (curators claim, keepers apply penalties); a reward always goes
    ///         to the seat's curator. `seatOf` gives a curator its seat.
    /// @param id A finalized submission.
    /// @param seat Seat index in [0, panel size).
    function claim(uint256 id, uint256 seat) external {
        Submission storage submission = _submissions[id];
        Status status = submission.status;
        if (status != Status.Accepted && status != Status.Rejected && status != Status.NoQuorum) {
            revert WrongStatus(status);
        }
        if (seat >= submission.panelSize) revert InvalidSeat(seat);
        uint256 mask = uint256(1) << seat;
        if (submission.settledMask & mask != 0) revert AlreadySettled();
        submission.settledMask = uint16(submission.settledMask | mask);
        Seat memory seatInfo = _seats[id][seat];

        uint256 reward = 0;
        uint256 penaltyBps = 0;
        if (submission.revealedMask & mask == 0) {
            penaltyBps = _params.noRevealPenaltyBps;
        } else if (status != Status.NoQuorum) {
            if (_packedDistance(uint256(_ballots[id][seat]), submission.consensus) <= _params.toleranceL1) {
                reward = uint256(submission.curatorPayout) * seatInfo.weight / submission.coherentWeight;
            } else {
                penaltyBps = _params.incoherentPenaltyBps;
            }
        }
        uint256 penalty = _closeSeat(seatInfo.curator, penaltyBps);
        emit Settled(id, seatInfo.curator, reward, penalty);
        if (reward != 0) token.safeTransfer(seatInfo.curator, reward);
    }

    /// @notice Pays the informant of an accepted submission its reward.
    /// @param id An accepted submission.
    function claimInformantReward(uint256 id) external {
        Submission storage submission = _submissions[id];
        if (msg.sender != submission.informant) revert NotInformant();
        uint256 reward = submission.informantReward;
        if (reward == 0) revert NothingToClaim();
        submission.informantReward = 0;
        emit InformantRewardClaimed(id, msg.sender, reward);
        token.safeTransfer(msg.sender, reward);
    }

    /// @notice Marks accepted datasets as taken into a training round, so no round trains on one twice.
    /// @dev The consumer finds accepted ids from `Finalized` events; nothing here grows with their number.
    /// @param ids Accepted submissions not yet consumed (at most the caller's batch size).
    function consumeDatasets(uint256[] calldata ids) external onlyRole(CONSUMER_ROLE) {
        for (uint256 i = 0; i < ids.length; ++i) {
            Submission storage submission = _submissions[ids[i]];
            if (submission.status != Status.Accepted || submission.consumed) revert NotPending(ids[i]);
            submission.consumed = true;
        }
        pendingDatasetCount -= uint64(ids.length);
        emit DatasetsConsumed(msg.sender, ids);
    }

    // ------------------------------------------------------------------ governance

    /// @notice Replaces the parameters and criteria weights (the threshold is clamped into the new bounds).
    /// @param params_ New parameters.
    /// @param weights_ New criteria weights in basis points, summing to 10,000.
    function setParams(Params calldata params_, uint16[CRITERIA] calldata weights_)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _setParams(params_, weights_);
        if (threshold < params_.thresholdFloor) threshold = params_.thresholdFloor;
        if (threshold > params_.thresholdCeiling) threshold = params_.thresholdCeiling;
    }

    /// @notice Sets the address that receives unassigned penalties and payouts.
    /// @param treasury_ The new treasury.
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (treasury_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
    }

    // ------------------------------------------------------------------ views

    /// @notice The commitment a curator submits for `scores` and `salt`.
    /// @param scores The five scores.
    /// @param salt A secret random salt.
    /// @param curator The voter, bound into the commitment so nobody can copy it.
    function commitmentFor(uint8[5] calldata scores, bytes32 salt, address curator) public pure returns (bytes32) {
        return keccak256(abi.encode(scores, salt, curator));
    }

    /// @notice The current parameters.
    function getParams() external view returns (Params memory) {
        return _params;
    }

    /// @notice The stored state of submission `id`.
    function getSubmission(uint256 id) external view returns (Submission memory) {
        return _submissions[id];
    }

    /// @notice The binary manifest CID of submission `id`.
    function manifestCid(uint256 id) external view returns (bytes memory) {
        return _manifestCids[id];
    }

    /// @notice The consensus scores of a finalized submission.
    function consensusOf(uint256 id) external view returns (uint8[5] memory) {
        return _unpack(_submissions[id].consensus);
    }

    /// @notice The panel of submission `id`: curators and their weights, in seat order.
    function panelOf(uint256 id) external view returns (address[] memory members, uint256[] memory weights) {
        uint256 size = _submissions[id].panelSize;
        members = new address[](size);
        weights = new uint256[](size);
        for (uint256 i = 0; i < size; ++i) {
            Seat memory seat = _seats[id][i];
            (members[i], weights[i]) = (seat.curator, seat.weight);
        }
    }

    /// @notice The seat of `curator` on the panel of `id`, and whether it has one.
    function seatOf(uint256 id, address curator) external view returns (uint256 seat, bool onPanel) {
        uint256 seatPlusOne = _seatOf[id][curator];
        return (seatPlusOne == 0 ? 0 : seatPlusOne - 1, seatPlusOne != 0);
    }

    // ------------------------------------------------------------------ internal

    function _minPoolBond() internal view override returns (uint256) {
        return _params.minPoolBond;
    }

    function _penaltyBeneficiary() internal view override returns (address) {
        return treasury;
    }

    function _seatIndex(uint256 id, address curator) private view returns (uint256) {
        uint256 seatPlusOne = _seatOf[id][curator];
        if (seatPlusOne == 0) revert NotOnPanel();
        return seatPlusOne - 1;
    }

    /// @dev Per criterion the lower stake-weighted median of the revealed scores; the value is their
    ///      weighted sum scaled to 0..10,000; coherent weight is the weight of voters within the tolerance.
    function _tally(uint256 id, uint256 size, uint256 toleranceL1)
        private
        view
        returns (uint256 packedConsensus, uint256 value, uint256 coherentWeight)
    {
        uint256 revealedMask = _submissions[id].revealedMask;
        uint256[] memory weights = new uint256[](size);
        uint256[] memory ballots = new uint256[](size);
        uint256 count = 0;
        for (uint256 seat = 0; seat < size; ++seat) {
            // A bit test on our own mask, not a balance anyone can push.
            // slither-disable-next-line incorrect-equality
            if (revealedMask & (uint256(1) << seat) == 0) continue;
            weights[count] = _seats[id][seat].weight;
            ballots[count] = uint256(_ballots[id][seat]);
            ++count;
        }
        uint256[] memory criterionScores = new uint256[](count);
        uint256 weightedSum = 0;
        for (uint256 c = 0; c < CRITERIA; ++c) {
            for (uint256 i = 0; i < count; ++i) {
                criterionScores[i] = uint8(ballots[i] >> (8 * c));
            }
            uint256 median = WeightedMedian.lowerMedian(criterionScores, weights, count);
            packedConsensus |= median << (8 * c);
            weightedSum += median * criteriaWeights[c];
        }
        value = weightedSum / MAX_SCORE;
        for (uint256 i = 0; i < count; ++i) {
            if (_packedDistance(ballots[i], packedConsensus) <= toleranceL1) coherentWeight += weights[i];
        }
    }

    function _unpack(uint256 packed) private pure returns (uint8[CRITERIA] memory scores) {
        for (uint256 c = 0; c < CRITERIA; ++c) {
            scores[c] = uint8(packed >> (8 * c));
        }
    }

    /// @dev A rejected informant loses `rejectSlashBps` of its bond to the coherent curators (or, when no
    ///      curator was coherent, to the treasury); the rest is unlocked.
    function _slashRejected(Submission storage submission, uint256 rejectSlashBps, uint256 coherentWeight) private {
        uint256 bond = submission.bond;
        uint256 slashed = bond * rejectSlashBps / BPS;
        address informant = submission.informant;
        if (slashed != 0 && coherentWeight != 0) submission.curatorPayout = uint96(slashed);
        if (bond > slashed) registry.unlock(informant, IStakeRegistry.Role.INFORMANT, bond - slashed);
        if (slashed == 0) return;
        registry.slash(informant, IStakeRegistry.Role.INFORMANT, slashed, coherentWeight != 0 ? address(this) : treasury);
    }

    function _packedDistance(uint256 packedScores, uint256 packedConsensus) private pure returns (uint256 distance) {
        for (uint256 c = 0; c < CRITERIA; ++c) {
            uint256 score = uint8(packedScores >> (8 * c));
            uint256 median = uint8(packedConsensus >> (8 * c));
            distance += score > median ? score - median : median - score;
        }
    }

    /// @dev EMA of outcomes, then the threshold moves by gain * (EMA - target), clamped to its bounds:
    ///      accepting too much raises the bar, accepting too little lowers it.
    function _updateThreshold(Params memory p, bool accepted, uint256 current) private returns (uint256 next) {
        uint256 outcome = accepted ? BPS : 0;
        uint256 ema = (uint256(acceptanceEma) * (BPS - p.emaAlphaBps) + outcome * p.emaAlphaBps) / BPS;
        int256 move = (int256(ema) - int256(uint256(p.targetAcceptanceBps))) * int256(uint256(p.thresholdGainBps))
            / int256(BPS);
        int256 moved = int256(current) + move;
        if (moved < int256(uint256(p.thresholdFloor))) moved = int256(uint256(p.thresholdFloor));
        if (moved > int256(uint256(p.thresholdCeiling))) moved = int256(uint256(p.thresholdCeiling));
        next = uint256(moved);
        acceptanceEma = uint16(ema);
        threshold = uint16(next);
    }

    /// @dev State first, then the mint: the reward is sized from `available()` so `draw` cannot revert.
    function _drawReward(Submission storage submission, Params memory p, uint256 value, uint256 coherentWeight)
        private
    {
        uint256 reward = uint256(p.maxReward) * value / BPS;
        uint256 available = emission.available();
        if (reward > available) reward = available;
        if (reward == 0) return;
        // The reward is an amount of its own (capped by what Emission has left) before it is split.
        // slither-disable-next-line divide-before-multiply
        uint256 curatorPart = coherentWeight != 0 ? reward * p.curatorShareBps / BPS : 0;
        submission.curatorPayout = uint96(curatorPart);
        submission.informantReward = uint88(reward - curatorPart);
        emission.draw(address(this), reward);
    }

    function _setParams(Params memory p, uint16[CRITERIA] memory weights_) private {
        uint256 weightSum = 0;
        for (uint256 c = 0; c < CRITERIA; ++c) {
            weightSum += weights_[c];
        }
        if (
            weightSum != BPS || p.quorumBps > BPS || p.incoherentPenaltyBps > BPS || p.noRevealPenaltyBps > BPS
                || p.rejectSlashBps > BPS || p.curatorShareBps > BPS || p.thresholdFloor > p.thresholdCeiling
                || p.thresholdCeiling > BPS || p.targetAcceptanceBps > BPS || p.emaAlphaBps > BPS
                || p.commitWindow == 0 || p.revealWindow == 0 || p.seedDelay == 0 || p.minPoolBond == 0
        ) revert InvalidParams();
        _params = p;
        criteriaWeights = weights_;
    }
}
