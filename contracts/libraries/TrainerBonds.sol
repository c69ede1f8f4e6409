// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IStakeRegistry} from "../interfaces/IStakeRegistry.sol";
import {ITrainingRounds} from "../interfaces/ITrainingRounds.sol";
import {SortitionPanel} from "../panel/SortitionPanel.sol";

/// @title TrainerBonds
/// @notice A training round's trainer slots and what they weigh: each slot locks a bond of its trainer's choice (at
///         least the round's minimum), which is its weight in the judgement (the deltas' reference is their
///         bond-weighted median), its share of the reward (pro rata) and the base of its loss (an outlier or silent
///         trainer loses `slashBps` of its own bond). Addresses are worth nothing: 3 slots bonding B each weigh,
///         earn and lose what 1 slot bonding 3B does.
/// @dev An externally linked library (public functions, called by DELEGATECALL on the round's slots): the slots'
///      bookkeeping (commit and displacement, claim, the release loop over at most 16 slots and its penalty sum) lives here so that
///      TrainingRounds keeps its bytecode room; FingerprintAggregation reads the bonds with `bondsByDelta`. Running by
///      DELEGATECALL, its registry calls and transfers come from TrainingRounds, which holds the locks and the
///      rewards, and its events and errors are TrainingRounds' (ITrainingRounds).
library TrainerBonds {
    using SafeERC20 for IERC20;

    uint256 private constant BPS = 10_000;
    /// @notice Most slots (trainers) per round: the round's delta masks are 16 bits wide.
    uint256 internal constant MAX_SLOTS = 16;

    /// @notice One trainer slot of a round, in one storage word.
    struct Slot {
        address trainer;
        uint8 deltaPlusOne; // 0 until revealed
        uint88 bond; // wei locked (SafeCast at commit)
    }

    /// @dev Each revealed delta's trainer bond (wei), in delta order: the deltas' weights in the judgement.
    function bondsByDelta(mapping(uint256 => Slot) storage slots, uint256 trainers, uint256 deltas)
        internal
        view
        returns (uint256[] memory bonds)
    {
        bonds = new uint256[](deltas);
        for (uint256 slot = 0; slot < trainers; ++slot) {
            Slot memory trainer = slots[slot];
            if (trainer.deltaPlusOne != 0) bonds[trainer.deltaPlusOne - 1] = trainer.bond;
        }
    }

    /// @notice What `release` slashes: the penalties of the slots whose delta is not in `keptMask`.
    /// @param slots The round's slots.
    /// @param trainers Committed slots.
    /// @param keptMask Bit d set: delta d is kept (settled later by a claim, unpenalised).
    /// @param slashBps Share of its own bond a released slot loses, in basis points.
    /// @return slashed Wei.
    function penalties(mapping(uint256 => Slot) storage slots, uint256 trainers, uint256 keptMask, uint256 slashBps)
        public
        view
        returns (uint256 slashed)
    {
        for (uint256 slot = 0; slot < trainers; ++slot) {
            (, uint256 bond) = _released(slots[slot], keptMask);
            slashed += bond * slashBps / BPS;
        }
    }

    /// @notice Settles every slot whose delta is not in `keptMask` (silent trainers always): unlocks its bond less
    ///         its penalty (`slashBps` of its own bond), which goes to `beneficiary`.
    /// @param slots The round's slots.
    /// @param trainers Committed slots.
    /// @param keptMask Bit d set: delta d is kept (settled later by a claim).
    /// @param slashBps Share of its own bond a released slot loses, in basis points.
    /// @param registry The StakeRegistry holding the calling module's locks.
    /// @param beneficiary Receives the penalties.
    function release(
        mapping(uint256 => Slot) storage slots,
        uint256 trainers,
        uint256 keptMask,
        uint256 slashBps,
        IStakeRegistry registry,
        address beneficiary
    ) public {
        for (uint256 slot = 0; slot < trainers; ++slot) {
            (address trainer, uint256 bond) = _released(slots[slot], keptMask);
            uint256 penalty = bond * slashBps / BPS;
            if (bond > penalty) registry.unlock(trainer, IStakeRegistry.Role.TRAINER, bond - penalty);
            if (penalty != 0) registry.slash(trainer, IStakeRegistry.Role.TRAINER, penalty, beneficiary);
        }
    }

    /// @notice Gives the caller a slot of a round's commit window, locking `bond` of its TRAINER stake
    ///         (DeltaCommitted): the next free slot while fewer than MAX_SLOTS are taken; once all are, the slot
    ///         with the smallest bond (the lowest index among equal ones) if `bond` is strictly above it, else
    ///         `RoundFull`. A displaced trainer did nothing wrong: its bond is unlocked in full, its slot and
    ///         commitment are overwritten and it may commit again with a larger bond (DeltaDisplaced).
    /// @dev Why displace: first come first served let a cartel's minimum bonds, committed from MAX_SLOTS addresses
    ///      the moment a round opens, fill every slot before honest trainers (who train first) could commit. With
    ///      displacement, keeping them out takes more bonded capital than theirs: the bond-majority assumption.
    ///      Only the commit window calls this, so no revealed delta is ever displaced. Everything is written
    ///      before the registry calls. The caller keeps the slot count: `min(trainers + 1, MAX_SLOTS)`.
    /// @param slots The round's slots.
    /// @param slotOf The round's slot index plus one by trainer (0: none).
    /// @param commitments The round's delta commitments by slot.
    /// @param round The round, for the events.
    /// @param trainers Slots taken before this commit.
    /// @param commitment The caller's delta commitment.
    /// @param bond Wei to lock (the caller checked the round's minimum); below 2^88 (SafeCast).
    /// @param registry The StakeRegistry holding the calling module's locks.
    function commit(
        mapping(uint256 => Slot) storage slots,
        mapping(address => uint256) storage slotOf,
        mapping(uint256 => bytes32) storage commitments,
        uint256 round,
        uint256 trainers,
        bytes32 commitment,
        uint256 bond,
        IStakeRegistry registry
    ) public {
        if (slotOf[msg.sender] != 0) revert SortitionPanel.AlreadyCommitted();
        (uint256 index, address displaced, uint256 displacedBond) = _slotFor(slots, trainers, bond);
        if (displaced != address(0)) delete slotOf[displaced];
        slotOf[msg.sender] = index + 1;
        slots[index] = Slot(msg.sender, 0, SafeCast.toUint88(bond));
        commitments[index] = commitment;
        if (displaced != address(0)) {
            emit ITrainingRounds.DeltaDisplaced(round, displaced, index, displacedBond);
            registry.unlock(displaced, IStakeRegistry.Role.TRAINER, displacedBond);
        }
        emit ITrainingRounds.DeltaCommitted(round, msg.sender, index, bond);
        registry.lock(msg.sender, IStakeRegistry.Role.TRAINER, bond);
    }

    /// @dev The slot a commit of `bond` takes: the next free one (nobody displaced), else the smallest bond's (the
    ///      lowest index among equal ones) with its trainer and bond if `bond` is strictly above it, else RoundFull.
    function _slotFor(mapping(uint256 => Slot) storage slots, uint256 trainers, uint256 bond)
        private
        view
        returns (uint256 index, address displaced, uint256 displacedBond)
    {
        if (trainers < MAX_SLOTS) return (trainers, address(0), 0);
        displacedBond = type(uint256).max;
        for (uint256 slot = 0; slot < trainers; ++slot) {
            Slot memory held = slots[slot];
            if (held.bond < displacedBond) (index, displaced, displacedBond) = (slot, held.trainer, held.bond);
        }
        if (bond <= displacedBond) revert ITrainingRounds.RoundFull();
    }

    /// @notice Settles a kept slot of an ended round (its trainer claims): an accepted delta of a finalized round
    ///         gets its bond unlocked and `pool * bond / acceptedBond` (wei, rounded down: pro rata to the bond,
    ///         so a share does not depend on how many addresses a party's bond is split over); a revealed delta
    ///         of a failed round gets its bond unlocked; anything else reverts `NothingToClaim`.
    /// @param slot The trainer's slot.
    /// @param round The round, for TrainerSettled.
    /// @param status The round's status (an ITrainingRounds.Status).
    /// @param acceptedMask Bit d set: delta d was accepted.
    /// @param pool The round's trainer reward pool, in wei.
    /// @param acceptedBond The accepted deltas' summed bond, in wei.
    /// @param registry The StakeRegistry holding the calling module's locks.
    /// @param token The reward token.
    function claim(
        Slot storage slot,
        uint256 round,
        uint256 status,
        uint256 acceptedMask,
        uint256 pool,
        uint256 acceptedBond,
        IStakeRegistry registry,
        IERC20 token
    ) public {
        Slot memory trainer = slot;
        uint256 deltaPlusOne = trainer.deltaPlusOne;
        // The round's own phase, set by finalize: nothing anyone can push to an exact value.
        // slither-disable-next-line incorrect-equality
        bool accepted = status == uint256(ITrainingRounds.Status.Finalized) && deltaPlusOne != 0
            && acceptedMask & (uint256(1) << (deltaPlusOne - 1)) != 0;
        // slither-disable-next-line incorrect-equality
        bool released = status == uint256(ITrainingRounds.Status.Failed) && deltaPlusOne != 0;
        if (!accepted && !released) revert ITrainingRounds.NothingToClaim();
        uint256 reward = accepted ? pool * trainer.bond / acceptedBond : 0;
        emit ITrainingRounds.TrainerSettled(round, trainer.trainer, reward);
        registry.unlock(trainer.trainer, IStakeRegistry.Role.TRAINER, trainer.bond);
        if (reward != 0) token.safeTransfer(trainer.trainer, reward);
    }

    /// @dev A slot's trainer and, unless its delta is kept, its bond (0 for a kept one).
    function _released(Slot storage slot, uint256 keptMask) private view returns (address, uint256) {
        Slot memory trainer = slot;
        if (trainer.deltaPlusOne != 0 && keptMask & (uint256(1) << (trainer.deltaPlusOne - 1)) != 0) {
            return (trainer.trainer, 0);
        }
        return (trainer.trainer, trainer.bond);
    }
}
