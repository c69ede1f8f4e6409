// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title IDataConsensus
/// @notice Events and phases of the informant data consensus, as workers and wallets see them (the curator
///         panel's events are SortitionPanel's).
interface IDataConsensus {
    /// @notice Life cycle of a submission. Voting covers both the commit and the reveal window; Expired: its
    ///         panel was not drawn within 256 blocks of its seed block.
    enum Status {
        None,
        AwaitingPanel,
        Voting,
        Accepted,
        Rejected,
        NoQuorum,
        Expired
    }

    /// @notice An informant proposed a dataset.
    /// @param id The submission.
    /// @param informant The proposer.
    /// @param manifestCid Binary CID of the dataset manifest.
    /// @param bond Wei of INFORMANT stake locked until the outcome.
    /// @param seedBlock The block whose hash seeds the curator panel.
    event Submitted(uint256 indexed id, address indexed informant, bytes manifestCid, uint256 bond, uint256 seedBlock);
    /// @notice Nobody drew the panel of `id` while its seed block's hash was readable: the submission ended
    ///         undrawn, `slashed` of the informant's bond went to the treasury and the rest was unlocked.
    /// @param id The submission.
    /// @param informant The informant.
    /// @param slashed Wei of INFORMANT stake taken.
    event SubmissionExpired(uint256 indexed id, address indexed informant, uint256 slashed);
    /// @notice The vote of `id` is closed.
    /// @param id The submission.
    /// @param status Accepted, Rejected or NoQuorum.
    /// @param consensus The five median scores (zeros without quorum).
    /// @param value The weighted sum of the medians, 0..10,000.
    /// @param threshold The threshold the value was held to.
    /// @param nextThreshold The threshold after this outcome.
    event Finalized(
        uint256 indexed id, Status status, uint8[5] consensus, uint256 value, uint256 threshold, uint256 nextThreshold
    );
    /// @notice The informant of an accepted submission took its reward.
    /// @param id The submission.
    /// @param informant The informant.
    /// @param amount Wei of DSH paid.
    event InformantRewardClaimed(uint256 indexed id, address indexed informant, uint256 amount);
    /// @notice Accepted datasets were taken into a training round.
    /// @param consumer The training module.
    /// @param ids The submissions taken.
    event DatasetsConsumed(address indexed consumer, uint256[] ids);

    /// @notice Marks accepted datasets as taken into a training round (CONSUMER_ROLE only).
    /// @param ids Accepted submissions not yet consumed.
    function consumeDatasets(uint256[] calldata ids) external;
}
