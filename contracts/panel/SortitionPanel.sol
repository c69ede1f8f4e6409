// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IStakeRegistry} from "../interfaces/IStakeRegistry.sol";
import {SortitionPool} from "../staking/SortitionPool.sol";

/// @title SortitionPanel
/// @notice The commit-reveal panel that DataConsensus (curators) and TrainingRounds (evaluators) share. Per panel
///         id (a submission or a round): a seed block fixed in advance, a stake-weighted draw of `votes`
///         tickets with replacement from that block's hash (one draw = one vote, as in Kleros: a member drawn
///         k times holds one seat of weight k), a commit window, a reveal window, and per-seat settlement. The
///         tally, quorum and payout count a seat's draws, so expected votes and rewards are proportional to
///         stake however it is split among addresses. Silent seats lose `noRevealPenaltyBps` of their pool
///         bond; once the module has judged the panel, coherent seats share its payout in proportion to their
///         draws and incoherent ones lose `incoherentPenaltyBps` of their pool bond; a panel closed without a
///         judgement (no quorum, a failed round) neither pays nor penalises the seats that revealed. Both rates
///         are the module's when the panel opened: a governance change applies to panels opened after it, never
///         to seats already at work.
///         Penalties stay a share of the bond per seat, not per draw: Kleros takes a fixed deposit per draw
///         (the court's minimum stake times alpha), which would need a per-draw amount here and could take
///         more than a small member's bond; a per-seat share never does. Its cost: a member drawn k times risks
///         what it risks when drawn once, and a stake split into many addresses is seated, and so exposed to
///         penalties, more often than the same stake merged.
/// @dev Modules extend it the way OpenZeppelin's Governor takes counting modules: they keep their own phases
///      in `Panel.status` (their Status enum), say what a reveal stores (`_reveal`'s record), decide
///      coherence and the payout (writing `coherentMask`, `coherentWeight` and `payout`), and fill in the hooks
///      `_panelParams` (windows, penalties), `_judged` (whether a closed panel was judged) and
///      `_minPoolBond`. Penalties go to the treasury, which governance (DEFAULT_ADMIN_ROLE) sets. Every loop is
///      bounded by the panel size.
abstract contract SortitionPanel is SortitionPool, AccessControl {
    using SafeERC20 for IERC20;

    /// @dev Basis points: 10,000 is the whole.
    uint256 internal constant BPS = 10_000;
    /// @dev Blocks back `blockhash` reads (EVM: the 256 before the current one).
    uint256 private constant BLOCKHASH_HORIZON = 256;
    /// @dev Seat masks are uint32, and a panel of `votes` draws has at most `votes` seats.
    uint256 private constant MAX_VOTES_LIMIT = 32;

    /// @dev Three slots. Slot 0 answers every phase and window check. The penalty rates do not fit in it beside
    ///      32-bit seat masks (3 x 40 + 3 x 32 + 2 x 8 + 2 x 16 = 264 bits > 256), so they sit in slot 1 with the
    ///      weights: only a penalised seat's settlement reads them there. The status comes first, in the low
    ///      bits: the modules read it most, and there a read needs no shift (bytecode room).
    struct Panel {
        // slot 0
        uint8 status; // the module's own Status enum, here so that one read answers phase and window
        uint8 size;
        uint40 seedBlock; // the block whose hash seeds the draw
        uint40 commitDeadline; // last block of the commit window (0 until drawn)
        uint40 revealDeadline; // last block of the reveal window
        uint32 revealedMask; // bit s: seat s (panels of up to 32 seats)
        uint32 settledMask;
        uint32 coherentMask; // seats the module's judgement found coherent
        // slot 1
        uint96 weight; // votes drawn: the sum of the seats' draws
        uint96 revealedWeight;
        uint16 noRevealPenaltyBps; // the module's rates when the panel opened (at most BPS)
        uint16 incoherentPenaltyBps;
        // slot 2
        uint96 coherentWeight;
        uint96 payout; // shared by the coherent seats in proportion to weight
    }

    /// @dev What the module's parameters say about its panels. Windows in blocks, penalties in bps of the
    ///      member's pool bond. (The seed delay is the module's: it alone places the seed block.)
    struct PanelParams {
        uint256 commitWindow; // blocks for commits after the draw
        uint256 revealWindow; // blocks for reveals after the commit window
        uint256 noRevealPenaltyBps;
        uint256 incoherentPenaltyBps;
    }

    struct Seat {
        address member;
        uint96 weight; // the member's number of draws (its votes)
    }

    /// @notice The DSH token rewards are paid in.
    IERC20 public immutable token;
    /// @notice Receives penalties, and what the module has nobody else to pay.
    address public treasury;
    uint256 private immutable _votes;
    uint256 private immutable _maxDraws;

    mapping(uint256 id => Panel) private _panels;
    mapping(uint256 id => mapping(uint256 seat => Seat)) private _seats;
    mapping(uint256 id => mapping(address member => uint256 seatPlusOne)) private _seatOf;
    /// @dev The commitment until the seat reveals, then the module's record of the reveal (revealedMask tells
    ///      which): one slot either way, rewritten rather than filled anew.
    mapping(uint256 id => mapping(uint256 seat => bytes32)) private _ballots;

    /// @notice The panel of `id` is drawn.
    /// @param id The submission or round.
    /// @param members The drawn members, in seat order.
    /// @param commitDeadline Last block for commits.
    /// @param revealDeadline Last block for reveals.
    event PanelDrawn(uint256 indexed id, address[] members, uint256 commitDeadline, uint256 revealDeadline);
    /// @notice `member` committed on the panel of `id`.
    /// @param id The submission or round.
    /// @param member The seated member.
    event Committed(uint256 indexed id, address indexed member);
    /// @notice `member` revealed what it committed to.
    /// @param id The submission or round.
    /// @param member The seated member.
    event Revealed(uint256 indexed id, address indexed member);
    /// @notice A seat of `id` is settled.
    /// @param id The submission or round.
    /// @param member The seat's member.
    /// @param reward Wei of DSH paid to the member.
    /// @param penalty Wei of pool bond taken from the member.
    event Settled(uint256 indexed id, address indexed member, uint256 reward, uint256 penalty);

    error ZeroAddress();
    error InvalidParams();
    /// @dev The module's Status enum, as its uint8.
    error WrongStatus(uint8 status);
    error TooEarly(uint256 block_);
    error WindowClosed();
    error WindowNotOpen();
    error NotOnPanel();
    error AlreadyCommitted();
    error EmptyCommitment();
    error NotCommitted();
    error AlreadyRevealed();
    error CommitmentMismatch();
    error InvalidSeat(uint256 seat);
    error AlreadySettled();

    /// @notice Sets up the pool, the panel bounds, governance and the treasury.
    /// @param registry_ The StakeRegistry holding the pool bonds.
    /// @param role The role whose stake members lock.
    /// @param token_ The DSH token rewards are paid in.
    /// @param admin Governance: receives DEFAULT_ADMIN_ROLE.
    /// @param treasury_ Receives penalties.
    /// @param votes Draws a panel counts, one vote each (at most 32: also its most seats).
    /// @param maxDraws Most sortition tickets drawn (tickets on the excluded member are redrawn), at least `votes`.
    constructor(
        IStakeRegistry registry_,
        IStakeRegistry.Role role,
        IERC20 token_,
        address admin,
        address treasury_,
        uint256 votes,
        uint256 maxDraws
    ) SortitionPool(registry_, role) {
        if (address(registry_) == address(0) || address(token_) == address(0) || admin == address(0)) {
            revert ZeroAddress();
        }
        if (votes == 0 || votes > MAX_VOTES_LIMIT || maxDraws < votes) revert InvalidParams();
        token = token_;
        _votes = votes;
        _maxDraws = maxDraws;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setTreasury(treasury_);
    }

    /// @notice Sets the address that receives penalties and unassigned payouts.
    /// @param treasury_ The new treasury.
    function setTreasury(address treasury_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTreasury(treasury_);
    }

    /// @notice The panel of `id`: members and their weights, in seat order (empty until drawn).
    /// @param id The submission or round.
    /// @return members The seated members.
    /// @return weights Their numbers of draws (votes).
    function panelOf(uint256 id) external view returns (address[] memory members, uint256[] memory weights) {
        uint256 size = _panels[id].size;
        members = new address[](size);
        weights = new uint256[](size);
        for (uint256 seat = 0; seat < size; ++seat) {
            Seat memory info = _seats[id][seat];
            (members[seat], weights[seat]) = (info.member, info.weight);
        }
    }

    /// @notice The seat of `member` on the panel of `id`, and whether it has one.
    /// @param id The submission or round.
    /// @param member A pool member.
    /// @return seat The seat index (0 when not on the panel).
    /// @return onPanel Whether `member` holds a seat.
    function seatOf(uint256 id, address member) external view returns (uint256 seat, bool onPanel) {
        uint256 seatPlusOne = _seatOf[id][member];
        return (seatPlusOne == 0 ? 0 : seatPlusOne - 1, seatPlusOne != 0);
    }

    // ------------------------------------------------------------------ hooks

    /// @dev The module's panel parameters. The windows are read where needed, so that a change applies to
    ///      pending windows; the penalty rates are read once, when a panel opens.
    function _panelParams() internal view virtual returns (PanelParams memory);

    /// @dev For a panel whose module `status` is final: whether it was judged (coherence decided). Reverts
    ///      with the module's own error while the status is not final.
    function _judged(uint8 status) internal view virtual returns (bool);

    function _penaltyBeneficiary() internal view override returns (address) {
        return treasury;
    }

    // ------------------------------------------------------------------ phases

    /// @dev The panel's state, for the module to read its phase and write its judgement.
    function _panel(uint256 id) internal view returns (Panel storage) {
        return _panels[id];
    }

    /// @dev Reverts with WrongStatus unless the module's status of `id` is `expected`.
    function _requireStatus(uint256 id, uint8 expected) internal view {
        uint8 status = _panels[id].status;
        if (status != expected) revert WrongStatus(status);
    }

    /// @dev Reverts unless the module's parameters give its panels usable windows, penalties and pool bonds,
    ///      and a seed block at least `seedDelay` >= 1 blocks after what the interested parties commit to (the
    ///      block holding their last transaction is no seed: its proposer could pick it). Modules call it after
    ///      storing new parameters.
    function _checkPanelParams(uint256 seedDelay) internal view {
        PanelParams memory p = _panelParams();
        if (
            seedDelay == 0 || p.commitWindow == 0 || p.revealWindow == 0 || p.noRevealPenaltyBps > BPS
                || p.incoherentPenaltyBps > BPS || _minPoolBond() == 0
        ) revert InvalidParams();
    }

    /// @dev Starts a panel: its draw is seeded by the hash of `seedBlock`, a block after anything the
    ///      interested parties commit to, so none of them chooses the seed. Fixes its seats' penalty rates.
    function _openPanel(uint256 id, uint256 seedBlock, uint8 status) internal {
        PanelParams memory p = _panelParams();
        Panel storage panel = _panels[id];
        panel.seedBlock = uint40(seedBlock);
        panel.status = status;
        // At most BPS (`_checkPanelParams`), so they fit.
        panel.noRevealPenaltyBps = uint16(p.noRevealPenaltyBps);
        panel.incoherentPenaltyBps = uint16(p.incoherentPenaltyBps);
    }

    /// @dev Reverts with TooEarly until the seed block is mined.
    function _requireSeedMined(uint256 id) internal view {
        uint256 seedBlock = _panels[id].seedBlock;
        if (block.number <= seedBlock) revert TooEarly(seedBlock);
    }

    /// @dev Whether the seed block of `id` (mined: `_requireSeedMined`) is past blockhash's 256-block horizon,
    ///      so that nothing can be drawn from it: `blockhash` reads the 256 blocks before the current one
    ///      (workers.protocol.consensus.seed_expired). Block arithmetic, not a zero hash, decides it.
    function _seedExpired(uint256 id) internal view returns (bool) {
        return block.number > uint256(_panels[id].seedBlock) + BLOCKHASH_HORIZON;
    }

    /// @notice Draws the panel of `id` and opens its commit window.
    /// @dev The module checks first that the seed block is mined (`_requireSeedMined`) and not expired
    ///      (`_seedExpired`); an expired seed ends the panel's submission or round instead: past
    ///      blockhash's 256-block horizon there is no hash to draw from, and a fresh seed block would let whoever
    ///      computed the old panel (anyone, once its seed block was mined) skip it for free by waiting
    ///      (DataConsensus expires the submission, TrainingRounds fails the round settling every trainer as
    ///      silent).
    /// @param id The submission or round.
    /// @param excluded Never seated (the informant of a submission; zero for none).
    function _draw(uint256 id, address excluded) internal {
        Panel storage panel = _panels[id];
        PanelParams memory p = _panelParams();
        bytes32 seedHash = blockhash(panel.seedBlock);
        bytes32 seed = keccak256(abi.encode(seedHash, id, address(this)));
        (address[] memory members, uint256[] memory weights) = _drawPanel(seed, excluded, _votes, _maxDraws);
        uint256 size = members.length;
        uint256 total = 0;
        for (uint256 seat = 0; seat < size; ++seat) {
            _seats[id][seat] = Seat(members[seat], uint96(weights[seat]));
            _seatOf[id][members[seat]] = seat + 1;
            total += weights[seat];
        }
        uint256 commitDeadline = block.number + p.commitWindow;
        uint256 revealDeadline = commitDeadline + p.revealWindow;
        panel.size = uint8(size);
        panel.weight = uint96(total);
        panel.commitDeadline = uint40(commitDeadline);
        panel.revealDeadline = uint40(revealDeadline);
        emit PanelDrawn(id, members, commitDeadline, revealDeadline);
    }

    /// @dev Records the caller's commitment, within the commit window.
    function _commit(uint256 id, bytes32 commitment) internal {
        uint256 seat = _seatIndex(id, msg.sender);
        if (block.number > _panels[id].commitDeadline) revert WindowClosed();
        if (commitment == bytes32(0)) revert EmptyCommitment();
        if (_ballots[id][seat] != bytes32(0)) revert AlreadyCommitted();
        _ballots[id][seat] = commitment;
        emit Committed(id, msg.sender);
    }

    /// @notice Checks the caller's reveal within the reveal window, then keeps `record` in place of the
    ///         commitment.
    /// @param id The submission or round.
    /// @param commitment What the module recomputes from the revealed content.
    /// @param record The module's account of the reveal (what `_revealed` and `_revealedRecord` return).
    /// @return seat The caller's seat.
    function _reveal(uint256 id, bytes32 commitment, bytes32 record) internal returns (uint256 seat) {
        seat = _seatIndex(id, msg.sender);
        Panel storage panel = _panels[id];
        if (block.number <= panel.commitDeadline) revert WindowNotOpen();
        if (block.number > panel.revealDeadline) revert WindowClosed();
        uint256 bit = uint256(1) << seat;
        if (panel.revealedMask & bit != 0) revert AlreadyRevealed();
        bytes32 committed = _ballots[id][seat];
        if (committed == bytes32(0)) revert NotCommitted();
        if (commitment != committed) revert CommitmentMismatch();
        _ballots[id][seat] = record;
        panel.revealedMask = uint32(panel.revealedMask | bit);
        panel.revealedWeight += _seats[id][seat].weight;
        emit Revealed(id, msg.sender);
    }

    /// @dev Reverts with TooEarly until the reveal window has passed, or every seat has revealed once the
    ///      commit window is over (nobody is left to wait for).
    function _requireRevealsOver(uint256 id) internal view {
        Panel storage panel = _panels[id];
        uint256 revealDeadline = panel.revealDeadline;
        bool allRevealed = panel.revealedMask == (uint256(1) << panel.size) - 1;
        if (block.number <= revealDeadline && !(allRevealed && block.number > panel.commitDeadline)) {
            revert TooEarly(revealDeadline);
        }
    }

    /// @dev The seats that revealed, in seat order, with their weights and the modules' records (as words: one
    ///      array type for all three keeps the ABI coders of a library call that takes them to one).
    function _revealed(uint256 id)
        internal
        view
        returns (uint256[] memory seats, uint256[] memory weights, uint256[] memory records)
    {
        Panel storage panel = _panels[id];
        uint256 size = panel.size;
        uint256 revealedMask = panel.revealedMask;
        seats = new uint256[](size);
        weights = new uint256[](size);
        records = new uint256[](size);
        uint256 count = 0;
        for (uint256 seat = 0; seat < size; ++seat) {
            // A bit test on our own mask, not a balance anyone can push.
            // slither-disable-next-line incorrect-equality
            if (revealedMask & (uint256(1) << seat) == 0) continue;
            seats[count] = seat;
            weights[count] = _seats[id][seat].weight;
            records[count] = uint256(_ballots[id][seat]);
            ++count;
        }
        assembly ("memory-safe") {
            // trim the arrays to the seats that revealed
            mstore(seats, count)
            mstore(weights, count)
            mstore(records, count)
        }
    }

    /// @dev The module's record of what `seat` revealed; zero while it has not revealed (or is no seat: the
    ///      mask has no bit for it).
    function _revealedRecord(uint256 id, uint256 seat) internal view returns (bytes32) {
        // A bit test on our own mask, not a balance anyone can push.
        // slither-disable-next-line incorrect-equality
        if (_panels[id].revealedMask & (uint256(1) << seat) == 0) return bytes32(0);
        return _ballots[id][seat];
    }

    /// @dev Settles one seat of a closed panel (see the contract's notice for who gets what), at the rates
    ///      fixed when it opened. Anyone may call it; a reward always goes to the seat's member.
    function _settle(uint256 id, uint256 seat) internal {
        Panel storage panel = _panels[id];
        bool judged = _judged(panel.status);
        if (seat >= panel.size) revert InvalidSeat(seat);
        uint256 bit = uint256(1) << seat;
        if (panel.settledMask & bit != 0) revert AlreadySettled();
        panel.settledMask = uint32(panel.settledMask | bit);
        Seat memory info = _seats[id][seat];
        uint256 reward = 0;
        uint256 penaltyBps = 0;
        if (panel.revealedMask & bit == 0) {
            penaltyBps = panel.noRevealPenaltyBps;
        } else if (judged) {
            if (panel.coherentMask & bit != 0) {
                reward = uint256(panel.payout) * info.weight / panel.coherentWeight;
            } else {
                penaltyBps = panel.incoherentPenaltyBps;
            }
        }
        uint256 penalty = _closeSeat(info.member, penaltyBps);
        emit Settled(id, info.member, reward, penalty);
        if (reward != 0) token.safeTransfer(info.member, reward);
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
    }

    function _seatIndex(uint256 id, address member) private view returns (uint256) {
        uint256 seatPlusOne = _seatOf[id][member];
        if (seatPlusOne == 0) revert NotOnPanel();
        return seatPlusOne - 1;
    }
}
