// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title ITrainingRounds
/// @notice Phases and events of a training round, as trainer, evaluator and keeper workers see them (the
///         evaluator panel's events are SortitionPanel's).
interface ITrainingRounds {
    /// @notice Life cycle of a round. Training covers the trainers' commit and reveal windows; Evaluating
    ///         the evaluators' commit and reveal windows once their panel is drawn.
    enum Status {
        None,
        Training,
        AwaitingPanel,
        Evaluating,
        Finalized,
        Failed
    }

    /// @notice `claimTrainer` by a trainer with nothing to claim (an outlier or silent trainer, settled by
    ///         `finalize`, or a round not ended).
    error NothingToClaim();
    /// @notice `commitDelta` to a round whose slots are all taken with a bond not above the smallest committed one.
    error RoundFull();

    /// @notice A round opened.
    /// @param round The round.
    /// @param baseVersion The model version trainers fine-tune.
    /// @param datasetIds The accepted datasets it trains on.
    /// @param specHash Hash of the TrainingSpec every trainer follows.
    /// @param seed The seed fixing LoRA init, data order and probes.
    /// @param commitDeadline Last block for trainers' commits.
    /// @param revealDeadline Last block for trainers' reveals.
    event RoundOpened(
        uint256 indexed round,
        uint256 indexed baseVersion,
        uint256[] datasetIds,
        bytes32 specHash,
        bytes32 seed,
        uint256 commitDeadline,
        uint256 revealDeadline
    );
    /// @notice A trainer committed a delta.
    /// @param round The round.
    /// @param trainer The trainer.
    /// @param slot The trainer's slot in the round.
    /// @param bond Wei of TRAINER stake locked: the slot's weight in the judgement and the reward.
    event DeltaCommitted(uint256 indexed round, address indexed trainer, uint256 slot, uint256 bond);
    /// @notice A commit with a larger bond took a full round's smallest-bond slot (the lowest index among equal
    ///         bonds) during the commit window; the displaced trainer's bond was unlocked in full and it may
    ///         commit again with a bond above the round's smallest.
    /// @param round The round.
    /// @param trainer The displaced trainer.
    /// @param slot The slot it held (now the new commit's).
    /// @param bond Wei of TRAINER stake unlocked.
    event DeltaDisplaced(uint256 indexed round, address indexed trainer, uint256 slot, uint256 bond);
    /// @notice A trainer revealed its delta.
    /// @param round The round.
    /// @param trainer The trainer.
    /// @param delta The delta's index (reveal order).
    /// @param deltaCid Binary CID of the delta.
    event DeltaRevealed(uint256 indexed round, address indexed trainer, uint256 delta, bytes deltaCid);
    /// @notice A round ended.
    /// @param round The round.
    /// @param status Finalized or Failed.
    /// @param acceptedMask Bit d set: delta d was accepted.
    /// @param newVersion The version registered (0 if failed).
    /// @param trainerRewardPool Wei of DSH the accepted trainers claim, each `pool * bond / acceptedBond`.
    event RoundFinalized(
        uint256 indexed round, Status status, uint256 acceptedMask, uint256 newVersion, uint256 trainerRewardPool
    );
    /// @notice A delta was judged against the reference.
    /// @param round The round.
    /// @param delta The delta's index.
    /// @param distance L1 distance of its consensus fingerprint to the reference.
    /// @param accepted Whether the distance is within the tolerance.
    event DeltaJudged(uint256 indexed round, uint256 indexed delta, uint256 distance, bool accepted);
    /// @notice A trainer claimed its bond (and reward).
    /// @param round The round.
    /// @param trainer The trainer.
    /// @param reward Wei of DSH paid.
    event TrainerSettled(uint256 indexed round, address indexed trainer, uint256 reward);
}
