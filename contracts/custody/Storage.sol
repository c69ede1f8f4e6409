// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IEmission} from "../interfaces/IEmission.sol";
import {IStakeRegistry} from "../interfaces/IStakeRegistry.sol";
import {IStorage} from "../interfaces/IStorage.sol";
import {CustodyPayouts} from "./CustodyPayouts.sol";

/// @title Storage
/// @notice Staked storage nodes hold the encrypted shards of every model version in R >= 3 replicas, prove it in
///         audits at blocks nobody chooses, are paid for audited holding and slashed for a missed audit.
///
///         Replicas are unique per node: the publisher encrypts shard s for node n under a key derived from the
///         version key (HKDF, info = node address || shard index, see contracts/custody/README.md) and records
///         one Merkle root (workers.protocol.merkle: 1 KiB chunks, index-bound double-hashed leaves, OpenZeppelin
///         MerkleProof) and byte size per (version, shard, node). A node that dropped its copy cannot answer
///         from a peer's replica without the version key.
///
///         Assignment is rendezvous hashing (workers.protocol.storage): node n's score for (version, shard) is
///         keccak256(abi.encode(version, shard, n)); the shard goes to the highest-scored registered nodes
///         with room that never held it, until R replicas are live. The publisher names each holder and the
///         contract checks it is the next in that ranking, so the same rule assigns and repairs: when a
///         replica is released, expires unconfirmed or fails an audit, the next node in the ranking gets it.
///
///         Audits: audit epoch e's seed is the hash of block e * auditInterval, fixed in advance. Anyone calls
///         `challenge(e)` within 256 blocks of that block; the seed picks one confirmed replica and one chunk.
///         Its node answers with the chunk and its proof within `answerWindow` blocks; an answer that does not
///         verify reverts, so a wrong answer ends as a missing one, which anyone slashes after the window.
///         A passed audit pays the node 1/holders of the version's fee pot (the storage share of its access
///         fees) plus up to `auditEmission` from Emission. Holders want audits (they are paid only through
///         them), so nobody needs paying to call `challenge`.
/// @dev Every loop is bounded by MAX_NODES (ranking) or MAX_PROOF_LENGTH. Payments are pulled (`claim`).
contract Storage is IStorage, CustodyPayouts {
    /// @notice Role of the keeper that records replicas (it holds every version key; governance at first).
    bytes32 public constant PUBLISHER_ROLE = keccak256("PUBLISHER_ROLE");
    /// @notice Role of the contract that pays access fees into a version's pot (WeightAccess).
    bytes32 public constant FUNDER_ROLE = keccak256("FUNDER_ROLE");
    /// @notice Most registered nodes: bounds the ranking scan.
    uint256 public constant MAX_NODES = 64;
    /// @notice Fewest replicas per shard.
    uint256 public constant MIN_REPLICATION = 3;
    /// @notice Most replicas per shard.
    uint256 public constant MAX_REPLICATION = 16;
    /// @notice Chunk size of the replica Merkle tree (workers.protocol.merkle.CHUNK_BYTES).
    uint256 public constant CHUNK_BYTES = 1024;
    /// @notice Longest audit proof (a tree of 2**32 chunks).
    uint256 public constant MAX_PROOF_LENGTH = 32;
    /// @notice Longest endpoint (a multiaddr or URL), in bytes.
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;
    /// @notice Longest replica CID, in bytes (binary form, as ModelRegistry.MAX_CID_LENGTH).
    uint256 public constant MAX_CID_LENGTH = 64;
    /// @dev blockhash reaches back this many blocks.
    uint256 private constant BLOCKHASH_REACH = 256;

    /// @notice Life of a replica.
    enum ReplicaStatus {
        None,
        Assigned, // recorded by the publisher, waiting for the node's confirmation
        Holding, // confirmed: audited and paid
        Released, // given up by its node
        Failed // unconfirmed in time or a missed audit
    }

    /// @notice Governance's parameters. Windows in blocks, amounts in wei.
    struct Params {
        uint8 replication; // R, MIN_REPLICATION..MAX_REPLICATION
        uint32 confirmWindow; // blocks a node has to fetch, verify and confirm an assigned replica
        uint32 auditInterval; // blocks per audit epoch
        uint32 answerWindow; // blocks to answer a challenge
        uint96 nodeBond; // STORAGE stake locked while registered
        uint96 auditSlash; // taken from the bond for a missed audit or an expired assignment
        uint96 auditEmission; // drawn from Emission per passed audit (0: fees only)
    }

    /// @notice A registered node.
    struct Node {
        bool registered;
        uint64 capacity; // bytes offered
        uint64 used; // bytes of live replicas
        uint32 live; // live (assigned or holding) replicas
        uint96 bond; // locked bond left
        bytes endpoint; // multiaddr, peer id or URL
    }

    /// @notice One replica of a shard.
    struct Replica {
        bytes32 root; // Merkle root of this node's encrypted replica
        uint64 size; // bytes
        uint64 assignedBlock;
        uint64 openAudit; // epoch + 1 of the audit waiting for this replica's answer (0: none)
        uint32 auditIndex; // position in the audit set + 1 (0: not in it)
        ReplicaStatus status;
    }

    /// @notice A challenge.
    ///         Shard indices are uint32 in storage (`assign` bounds them) so that each record packs with the
    ///         node's address: shard 0 and shard 7 then cost the same gas to record.
    struct Audit {
        uint256 version;
        address node;
        uint64 chunkIndex;
        uint32 shard;
        uint64 deadline; // last block for the answer
        bool closed;
    }

    struct Holding {
        uint256 version;
        address node;
        uint32 shard;
    }

    /// @notice STORAGE stakes.
    IStakeRegistry public immutable stakes;
    /// @notice Emission (this contract needs DRAWER_ROLE for `auditEmission`, never VALUE_SOURCE_ROLE).
    IEmission public immutable emission;
    /// @notice Current parameters.
    Params public params;

    address[] private _nodeList;
    mapping(address node => Node) private _nodes;
    mapping(bytes32 key => Replica) private _replicas;
    mapping(uint256 version => mapping(uint256 shard => uint256)) private _liveReplicas;
    /// @notice Confirmed replicas of each version (the pot's divisor).
    mapping(uint256 version => uint256) public holdersOf;
    /// @notice Undistributed storage fees of each version, in wei.
    mapping(uint256 version => uint256) public potOf;
    Holding[] private _auditSet;
    mapping(uint256 epoch => Audit) private _audits;

    /// @notice A node registered.
    /// @param node The node.
    /// @param endpoint Where it serves replicas.
    /// @param capacity Bytes offered.
    event NodeRegistered(address indexed node, bytes endpoint, uint256 capacity);
    /// @notice A node left and its bond was unlocked.
    /// @param node The node.
    event NodeLeft(address indexed node);
    /// @notice The publisher recorded a node's replica of a shard.
    /// @param version The model version.
    /// @param shard The shard index.
    /// @param node The holder.
    /// @param root Merkle root of its replica.
    /// @param size Replica bytes.
    /// @param cid Binary CID of its replica (where the node fetches it; only logged, never stored).
    event ReplicaAssigned(
        uint256 indexed version, uint256 indexed shard, address indexed node, bytes32 root, uint256 size, bytes cid
    );
    /// @notice A node confirmed it holds its replica.
    /// @param version The model version.
    /// @param shard The shard index.
    /// @param node The holder.
    event ReplicaConfirmed(uint256 indexed version, uint256 indexed shard, address indexed node);
    /// @notice A replica stopped counting (released, expired or failed): the next node in the ranking repairs.
    /// @param version The model version.
    /// @param shard The shard index.
    /// @param node The former holder.
    /// @param status Released or Failed.
    event ReplicaLost(uint256 indexed version, uint256 indexed shard, address indexed node, ReplicaStatus status);
    /// @notice An audit was opened.
    /// @param epoch The audit epoch.
    /// @param version The model version.
    /// @param shard The shard index.
    /// @param node The challenged node.
    /// @param chunkIndex The chunk to produce.
    /// @param deadline Last block for the answer.
    event AuditOpened(
        uint256 indexed epoch,
        uint256 version,
        uint256 shard,
        address indexed node,
        uint256 chunkIndex,
        uint256 deadline
    );
    /// @notice A node answered its audit.
    /// @param epoch The audit epoch.
    /// @param node The node.
    /// @param fee Paid from the version's pot, in wei.
    /// @param emitted Drawn from Emission, in wei.
    event AuditPassed(uint256 indexed epoch, address indexed node, uint256 fee, uint256 emitted);
    /// @notice A node missed its audit.
    /// @param epoch The audit epoch.
    /// @param node The node.
    /// @param slashed Wei taken from its bond.
    event AuditMissed(uint256 indexed epoch, address indexed node, uint256 slashed);
    /// @notice Fees joined a version's pot.
    /// @param version The model version.
    /// @param amount Wei.
    event PotFunded(uint256 indexed version, uint256 amount);
    /// @notice Governance changed the parameters.
    /// @param params The new parameters.
    event ParamsSet(Params params);
    error InvalidParams();
    error InvalidEndpoint();
    error ZeroCapacity();
    error AlreadyRegistered(address node);
    error NotRegistered(address node);
    error TooManyNodes();
    error StillHolding(address node, uint256 live);
    error ReplicationReached(uint256 version, uint256 shard);
    error NotNextInRanking(address node, address expected);
    error InvalidReplica(bytes32 root, uint256 size);
    error InvalidCid();
    error ShardOutOfRange(uint256 shard);
    error WrongStatus(ReplicaStatus status);
    error ConfirmWindowClosed(uint256 deadline);
    error ConfirmWindowOpen(uint256 deadline);
    error UnderAudit(uint256 epoch);
    error SeedUnavailable(uint256 epoch, uint256 seedBlock);
    error AlreadyChallenged(uint256 epoch);
    error NothingToAudit();
    error UnknownAudit(uint256 epoch);
    error AuditClosed(uint256 epoch);
    error NotChallengedNode(address caller, address node);
    error AnswerWindowClosed(uint256 deadline);
    error AnswerWindowOpen(uint256 deadline);
    error InvalidProof();

    /// @notice Deploys Storage.
    /// @param stakes_ The StakeRegistry (this contract needs its MODULE_ROLE).
    /// @param emission_ Emission.
    /// @param token_ DSH.
    /// @param admin Governance (DEFAULT_ADMIN_ROLE).
    /// @param treasury_ Receives slashed bonds.
    /// @param params_ Initial parameters.
    constructor(
        IStakeRegistry stakes_,
        IEmission emission_,
        IERC20 token_,
        address admin,
        address treasury_,
        Params memory params_
    ) CustodyPayouts(token_, admin, treasury_) {
        if (address(stakes_) == address(0) || address(emission_) == address(0)) revert ZeroAddress();
        stakes = stakes_;
        emission = emission_;
        _setParams(params_);
    }

    // ---------------------------------------------------------------- nodes

    /// @notice Registers the caller as a storage node and locks `nodeBond` of its STORAGE stake.
    /// @param endpoint Where it serves replicas (1..MAX_ENDPOINT_LENGTH bytes).
    /// @param capacity Bytes it offers (> 0).
    function register(bytes calldata endpoint, uint64 capacity) external {
        if (endpoint.length == 0 || endpoint.length > MAX_ENDPOINT_LENGTH) revert InvalidEndpoint();
        if (capacity == 0) revert ZeroCapacity();
        Node storage node = _nodes[msg.sender];
        if (node.registered) revert AlreadyRegistered(msg.sender);
        if (_nodeList.length >= MAX_NODES) revert TooManyNodes();
        uint96 bond = params.nodeBond;
        node.registered = true;
        node.capacity = capacity;
        node.bond = bond;
        node.endpoint = endpoint;
        _nodeList.push(msg.sender);
        emit NodeRegistered(msg.sender, endpoint, capacity);
        stakes.lock(msg.sender, IStakeRegistry.Role.STORAGE, bond);
    }

    /// @notice Leaves: the caller must have released every replica first; its bond left is unlocked.
    function leave() external {
        Node storage node = _nodes[msg.sender];
        if (!node.registered) revert NotRegistered(msg.sender);
        if (node.live != 0) revert StillHolding(msg.sender, node.live);
        uint256 bond = node.bond;
        delete _nodes[msg.sender];
        uint256 last = _nodeList.length - 1;
        for (uint256 i = 0; i <= last; ++i) {
            if (_nodeList[i] == msg.sender) {
                _nodeList[i] = _nodeList[last];
                break;
            }
        }
        _nodeList.pop();
        emit NodeLeft(msg.sender);
        if (bond != 0) stakes.unlock(msg.sender, IStakeRegistry.Role.STORAGE, bond);
    }

    // ---------------------------------------------------------------- replicas

    /// @notice Records `node`'s replica of (`version`, `shard`): the node must be the next in the shard's
    ///         rendezvous ranking (`nextHolder`) and the shard below R live replicas. Used for the first R
    ///         holders and for every repair.
    /// @param version The model version.
    /// @param shard The shard index (at most 2^32 - 1).
    /// @param node The holder.
    /// @param root Merkle root of the node's replica (non-zero).
    /// @param size Replica bytes (> 0).
    /// @param cid Binary CID of the node's replica (1..MAX_CID_LENGTH bytes): logged in `ReplicaAssigned` so the
    ///        node (a repair's too) learns where to fetch it from the chain; the root and size are what it checks.
    function assign(uint256 version, uint256 shard, address node, bytes32 root, uint64 size, bytes calldata cid)
        external
        onlyRole(PUBLISHER_ROLE)
    {
        if (root == bytes32(0) || size == 0) revert InvalidReplica(root, size);
        if (cid.length == 0 || cid.length > MAX_CID_LENGTH) revert InvalidCid();
        if (shard > type(uint32).max) revert ShardOutOfRange(shard);
        uint256 live = _liveReplicas[version][shard];
        if (live >= params.replication) revert ReplicationReached(version, shard);
        address expected = nextHolder(version, shard, size);
        if (node != expected) revert NotNextInRanking(node, expected);
        _replicas[_key(version, shard, node)] = Replica({
            root: root,
            size: size,
            assignedBlock: uint64(block.number),
            openAudit: 0,
            auditIndex: 0,
            status: ReplicaStatus.Assigned
        });
        _liveReplicas[version][shard] = live + 1;
        Node storage holder = _nodes[node];
        holder.used += size;
        ++holder.live;
        emit ReplicaAssigned(version, shard, node, root, size, cid);
    }

    /// @notice Confirms that the caller fetched, verified and holds its assigned replica (within
    ///         `confirmWindow` blocks of the assignment); from now on it is audited and paid.
    /// @param version The model version.
    /// @param shard The shard index.
    function confirm(uint256 version, uint256 shard) external {
        Replica storage replica = _replicas[_key(version, shard, msg.sender)];
        if (replica.status != ReplicaStatus.Assigned) revert WrongStatus(replica.status);
        uint256 deadline = uint256(replica.assignedBlock) + params.confirmWindow;
        if (block.number > deadline) revert ConfirmWindowClosed(deadline);
        replica.status = ReplicaStatus.Holding;
        _auditSet.push(Holding({version: version, node: msg.sender, shard: uint32(shard)}));
        replica.auditIndex = uint32(_auditSet.length);
        ++holdersOf[version];
        emit ReplicaConfirmed(version, shard, msg.sender);
    }

    /// @notice Gives up the caller's replica (not while it is challenged): the next node in the ranking repairs.
    /// @param version The model version.
    /// @param shard The shard index.
    function release(uint256 version, uint256 shard) external {
        Replica storage replica = _replicas[_key(version, shard, msg.sender)];
        ReplicaStatus status = replica.status;
        if (status != ReplicaStatus.Assigned && status != ReplicaStatus.Holding) revert WrongStatus(status);
        if (replica.openAudit != 0) revert UnderAudit(replica.openAudit - 1);
        _drop(version, shard, msg.sender, replica, ReplicaStatus.Released);
    }

    /// @notice Fails an assignment its node did not confirm within `confirmWindow`; slashes up to
    ///         `auditSlash` of its bond. Anyone can call it.
    /// @param version The model version.
    /// @param shard The shard index.
    /// @param node The assigned node.
    function expire(uint256 version, uint256 shard, address node) external {
        Replica storage replica = _replicas[_key(version, shard, node)];
        if (replica.status != ReplicaStatus.Assigned) revert WrongStatus(replica.status);
        uint256 deadline = uint256(replica.assignedBlock) + params.confirmWindow;
        if (block.number <= deadline) revert ConfirmWindowOpen(deadline);
        _drop(version, shard, node, replica, ReplicaStatus.Failed);
        _slash(node);
    }

    // ---------------------------------------------------------------- audits

    /// @notice Opens audit epoch `epoch`: the hash of block `epoch * auditInterval` (fixed in advance, within
    ///         the last 256 blocks) picks one confirmed replica and one of its chunks. Anyone can call it, once
    ///         per epoch; a seed left unused past 256 blocks is gone (no re-roll).
    /// @param epoch The audit epoch.
    function challenge(uint256 epoch) external {
        uint256 seedBlock = epoch * params.auditInterval;
        if (seedBlock >= block.number || block.number - seedBlock > BLOCKHASH_REACH) {
            revert SeedUnavailable(epoch, seedBlock);
        }
        Audit storage audit = _audits[epoch];
        if (audit.deadline != 0) revert AlreadyChallenged(epoch);
        uint256 count = _auditSet.length;
        if (count == 0) revert NothingToAudit();
        uint256 seed = uint256(keccak256(abi.encode(blockhash(seedBlock), epoch)));
        // The seed comes from a block fixed by the epoch, not by the caller: only that block's proposer could bias
        // it, by withholding the block (as the panels' draws, SortitionPool).
        // slither-disable-next-line weak-prng
        Holding memory target = _auditSet[seed % count];
        Replica storage replica = _replicas[_key(target.version, target.shard, target.node)];
        replica.openAudit = uint64(epoch + 1);
        // slither-disable-next-line weak-prng
        uint256 chunkIndex = (seed >> 128) % _chunkCount(replica.size);
        uint256 deadline = block.number + params.answerWindow;
        _audits[epoch] = Audit({
            version: target.version,
            shard: target.shard,
            node: target.node,
            chunkIndex: uint64(chunkIndex),
            deadline: uint64(deadline),
            closed: false
        });
        emit AuditOpened(epoch, target.version, target.shard, target.node, chunkIndex, deadline);
    }

    /// @notice Answers audit `epoch` with the challenged chunk and its Merkle proof against the replica's root.
    ///         A proof that does not verify reverts (`InvalidProof`); the node is then paid its share of the
    ///         version's pot and up to `auditEmission`.
    /// @param epoch The audit epoch.
    /// @param chunk The chunk's bytes (CHUNK_BYTES, the last chunk may be shorter).
    /// @param proof Sibling hashes from the leaf up (at most MAX_PROOF_LENGTH).
    function answer(uint256 epoch, bytes calldata chunk, bytes32[] calldata proof) external {
        Audit storage audit = _openAudit(epoch);
        if (msg.sender != audit.node) revert NotChallengedNode(msg.sender, audit.node);
        Replica storage replica = _replicas[_key(audit.version, audit.shard, msg.sender)];
        // A replica two audits named, failed by the other one's miss, earns nothing more.
        if (replica.status != ReplicaStatus.Holding) revert WrongStatus(replica.status);
        if (block.number > audit.deadline) revert AnswerWindowClosed(audit.deadline);
        uint256 index = audit.chunkIndex;
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encodePacked(index, chunk))));
        if (
            proof.length > MAX_PROOF_LENGTH || chunk.length != _chunkLength(replica.size, index)
                || !MerkleProof.verifyCalldata(proof, replica.root, leaf)
        ) revert InvalidProof();
        audit.closed = true;
        replica.openAudit = 0;
        uint256 version = audit.version;
        uint256 fee = potOf[version] / holdersOf[version];
        potOf[version] -= fee;
        uint256 emitted = params.auditEmission;
        uint256 available = emission.available();
        if (emitted > available) emitted = available;
        owed[msg.sender] += fee + emitted;
        emit AuditPassed(epoch, msg.sender, fee, emitted);
        if (emitted != 0) emission.draw(address(this), emitted);
    }

    /// @notice Closes an audit nobody answered in time: slashes up to `auditSlash` of the node's bond and fails
    ///         the replica (the next node in the ranking repairs). Anyone can call it.
    /// @param epoch The audit epoch.
    function slashMissed(uint256 epoch) external {
        Audit storage audit = _openAudit(epoch);
        if (block.number <= audit.deadline) revert AnswerWindowOpen(audit.deadline);
        audit.closed = true;
        address node = audit.node;
        Replica storage replica = _replicas[_key(audit.version, audit.shard, node)];
        replica.openAudit = 0;
        // Two audits can name one replica; the first miss (or a release after answering the later one) already
        // took it out of the live count.
        if (replica.status == ReplicaStatus.Holding) {
            _drop(audit.version, audit.shard, node, replica, ReplicaStatus.Failed);
        }
        uint256 slashed = _slash(node);
        emit AuditMissed(epoch, node, slashed);
    }

    // ---------------------------------------------------------------- fees

    /// @inheritdoc IStorage
    function fund(uint256 version, uint256 amount) external onlyRole(FUNDER_ROLE) {
        potOf[version] += amount;
        emit PotFunded(version, amount);
    }

    // ---------------------------------------------------------------- governance

    /// @notice Sets the parameters (applies to later assignments, audits and registrations; a registered
    ///         node's bond stays what it locked).
    /// @param params_ The new parameters.
    function setParams(Params calldata params_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setParams(params_);
    }

    // ---------------------------------------------------------------- views

    /// @notice Node `node`'s rendezvous score for (`version`, `shard`) (workers.protocol.storage.score).
    /// @param version The model version.
    /// @param shard The shard index.
    /// @param node The node.
    /// @return The score: higher ranks first.
    function score(uint256 version, uint256 shard, address node) public pure returns (uint256) {
        return uint256(keccak256(abi.encode(version, shard, node)));
    }

    /// @notice The node the next replica of (`version`, `shard`) of `size` bytes goes to: the highest-scored
    ///         registered node that never held a replica of it and has `size` bytes free; address(0) if none.
    /// @param version The model version.
    /// @param shard The shard index.
    /// @param size Replica bytes.
    /// @return best The next holder.
    function nextHolder(uint256 version, uint256 shard, uint256 size) public view returns (address best) {
        uint256 bestScore = 0;
        uint256 count = _nodeList.length;
        for (uint256 i = 0; i < count; ++i) {
            address node = _nodeList[i];
            uint256 nodeScore = score(version, shard, node);
            if (best != address(0) && nodeScore <= bestScore) continue;
            Node storage candidate = _nodes[node];
            if (candidate.capacity - candidate.used < size) continue;
            if (_replicas[_key(version, shard, node)].status != ReplicaStatus.None) continue;
            best = node;
            bestScore = nodeScore;
        }
    }

    /// @notice The registered nodes, in registration order (a leaving node's slot takes the last one).
    /// @return The node addresses (at most MAX_NODES).
    function nodes() external view returns (address[] memory) {
        return _nodeList;
    }

    /// @notice Node `node`.
    /// @param node The node.
    /// @return Its record.
    function getNode(address node) external view returns (Node memory) {
        return _nodes[node];
    }

    /// @notice `node`'s replica of (`version`, `shard`).
    /// @param version The model version.
    /// @param shard The shard index.
    /// @param node The node.
    /// @return Its record.
    function getReplica(uint256 version, uint256 shard, address node) external view returns (Replica memory) {
        return _replicas[_key(version, shard, node)];
    }

    /// @notice Live (assigned or confirmed) replicas of (`version`, `shard`).
    /// @param version The model version.
    /// @param shard The shard index.
    /// @return The count.
    function liveReplicas(uint256 version, uint256 shard) external view returns (uint256) {
        return _liveReplicas[version][shard];
    }

    /// @notice Confirmed replicas any audit may pick.
    /// @return The count.
    function auditSetSize() external view returns (uint256) {
        return _auditSet.length;
    }

    /// @notice Audit `epoch` (deadline 0: not challenged).
    /// @param epoch The audit epoch.
    /// @return Its record.
    function getAudit(uint256 epoch) external view returns (Audit memory) {
        return _audits[epoch];
    }

    // ---------------------------------------------------------------- internals

    function _key(uint256 version, uint256 shard, address node) private pure returns (bytes32) {
        return keccak256(abi.encode(version, shard, node));
    }

    function _chunkCount(uint256 size) private pure returns (uint256) {
        return size == 0 ? 1 : (size + CHUNK_BYTES - 1) / CHUNK_BYTES;
    }

    function _chunkLength(uint256 size, uint256 index) private pure returns (uint256) {
        uint256 start = index * CHUNK_BYTES;
        uint256 rest = size - start;
        return rest < CHUNK_BYTES ? rest : CHUNK_BYTES;
    }

    function _openAudit(uint256 epoch) private view returns (Audit storage audit) {
        audit = _audits[epoch];
        if (audit.deadline == 0) revert UnknownAudit(epoch);
        if (audit.closed) revert AuditClosed(epoch);
    }

    /// @dev Takes a replica out of the live count, the node's load and (if confirmed) the audit set.
    function _drop(uint256 version, uint256 shard, address node, Replica storage replica, ReplicaStatus status)
        private
    {
        if (replica.status == ReplicaStatus.Holding) {
            uint256 position = replica.auditIndex - 1;
            Holding memory moved = _auditSet[_auditSet.length - 1];
            _auditSet[position] = moved;
            _replicas[_key(moved.version, moved.shard, moved.node)].auditIndex = uint32(position + 1);
            _auditSet.pop();
            replica.auditIndex = 0;
            --holdersOf[version];
        }
        replica.status = status;
        --_liveReplicas[version][shard];
        Node storage holder = _nodes[node];
        holder.used -= replica.size;
        --holder.live;
        emit ReplicaLost(version, shard, node, status);
    }

    function _slash(address node) private returns (uint256 amount) {
        Node storage holder = _nodes[node];
        amount = params.auditSlash;
        if (amount > holder.bond) amount = holder.bond;
        if (amount == 0) return 0;
        holder.bond -= uint96(amount);
        stakes.slash(node, IStakeRegistry.Role.STORAGE, amount, treasury);
    }

    function _setParams(Params memory params_) private {
        if (
            params_.replication < MIN_REPLICATION || params_.replication > MAX_REPLICATION
                || params_.confirmWindow == 0 || params_.auditInterval == 0 || params_.answerWindow == 0
                || params_.auditSlash > params_.nodeBond
        ) revert InvalidParams();
        params = params_;
        emit ParamsSet(params_);
    }
}
