// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title ITrainingRounds
/// @notice Phases and events of a training round, as trainer, evaluator and keeper workers see them.
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

    event RoundOpened(
        uint256 indexed round,
        uint256 indexed baseVersion,
        uint256[] datasetIds,
        bytes32 specHash,
        bytes32 seed,
        uint256 commitDeadline,
        uint256 revealDeadline
    );
    event DeltaCommitted(uint256 indexed round, address indexed trainer, uint256 slot);
    event DeltaRevealed(uint256 indexed round, address indexed trainer, uint256 delta, bytes deltaCid);
    event EvaluatorsDrawn(uint256 indexed round, address[] evaluators, uint256 commitDeadline, uint256 revealDeadline);
    event FingerprintsCommitted(uint256 indexed round, address indexed evaluator);
    event FingerprintsRevealed(uint256 indexed round, address indexed evaluator);
    event RoundFinalized(
        uint256 indexed round, Status status, uint256 acceptedMask, uint256 newVersion, uint256 rewardPerTrainer
    );
    event DeltaJudged(uint256 indexed round, uint256 indexed delta, uint256 distance, bool accepted);
    event TrainerSettled(uint256 indexed round, address indexed trainer, uint256 reward);
    event EvaluatorSettled(uint256 indexed round, address indexed evaluator, uint256 reward, uint256 penalty);
}
