// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {IStakeRegistry} from "../interfaces/IStakeRegistry.sol";
import {SortitionTree} from "../libraries/SortitionTree.sol";

/// @title SortitionPool
/// @notice Shared behaviour of the modules that draw stake-weighted panels (curators for data, evaluators for
///         training rounds): members lock part of their stake in `poolRole` as a pool bond, which is both
///         their weight in draws and what their penalties are taken from.
/// @dev A member's bond stays locked while it holds an unsettled panel seat, so a penalty can always be
///      collected. Draws cost O(log n) per ticket through a SortitionTree; nothing loops over members.
abstract contract SortitionPool {
    using SortitionTree for SortitionTree.Tree;

    struct PoolMember {
        uint32 index; // position in the sortition tree, 0 before the first join
        uint32 openPanels; // panel seats drawn but not yet settled
        uint96 bond; // stake this contract holds locked in the registry
    }

    /// @notice The StakeRegistry holding the bonds (this contract needs its MODULE_ROLE).
    IStakeRegistry public immutable registry;
    /// @notice The role whose stake members lock.
    IStakeRegistry.Role public immutable poolRole;
    /// @notice Members that ever joined (tree positions in use).
    uint256 public poolMemberCount;
    /// @notice A member's tree position, unsettled seats and bond.
    mapping(address member => PoolMember) public poolMembers;
    /// @notice The member at a tree position (1-based).
    mapping(uint256 index => address member) public poolMemberAt;
    SortitionTree.Tree private _tree;

    /// @notice `member` locked `amount` more stake as its pool bond.
    /// @param member The member.
    /// @param amount Wei added.
    /// @param bond Its bond after it, in wei.
    event PoolJoined(address indexed member, uint256 amount, uint256 bond);
    /// @notice `member` left the pool and got its bond unlocked.
    /// @param member The member.
    /// @param bond Wei unlocked.
    event PoolLeft(address indexed member, uint256 bond);

    error PoolFull();
    error PoolBondTooSmall(uint256 bond, uint256 minPoolBond);
    error NotInPool();
    error OpenPanels(uint256 count);
    error NoEligibleMembers();
    error AmountTooLarge(uint256 amount);

    constructor(IStakeRegistry registry_, IStakeRegistry.Role role) {
        registry = registry_;
        poolRole = role;
    }

    /// @notice Locks `amount` more of the caller's stake in `poolRole` as its pool bond.
    /// @param amount Amount in wei; the resulting bond must reach the module's minimum pool bond.
    function joinPool(uint256 amount) external {
        if (amount > type(uint96).max) revert AmountTooLarge(amount);
        PoolMember storage member = poolMembers[msg.sender];
        uint256 bond = member.bond + amount;
        uint256 minimum = _minPoolBond();
        if (bond < minimum || amount == 0) revert PoolBondTooSmall(bond, minimum);
        uint256 index = member.index;
        if (index == 0) {
            index = ++poolMemberCount;
            if (index > SortitionTree.CAPACITY) revert PoolFull();
            member.index = uint32(index);
            poolMemberAt[index] = msg.sender;
        }
        member.bond = uint96(bond);
        _tree.add(index, amount);
        emit PoolJoined(msg.sender, amount, bond);
        registry.lock(msg.sender, poolRole, amount);
    }

    /// @notice Leaves the pool and unlocks the whole bond. Every drawn seat must be settled first.
    function leavePool() external {
        PoolMember storage member = poolMembers[msg.sender];
        uint256 bond = member.bond;
        if (bond == 0) revert NotInPool();
        if (member.openPanels != 0) revert OpenPanels(member.openPanels);
        _takeBond(member, bond);
        emit PoolLeft(msg.sender, bond);
        registry.unlock(msg.sender, poolRole, bond);
    }

    /// @notice Sum of all pool bonds: the total weight of a draw.
    function poolWeight() external view returns (uint256) {
        return _tree.total;
    }

    /// @dev The smallest bond a member may hold (a governance parameter of the module).
    function _minPoolBond() internal view virtual returns (uint256);

    /// @notice Stake-weighted draws with replacement, one vote per draw (NoEligibleMembers when nobody can be
    ///         seated).
    /// @dev Kleros's rule, "one draw = one vote" (the Kleros court draws jurors in proportion to their staked
    ///      tokens, with replacement, and a juror drawn k times casts k votes): every ticket is a vote, so a
    ///      member's expected votes are `votes` times its share of the pool however its stake is split among
    ///      addresses, and a cartel wins half the votes with a binomial tail probability, the same for one
    ///      address or many. (Drawing distinct members instead seats a large bond almost surely, with its whole
    ///      bond as weight.) A seat is a distinct member; its weight is its number of draws. A ticket landing on
    ///      `excluded` is drawn again (rejection sampling keeps the others' chances proportional to their bonds),
    ///      at most `maxDraws` tickets in all, so the loop stays bounded and a pool that is mostly `excluded`
    ///      yields fewer votes. Seats number at most `votes`, so `votes <= 32` keeps them within the modules'
    ///      uint32 seat masks. Each drawn member gets one open seat until `_closeSeat`.
    /// @param seed Randomness from a block the caller cannot choose.
    /// @param excluded Never drawn.
    /// @param votes Draws that count (the panel's total weight when no ticket is redrawn past `maxDraws`).
    /// @param maxDraws Most tickets drawn.
    /// @return members The drawn members in order of first draw, at most `votes`.
    /// @return weights Their numbers of draws (votes).
    function _drawPanel(bytes32 seed, address excluded, uint256 votes, uint256 maxDraws)
        internal
        returns (address[] memory members, uint256[] memory weights)
    {
        uint256 total = _tree.total;
        if (total == 0) revert NoEligibleMembers();
        members = new address[](votes);
        weights = new uint256[](votes);
        uint256 size = 0;
        uint256 counted = 0;
        for (uint256 draw = 0; draw < maxDraws && counted < votes; ++draw) {
            // The seed must come from a block the caller cannot choose (see the modules): then only that
            // block's proposer could bias it, by withholding the block.
            // slither-disable-next-line weak-prng
            address candidate = poolMemberAt[_tree.select(uint256(keccak256(abi.encode(seed, draw))) % total)];
            if (candidate == excluded) continue;
            ++counted;
            uint256 seat = 0;
            while (seat < size && members[seat] != candidate) ++seat;
            if (seat == size) {
                ++poolMembers[candidate].openPanels;
                members[size] = candidate;
                ++size;
            }
            ++weights[seat];
        }
        if (size == 0) revert NoEligibleMembers();
        assembly {
            // trim both arrays to the seats actually drawn
            mstore(members, size)
            mstore(weights, size)
        }
    }

    /// @dev Where penalties go (read only when there is one: it is a cold storage read in the modules).
    function _penaltyBeneficiary() internal view virtual returns (address);

    /// @dev Closes a seat drawn by `_drawPanel`, taking `penaltyBps` of the member's current bond to the
    ///      penalty beneficiary. Returns the penalty.
    function _closeSeat(address memberAddress, uint256 penaltyBps) internal returns (uint256 penalty) {
        PoolMember storage member = poolMembers[memberAddress];
        --member.openPanels;
        penalty = uint256(member.bond) * penaltyBps / 10_000;
        if (penalty == 0) return 0;
        _takeBond(member, penalty);
        registry.slash(memberAddress, poolRole, penalty, _penaltyBeneficiary());
    }

    /// @dev Takes `amount` off a member's bond and its weight in draws.
    function _takeBond(PoolMember storage member, uint256 amount) private {
        member.bond -= uint96(amount);
        _tree.remove(member.index, amount);
    }
}
