// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IDataConsensus} from "../interfaces/IDataConsensus.sol";
import {IEmission} from "../interfaces/IEmission.sol";
import {IStakeRegistry} from "../interfaces/IStakeRegistry.sol";
import {SortitionPanel} from "../panel/SortitionPanel.sol";
import {WeightedMedian} from "../libraries/WeightedMedian.sol";

/// @title DataConsensus
/// @notice Informants stake a bond to propose a dataset (a manifest pinned on IPFS). A panel of 31 votes, drawn
///         by stake-weighted sortition with replacement from the hash of a block mined after the submission (one
///         draw = one vote: a curator drawn k times votes with weight k), scores it on five criteria with
///         commit-reveal votes. Per criterion the median weighted by draws is the consensus; the weighted sum of
///         the medians is the dataset's value, accepted iff it reaches a threshold that follows a target
///         acceptance rate. Accepted: bond back plus an Emission reward. Rejected: part of the bond goes to the
///         coherent curators. Curators far from the consensus lose a small share of their pool bond, those who
///         do not reveal a larger one. A submission whose panel nobody drew while its seed block's hash was
///         readable expires, and its informant loses part of its bond (`drawPanel`).
/// @dev The panel (seats, draw, windows, commit-reveal, per-seat settlement) is SortitionPanel's; this module
///      stores the five scores as a reveal's record, tallies them and decides the outcome. Curators join the
///      pool by locking CURATOR stake in the StakeRegistry; the locked bond is their chance per draw and what
///      penalties are taken from. Every loop is bounded by the panel size or by the tree depth. Curator rewards
///      and penalties are settled per seat (`claim`), so finalize stays O(panel) and payouts are pulled.
///      What a committed bond can lose is fixed when it is committed: a submission keeps the reject slash in
///      force at `submit`, and the expiry slash and its panel the penalty rates, so a governance change applies to
///      later submissions.
contract DataConsensus is IDataConsensus, SortitionPanel {
    using SafeERC20 for IERC20;

    /// @notice Role of the module (TrainingRounds) that takes accepted datasets for training.
    bytes32 public constant CONSUMER_ROLE = keccak256("CONSUMER_ROLE");
    /// @notice Votes on a panel: stake-weighted draws with replacement, one vote each (also its most curators).
    ///         31, because a cartel holding 30% of the pool then holds at least half of a panel's votes with the
    ///         binomial tail probability P(Bin(31, 0.3) >= 16) = 0.95%, under the 1% target (15 votes: 5%).
    uint256 public constant MAX_PANEL = 31;
    /// @notice Bound on sortition tickets per panel (tickets on the informant are redrawn up to this many).
    uint256 public constant MAX_DRAWS = 4 * MAX_PANEL;
    /// @notice Criteria a dataset is scored on.
    uint256 public constant CRITERIA = 5;
    /// @notice Highest score per criterion.
    uint256 public constant MAX_SCORE = 100;
    /// @notice Longest manifest CID, in bytes.
    uint256 public constant MAX_CID_LENGTH = 64;

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
        uint16 expirySlashBps; // share of the bond an expired submission's informant loses to the treasury
    }

    /// @notice A submission as `getSubmission` returns it: the record below and its panel (SortitionPanel).
    struct Submission {
        // slot 0
        address informant;
        uint96 bond;
        // slot 1
        uint40 seedBlock;
        uint40 commitDeadline;
        uint40 revealDeadline;
        uint32 revealedMask; // bit s: seat s
        uint32 settledMask;
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
        uint16 rejectSlashBps; // the share of the bond a rejection slashes, fixed at `submit`
        uint16 expirySlashBps; // the share of the bond an expiry slashes, fixed at `submit`
    }

    /// @dev What a submission keeps besides its panel: two slots. The panel's first slot holds the status.
    struct SubmissionRecord {
        // slot 0
        address informant;
        uint96 bond;
        // slot 1
        uint88 informantReward; // unclaimed; zeroed when claimed
        uint16 value;
        bool consumed; // taken into a training round
        uint40 consensus; // five packed uint8 medians
        uint16 rejectSlashBps; // `rejectSlashBps` at `submit`
        uint16 expirySlashBps; // `expirySlashBps` at `submit`
    }

    /// @notice The Emission contract rewards are drawn from.
    IEmission public immutable emission;

    Params private _params;
    /// @notice Weight of each criterion in the value, in basis points summing to 10,000.
    uint16[CRITERIA] public criteriaWeights;
    /// @notice Current acceptance threshold, in value points (0..10,000).
    uint16 public threshold;
    /// @notice Exponential moving average of recent outcomes, in basis points (10,000 = all accepted).
    uint16 public acceptanceEma;
    /// @notice Accepted datasets not yet taken for training.
    uint64 public pendingDatasetCount;
    /// @notice Submissions so far (the last id).
    uint256 public submissionCount;

    mapping(uint256 id => SubmissionRecord) private _submissions;
    mapping(uint256 id => bytes) private _manifestCids;

    error InvalidCid();
    error BondTooSmall(uint256 bond, uint256 minBond);
    error ScoreOutOfRange(uint256 score);
    error NotInformant();
    error NothingToClaim();
    error NotPending(uint256 id);

    /// @notice Deploys the module; give it MODULE_ROLE on the registry and DRAWER_ROLE on Emission next.
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
    ) SortitionPanel(registry_, IStakeRegistry.Role.CURATOR, token_, admin, treasury_, MAX_PANEL, MAX_DRAWS) {
        if (address(emission_) == address(0)) revert ZeroAddress();
        emission = emission_;
        _params = params_;
        criteriaWeights = weights_;
        _checkParams();
        if (initialThreshold < params_.thresholdFloor || initialThreshold > params_.thresholdCeiling) {
            revert InvalidParams();
        }
        threshold = initialThreshold;
        acceptanceEma = params_.targetAcceptanceBps;
    }

    // ------------------------------------------------------------------ informants

    /// @notice Proposes a dataset. Locks `bond` of the caller's INFORMANT stake until the outcome; a rejection
    ///         slashes the share of it that `rejectSlashBps` says now, and an expiry (`drawPanel`) the share
    ///         `expirySlashBps` says now, whatever governance sets meanwhile.
    /// @param cid Binary CID of the dataset manifest (1 to 64 bytes).
    /// @param bond Amount in wei, at least `minBond`.
    /// @return id The submission id.
    function submit(bytes calldata cid, uint256 bond) external returns (uint256 id) {
        if (cid.length == 0 || cid.length > MAX_CID_LENGTH) revert InvalidCid();
        if (bond < _params.minBond) revert BondTooSmall(bond, _params.minBond);
        if (bond > type(uint96).max) revert AmountTooLarge(bond);
        id = ++submissionCount;
        SubmissionRecord storage submission = _submissions[id];
        submission.informant = msg.sender;
        submission.bond = uint96(bond);
        submission.rejectSlashBps = _params.rejectSlashBps;
        submission.expirySlashBps = _params.expirySlashBps;
        uint256 seedBlock = block.number + _params.seedDelay;
        _openPanel(id, seedBlock, uint8(Status.AwaitingPanel));
        _manifestCids[id] = cid;
        emit Submitted(id, msg.sender, cid, bond, seedBlock);
        registry.lock(msg.sender, IStakeRegistry.Role.INFORMANT, bond);
    }

    /// @notice Draws the panel of submission `id`; anyone can call it once the seed block is mined (TooEarly
    ///         before), until the seed block is 256 blocks old. Past that horizon of `blockhash` nothing can
    ///         be drawn from it: the submission expires (status Expired, `SubmissionExpired`), the submission's
    ///         `expirySlashBps` of the informant's bond goes to the treasury and the rest is unlocked.
    /// @dev The seed is the hash of a block mined after the submission (it commits to that block's
    ///      prevrandao), so neither the informant nor a curator chooses it, and the caller cannot grind it
    ///      by picking when to call. But the informant can compute its panel as soon as the seed block is
    ///      mined; a fresh seed for an undrawn panel would let it skip the panels it dislikes for free
    ///      (kleros-interaction issue 105 reports the shape). Here skipping one ends the submission: a new
    ///      draw takes a new submission and a new bond, and costs the expiry slash. With the slash equal to
    ///      the reject slash (the deployment default) skipping a panel costs what a rejection by it does,
    ///      so a re-roll gains only where submitting junk already pays without one
    ///      (benchmarks/economics/README.md). The slash goes to the treasury, not to the caller: a bounty for
    ///      a late draw would go back to an informant calling from a second address, and would pay keepers
    ///      to wait rather than to draw in time. An honest informant, or any keeper
    ///      (workers.data.steps.keeper_once draws at the first block it can), draws within the horizon and
    ///      never pays it. The informant never sits on its own panel.
    /// @param id The submission.
    function drawPanel(uint256 id) external {
        _requireStatus(id, uint8(Status.AwaitingPanel));
        _requireSeedMined(id);
        SubmissionRecord storage submission = _submissions[id];
        if (!_seedExpired(id)) {
            _draw(id, submission.informant);
            _panel(id).status = uint8(Status.Voting);
            return;
        }
        _panel(id).status = uint8(Status.Expired);
        uint256 bond = submission.bond;
        uint256 slashed = bond * submission.expirySlashBps / BPS;
        address informant = submission.informant;
        emit SubmissionExpired(id, informant, slashed);
        if (bond > slashed) registry.unlock(informant, IStakeRegistry.Role.INFORMANT, bond - slashed);
        if (slashed != 0) registry.slash(informant, IStakeRegistry.Role.INFORMANT, slashed, treasury);
    }

    // ------------------------------------------------------------------ curators

    /// @notice Commits a hidden vote: `commitmentFor(scores, salt, msg.sender)`, within the commit window.
    /// @param id The submission.
    /// @param commitment keccak256(abi.encode(uint8[5] scores, bytes32 salt, address curator)).
    function commit(uint256 id, bytes32 commitment) external {
        _commit(id, commitment);
    }

    /// @notice Reveals the committed scores (0..100 each: novelty, reproducibility, alignment with human
    ///         values, empirical truthfulness, objectivity), after the commit window and before its deadline.
    /// @param id The submission.
    /// @param scores The five scores committed to.
    /// @param salt The salt committed to.
    function reveal(uint256 id, uint8[5] calldata scores, bytes32 salt) external {
        uint256 packed = 0;
        for (uint256 i = 0; i < CRITERIA; ++i) {
            if (scores[i] > MAX_SCORE) revert ScoreOutOfRange(scores[i]);
            packed |= uint256(scores[i]) << (8 * i);
        }
        _reveal(id, commitmentFor(scores, salt, msg.sender), bytes32(packed));
    }

    // ------------------------------------------------------------------ outcome

    /// @notice Closes the vote once the reveal window has passed (or every seat has revealed): computes the
    ///         consensus, accepts or rejects, settles the informant's bond and moves the threshold.
    /// @param id The submission.
    function finalize(uint256 id) external {
        _requireStatus(id, uint8(Status.Voting));
        _requireRevealsOver(id);
        Panel storage panel = _panel(id);
        SubmissionRecord storage submission = _submissions[id];
        Params storage p = _params;
        uint256 currentThreshold = threshold;
        uint256 revealedWeight = panel.revealedWeight;
        if (revealedWeight == 0 || revealedWeight * BPS < uint256(p.quorumBps) * panel.weight) {
            panel.status = uint8(Status.NoQuorum);
            emit Finalized(id, Status.NoQuorum, _unpack(0), 0, currentThreshold, currentThreshold);
            registry.unlock(submission.informant, IStakeRegistry.Role.INFORMANT, submission.bond);
            return;
        }

        (uint256 packedConsensus, uint256 value, uint256 coherentMask, uint256 coherentWeight) =
            _tally(id, p.toleranceL1);
        bool accepted = value >= currentThreshold;
        uint256 nextThreshold = _updateThreshold(p, accepted, currentThreshold);
        Status outcome = accepted ? Status.Accepted : Status.Rejected;
        submission.consensus = uint40(packedConsensus);
        submission.value = uint16(value);
        panel.coherentMask = uint32(coherentMask);
        panel.coherentWeight = uint96(coherentWeight);
        panel.status = uint8(outcome);
        emit Finalized(id, outcome, _unpack(packedConsensus), value, currentThreshold, nextThreshold);

        if (accepted) {
            ++pendingDatasetCount;
            _drawReward(panel, submission, p, value, coherentWeight);
            registry.unlock(submission.informant, IStakeRegistry.Role.INFORMANT, submission.bond);
        } else {
            _slashRejected(panel, submission, coherentWeight);
        }
    }

    /// @notice Settles one seat of a finalized submission: pays its curator's reward share or takes its
    ///         penalty. Anyone can call it (curators claim, keepers apply penalties); a reward always goes
    ///         to the seat's curator. `seatOf` gives a curator its seat.
    /// @param id A finalized submission.
    /// @param seat Seat index in [0, panel size).
    function claim(uint256 id, uint256 seat) external {
        _settle(id, seat);
    }

    /// @notice Pays the informant of an accepted submission its reward.
    /// @param id An accepted submission.
    function claimInformantReward(uint256 id) external {
        SubmissionRecord storage submission = _submissions[id];
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
            SubmissionRecord storage submission = _submissions[ids[i]];
            if (_panel(ids[i]).status != uint8(Status.Accepted) || submission.consumed) revert NotPending(ids[i]);
            submission.consumed = true;
        }
        pendingDatasetCount -= uint64(ids.length);
        emit DatasetsConsumed(msg.sender, ids);
    }

    // ------------------------------------------------------------------ governance

    /// @notice Replaces the parameters and criteria weights (the threshold is clamped into the new bounds). The
    ///         reject slash, the expiry slash and the penalty rates apply to submissions made afterwards; the rest also to the
    ///         next `finalize` of a submission under way.
    /// @param params_ New parameters.
    /// @param weights_ New criteria weights in basis points, summing to 10,000.
    function setParams(Params calldata params_, uint16[CRITERIA] calldata weights_)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _params = params_;
        criteriaWeights = weights_;
        _checkParams();
        if (threshold < params_.thresholdFloor) threshold = params_.thresholdFloor;
        if (threshold > params_.thresholdCeiling) threshold = params_.thresholdCeiling;
    }

    // ------------------------------------------------------------------ views

    /// @notice The commitment a curator submits for `scores` and `salt`.
    /// @param scores The five scores.
    /// @param salt A secret random salt.
    /// @param curator The voter, bound into the commitment so nobody can copy it.
    /// @return The commitment.
    function commitmentFor(uint8[5] calldata scores, bytes32 salt, address curator) public pure returns (bytes32) {
        return keccak256(abi.encode(scores, salt, curator));
    }

    /// @notice The current parameters.
    /// @return The parameters.
    function getParams() external view returns (Params memory) {
        return _params;
    }

    /// @notice The state of submission `id`.
    /// @param id The submission.
    /// @return submission Its record and panel, as one struct.
    function getSubmission(uint256 id) external view returns (Submission memory submission) {
        SubmissionRecord storage record = _submissions[id];
        Panel storage panel = _panel(id);
        return Submission({
            informant: record.informant,
            bond: record.bond,
            seedBlock: panel.seedBlock,
            commitDeadline: panel.commitDeadline,
            revealDeadline: panel.revealDeadline,
            revealedMask: panel.revealedMask,
            settledMask: panel.settledMask,
            panelSize: panel.size,
            status: Status(panel.status),
            informantReward: record.informantReward,
            panelWeight: panel.weight,
            revealedWeight: panel.revealedWeight,
            value: record.value,
            consumed: record.consumed,
            coherentWeight: panel.coherentWeight,
            curatorPayout: panel.payout,
            consensus: record.consensus,
            rejectSlashBps: record.rejectSlashBps,
            expirySlashBps: record.expirySlashBps
        });
    }

    /// @notice The binary manifest CID of submission `id`.
    /// @param id The submission.
    /// @return The CID's bytes.
    function manifestCid(uint256 id) external view returns (bytes memory) {
        return _manifestCids[id];
    }

    /// @notice The consensus scores of a finalized submission.
    /// @param id The submission.
    /// @return The five median scores.
    function consensusOf(uint256 id) external view returns (uint8[5] memory) {
        return _unpack(_submissions[id].consensus);
    }

    /// @notice The scores a seat revealed (zeros while it has not revealed).
    /// @param id The submission.
    /// @param seat Seat index in [0, panel size).
    /// @return The five scores.
    function scoresOf(uint256 id, uint256 seat) external view returns (uint8[5] memory) {
        return _unpack(uint256(_revealedRecord(id, seat)));
    }

    // ------------------------------------------------------------------ internal

    function _minPoolBond() internal view override returns (uint256) {
        return _params.minPoolBond;
    }

    function _panelParams() internal view override returns (PanelParams memory) {
        Params storage p = _params;
        return PanelParams(p.commitWindow, p.revealWindow, p.noRevealPenaltyBps, p.incoherentPenaltyBps);
    }

    /// @dev Accepted and rejected submissions were judged; a panel without quorum was not (an expired
    ///      submission has no seat to settle).
    function _judged(uint8 status) internal pure override returns (bool) {
        if (status == uint8(Status.Accepted) || status == uint8(Status.Rejected)) return true;
        if (status != uint8(Status.NoQuorum)) revert WrongStatus(status);
        return false;
    }

    /// @dev Per criterion the lower median of the revealed scores weighted by the seats' draws; the value is their
    ///      weighted sum scaled to 0..10,000; coherent seats are the voters within the tolerance.
    function _tally(uint256 id, uint256 toleranceL1)
        private
        view
        returns (uint256 packedConsensus, uint256 value, uint256 coherentMask, uint256 coherentWeight)
    {
        (uint256[] memory seats, uint256[] memory weights, uint256[] memory ballots) = _revealed(id);
        uint256 count = seats.length;
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
            if (_packedDistance(ballots[i], packedConsensus) <= toleranceL1) {
                coherentMask |= uint256(1) << seats[i];
                coherentWeight += weights[i];
            }
        }
    }

    function _unpack(uint256 packed) private pure returns (uint8[CRITERIA] memory scores) {
        for (uint256 c = 0; c < CRITERIA; ++c) {
            scores[c] = uint8(packed >> (8 * c));
        }
    }

    /// @dev A rejected informant loses the submission's `rejectSlashBps` of its bond to the coherent curators
    ///      (or, when no curator was coherent, to the treasury); the rest is unlocked.
    function _slashRejected(Panel storage panel, SubmissionRecord storage submission, uint256 coherentWeight)
        private
    {
        uint256 bond = submission.bond;
        uint256 slashed = bond * submission.rejectSlashBps / BPS;
        address informant = submission.informant;
        if (slashed != 0 && coherentWeight != 0) panel.payout = uint96(slashed);
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
    function _updateThreshold(Params storage p, bool accepted, uint256 current) private returns (uint256 next) {
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
    function _drawReward(
        Panel storage panel,
        SubmissionRecord storage submission,
        Params storage p,
        uint256 value,
        uint256 coherentWeight
    ) private {
        uint256 reward = uint256(p.maxReward) * value / BPS;
        uint256 available = emission.available();
        if (reward > available) reward = available;
        if (reward == 0) return;
        // The reward is an amount of its own (capped by what Emission has left) before it is split.
        // slither-disable-next-line divide-before-multiply
        uint256 curatorPart = coherentWeight != 0 ? reward * p.curatorShareBps / BPS : 0;
        panel.payout = uint96(curatorPart);
        submission.informantReward = uint88(reward - curatorPart);
        emission.draw(address(this), reward);
    }

    /// @dev Reverts unless the stored parameters and weights are usable (called after storing them: a revert
    ///      undoes it).
    function _checkParams() private view {
        Params storage p = _params;
        uint256 weightSum = 0;
        for (uint256 c = 0; c < CRITERIA; ++c) {
            weightSum += criteriaWeights[c];
        }
        if (
            weightSum != BPS || p.quorumBps > BPS || p.rejectSlashBps > BPS || p.expirySlashBps > BPS
                || p.curatorShareBps > BPS
                || p.thresholdFloor > p.thresholdCeiling || p.thresholdCeiling > BPS || p.targetAcceptanceBps > BPS
                || p.emaAlphaBps > BPS
        ) revert InvalidParams();
        _checkPanelParams(p.seedDelay);
    }
}
