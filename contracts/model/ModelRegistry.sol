// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IModelRegistry} from "../interfaces/IModelRegistry.sol";

/// @title ModelRegistry
/// @notice The lineage of the network's model: every version is its parent plus one LoRA delta, produced by a
///         training round. Version 1 is the genesis model, registered at deployment.
/// @dev CIDs are stored in binary form. Lineage queries walk parent links with a caller-given bound.
contract ModelRegistry is IModelRegistry, AccessControl {
    /// @notice Role of the module that registers versions (TrainingRounds).
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");
    /// @notice Role of whoever publishes a version's encrypted shards (the shard manifest).
    bytes32 public constant PUBLISHER_ROLE = keccak256("PUBLISHER_ROLE");
    /// @notice Id of the genesis version.
    uint256 public constant GENESIS = 1;
    /// @notice Longest CID, in bytes.
    uint256 public constant MAX_CID_LENGTH = 64;

    struct Version {
        uint64 parent; // 0 for the genesis
        uint64 round; // 0 for the genesis
        uint64 registeredBlock;
        uint256 valueCreated; // rewards the round that made it paid out
        bytes deltaCid; // the LoRA delta (for the genesis: the base weights)
        bytes shardManifestCid; // the encrypted shards' manifest, once published
        bytes32 weightsHash; // hash of the version's full weights (workers.ml.models.state_dict_hash), published with it
    }

    /// @notice Number of versions (the newest id).
    uint256 public latestVersion;
    mapping(uint256 id => Version) private _versions;

    /// @notice A version joined the lineage.
    /// @param id The new version.
    /// @param parent The version it was trained on.
    /// @param round The training round that produced it.
    /// @param deltaCid Binary CID of its LoRA delta.
    /// @param valueCreated Rewards (wei) the round paid out.
    event VersionRegistered(
        uint256 indexed id, uint256 indexed parent, uint256 indexed round, bytes deltaCid, uint256 valueCreated
    );
    /// @notice A version's encrypted shards were published.
    /// @param id The version.
    /// @param shardManifestCid Binary CID of the shard manifest.
    /// @param weightsHash Hash of the version's full weights, which the shards assemble into.
    event ShardManifestPublished(uint256 indexed id, bytes shardManifestCid, bytes32 weightsHash);

    error InvalidCid();
    error UnknownVersion(uint256 id);
    error AlreadyPublished(uint256 id);
    error InvalidWeightsHash();

    /// @notice Deploys the registry with the genesis model as version 1.
    /// @param admin Governance: receives DEFAULT_ADMIN_ROLE.
    /// @param genesisCid CID of the genesis model's weights.
    constructor(address admin, bytes memory genesisCid) {
        _checkCid(genesisCid);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _register(0, 0, genesisCid, 0);
    }

    /// @notice Registers the child of `parent` that round `round` produced.
    /// @param parent An existing version.
    /// @param round The training round.
    /// @param deltaCid CID of the accepted LoRA delta.
    /// @param valueCreated Rewards the round paid out, in wei.
    /// @return id The new version.
    function registerVersion(uint256 parent, uint256 round, bytes calldata deltaCid, uint256 valueCreated)
        external
        onlyRole(REGISTRAR_ROLE)
        returns (uint256 id)
    {
        if (parent == 0 || parent > latestVersion) revert UnknownVersion(parent);
        _checkCid(deltaCid);
        return _register(parent, round, deltaCid, valueCreated);
    }

    /// @notice Records the manifest of a version's encrypted shards and the hash of the weights they assemble
    ///         into (once). The hash is the publisher's statement, public and checkable: anyone can rebuild the
    ///         version from its lineage (the genesis plus each delta) and compare; buyers and inference nodes check
    ///         the weights they assemble or serve against it.
    /// @param id The version.
    /// @param shardManifestCid CID of the shard manifest.
    /// @param weightsHash Hash of the version's full weights (`workers.ml.models.state_dict_hash`, non-zero).
    function publishShards(uint256 id, bytes calldata shardManifestCid, bytes32 weightsHash)
        external
        onlyRole(PUBLISHER_ROLE)
    {
        if (id == 0 || id > latestVersion) revert UnknownVersion(id);
        _checkCid(shardManifestCid);
        if (weightsHash == bytes32(0)) revert InvalidWeightsHash();
        Version storage version = _versions[id];
        if (version.shardManifestCid.length != 0) revert AlreadyPublished(id);
        version.shardManifestCid = shardManifestCid;
        version.weightsHash = weightsHash;
        emit ShardManifestPublished(id, shardManifestCid, weightsHash);
    }

    /// @notice Version `id`.
    /// @param id A registered version.
    /// @return Its record.
    function getVersion(uint256 id) external view returns (Version memory) {
        if (id == 0 || id > latestVersion) revert UnknownVersion(id);
        return _versions[id];
    }

    /// @notice Up to `maxDepth` versions from `id` back toward the genesis: `id`, its parent, and so on.
    /// @param id The version to start from.
    /// @param maxDepth Most versions to return (bounds the walk).
    /// @return ids The versions, newest first.
    function lineage(uint256 id, uint256 maxDepth) external view returns (uint256[] memory ids) {
        if (id == 0 || id > latestVersion) revert UnknownVersion(id);
        ids = new uint256[](maxDepth);
        uint256 count = 0;
        for (uint256 current = id; current != 0 && count < maxDepth; current = _versions[current].parent) {
            ids[count] = current;
            ++count;
        }
        assembly {
            mstore(ids, count)
        }
    }

    function _register(uint256 parent, uint256 round, bytes memory deltaCid, uint256 valueCreated)
        private
        returns (uint256 id)
    {
        id = ++latestVersion;
        Version storage version = _versions[id];
        version.parent = uint64(parent);
        version.round = uint64(round);
        version.registeredBlock = uint64(block.number);
        version.valueCreated = valueCreated;
        version.deltaCid = deltaCid;
        emit VersionRegistered(id, parent, round, deltaCid, valueCreated);
    }

    function _checkCid(bytes memory cid) private pure {
        if (cid.length == 0 || cid.length > MAX_CID_LENGTH) revert InvalidCid();
    }
}
