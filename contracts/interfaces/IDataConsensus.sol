// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

/// @title IDataConsensus
/// @notice Events and phases of the informant data consensus, as workers and wallets see them.
interface IDataConsensus {
    /// @notice Life cycle of a submission. Voting covers both the commit and the reveal window.
    enum Status {
        None,
        AwaitingPanel,
        Voting,
        Accepted,
        Rejected,
        NoQuorum
    }

    event Submitted(uint256 indexed id, address indexed informant, bytes manifestCid, uint256 bond, uint256 seedBlock);
    event PanelReseeded(uint256 indexed id, uint256 seedBlock);
    event PanelDrawn(uint256 indexed id, address[] curators, uint256 commitDeadline, uint256 revealDeadline);
    event Committed(uint256 indexed id, address indexed curator);
    event Revealed(uint256 indexed id, address indexed curator, uint8[5] scores);
    event Finalized(
        uint256 indexed id, Status status, uint8[5] consensus, uint256 value, uint256 threshold, uint256 nextThreshold
    );
    event Settled(uint256 indexed id, address indexed curator, uint256 reward, uint256 penalty);
    event InformantRewardClaimed(uint256 indexed id, address indexed informant, uint256 amount);
    event DatasetsConsumed(address indexed consumer, uint256[] ids);

    /// @notice Marks accepted datasets as taken into a training round (CONSUMER_ROLE only).
    function consumeDatasets(uint256[] calldata ids) external;
}
