// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {DeepshardToken} from "./DeepshardToken.sol";
import {IEmission} from "../interfaces/IEmission.sol";
import {FixedPointMath} from "../libraries/FixedPointMath.sol";

/// @title Emission
/// @notice Mints DSH rewards from a per-epoch budget that decays geometrically (halving-style).
///         Budget of epoch e = initialEpochBudget * decayPerEpoch^e. Modules holding DRAWER_ROLE
///         (data consensus, training rounds) draw from the current epoch's budget; whatever an epoch
///         leaves undrawn is never minted. What modules holding VALUE_SOURCE_ROLE draw (the rewards of accepted
///         data and of training) is the value the network created: it accumulates here, in `valueCreated`, the
///         one place WeightAccess reads it from (a storage node's audit pay is a cost, not value created).
contract Emission is IEmission, AccessControl {
    using FixedPointMath for uint256;

    /// @notice Role of the protocol modules allowed to draw rewards.
    bytes32 public constant DRAWER_ROLE = keccak256("DRAWER_ROLE");
    /// @notice Role of the drawers whose draws count as value created (DataConsensus, TrainingRounds).
    bytes32 public constant VALUE_SOURCE_ROLE = keccak256("VALUE_SOURCE_ROLE");

    /// @notice The token this contract deployed and alone can mint.
    DeepshardToken public immutable token;
    /// @notice Timestamp at which epoch 0 starts.
    uint256 public immutable genesisTime;
    /// @notice Length of an epoch in seconds.
    uint256 public immutable epochDuration;
    /// @notice Budget of epoch 0, in wei.
    uint256 public immutable initialEpochBudget;
    /// @notice Budget ratio between consecutive epochs, WAD (0.5e18 halves every epoch).
    uint256 public immutable decayPerEpoch;

    /// @notice Amount already minted from each epoch's budget.
    mapping(uint256 epoch => uint256 amount) public drawnInEpoch;
    /// @notice Cumulative value created: everything drawn by VALUE_SOURCE_ROLE holders, in wei.
    uint256 public valueCreated;

    error ZeroEpochDuration();
    error DecayAboveOne(uint256 decayPerEpoch);
    error ZeroAmount();
    error ZeroAddress();
    error ExceedsEpochBudget(uint256 requested, uint256 remaining);
    error ExceedsCap(uint256 requested, uint256 remaining);

    /// @notice Deploys Emission and, through it, the DSH token with its genesis allocation.
    /// @param admin Receives DEFAULT_ADMIN_ROLE (the deployer, who hands it to governance after wiring).
    /// @param cap Hard cap of the token's supply, in wei.
    /// @param genesisRecipient Receives the genesis allocation.
    /// @param genesisSupply Genesis allocation, in wei.
    /// @param epochDuration_ Seconds per epoch.
    /// @param initialEpochBudget_ Budget of epoch 0, in wei.
    /// @param decayPerEpoch_ WAD ratio between consecutive budgets, at most 1e18.
    constructor(
        address admin,
        uint256 cap,
        address genesisRecipient,
        uint256 genesisSupply,
        uint256 epochDuration_,
        uint256 initialEpochBudget_,
        uint256 decayPerEpoch_
    ) {
        if (admin == address(0)) revert ZeroAddress();
        if (epochDuration_ == 0) revert ZeroEpochDuration();
        if (decayPerEpoch_ > FixedPointMath.WAD) revert DecayAboveOne(decayPerEpoch_);
        token = new DeepshardToken(cap, genesisRecipient, genesisSupply);
        genesisTime = block.timestamp;
        epochDuration = epochDuration_;
        initialEpochBudget = initialEpochBudget_;
        decayPerEpoch = decayPerEpoch_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IEmission
    function currentEpoch() public view returns (uint256) {
        return (block.timestamp - genesisTime) / epochDuration;
    }

    /// @inheritdoc IEmission
    function epochBudget(uint256 epoch) public view returns (uint256) {
        return initialEpochBudget.mulWad(decayPerEpoch.powWad(epoch));
    }

    /// @inheritdoc IEmission
    function available() external view returns (uint256) {
        uint256 epoch = currentEpoch();
        uint256 budgetLeft = epochBudget(epoch) - drawnInEpoch[epoch];
        uint256 capLeft = token.cap() - token.totalSupply();
        return budgetLeft < capLeft ? budgetLeft : capLeft;
    }

    /// @inheritdoc IEmission
    /// @param to Recipient of the reward (the module itself when it pays out by pull).
    /// @param amount Amount in wei; must fit in what is left of this epoch's budget and of the cap.
    function draw(address to, uint256 amount) external onlyRole(DRAWER_ROLE) {
        if (amount == 0) revert ZeroAmount();
        if (to == address(0)) revert ZeroAddress();
        uint256 epoch = currentEpoch();
        uint256 drawn = drawnInEpoch[epoch];
        uint256 budgetLeft = epochBudget(epoch) - drawn;
        if (amount > budgetLeft) revert ExceedsEpochBudget(amount, budgetLeft);
        uint256 capLeft = token.cap() - token.totalSupply();
        if (amount > capLeft) revert ExceedsCap(amount, capLeft);
        drawnInEpoch[epoch] = drawn + amount;
        if (hasRole(VALUE_SOURCE_ROLE, msg.sender)) valueCreated += amount;
        emit Drawn(msg.sender, to, epoch, amount);
        token.mint(to, amount);
    }
}
