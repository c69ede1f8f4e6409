// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {IStakeRegistry} from "../interfaces/IStakeRegistry.sol";

/// @title KeyCustody
/// @notice k-of-n custody of each version's AES-256 key. At publication the publisher names n staked custodians
///         (STORAGE stakers), the threshold k, keccak256 of the key (what a buyer checks its reassembled key
///         against) and keccak256 of each custodian's Shamir share (its commitment); each custodian's
///         `custodianBond` is locked for the version. For every purchase, each custodian delivers its share
///         encrypted to the buyer's public key, as an event, within the delivery window; a custodian that
///         stays silent is slashed up to `custodianSlash` of its bond for that version when the purchase
///         settles, and a purchase with fewer than k deliveries is refunded.
/// @dev Trust assumptions (contracts/custody/README.md): the publisher generates the key and sees it whole; any
///      k custodians together can rebuild it; every buyer holds it. The contract cannot read an encrypted share,
///      so it cannot tell a garbage delivery from a good one: the buyer checks each decrypted share against its
///      on-chain commitment and needs only k good ones of n. A garbage share is not provable on-chain here and
///      is not slashed; what stops it is the commitment (the buyer detects it at once and uses another share)
///      and the custodian's bond and reputation. Nor can it tell a usable X25519 buyer key from a low-order
///      point: a custodian facing one delivers a 1-byte refusal marker instead of a share, which counts as a
///      delivery (not slashed; the buyer who chose the key is not refunded). The module that inherits this says what a purchase is
///      (`_deliveryTerms`) and when a version's custody may end (`_custodyReleasable`). Loops are bounded by
///      MAX_CUSTODIANS.
abstract contract KeyCustody {
    /// @notice Most custodians per version (delivery masks are uint16).
    uint256 public constant MAX_CUSTODIANS = 16;
    /// @notice Longest encrypted share, in bytes.
    uint256 public constant MAX_SHARE_CIPHERTEXT = 1024;

    /// @notice A version's custody.
    struct Custody {
        bytes32 keyHash; // keccak256 of the 32-byte version key
        uint8 threshold; // k
        uint8 size; // n
        uint96 bond; // locked per custodian at publication
    }

    /// @notice STORAGE stakes (custodians' bonds).
    IStakeRegistry public immutable stakes;

    mapping(uint256 version => Custody) private _custodies;
    mapping(uint256 version => address[]) private _custodians;
    mapping(uint256 version => bytes32[]) private _shareCommitments;
    mapping(uint256 version => uint96[MAX_CUSTODIANS]) private _bondLeft;
    /// @notice Bit i set: custodian i delivered its share for the purchase.
    mapping(uint256 purchase => uint256 mask) public deliveredMask;

    /// @notice A version's custody opened.
    /// @param version The model version.
    /// @param keyHash keccak256 of its key.
    /// @param threshold Shares needed (k).
    /// @param custodians The n custodians, in share order.
    /// @param shareCommitments keccak256 of each custodian's share.
    event CustodyOpened(
        uint256 indexed version, bytes32 keyHash, uint256 threshold, address[] custodians, bytes32[] shareCommitments
    );
    /// @notice A custodian delivered its share, encrypted to the buyer's key.
    /// @param purchase The purchase.
    /// @param version The model version.
    /// @param index The custodian's share index.
    /// @param custodian The custodian.
    /// @param ciphertext The share encrypted to the buyer's public key.
    event ShareDelivered(
        uint256 indexed purchase, uint256 indexed version, uint256 index, address indexed custodian, bytes ciphertext
    );
    /// @notice A custodian missed a delivery and was slashed.
    /// @param purchase The purchase.
    /// @param custodian The custodian.
    /// @param amount Wei taken.
    event CustodianSlashed(uint256 indexed purchase, address indexed custodian, uint256 amount);
    /// @notice A custodian's bond left for a version was unlocked.
    /// @param version The model version.
    /// @param custodian The custodian.
    /// @param amount Wei unlocked.
    event CustodyReleased(uint256 indexed version, address indexed custodian, uint256 amount);

    error InvalidCustody();
    error ThresholdTooLow(uint256 threshold);
    error DuplicateCustodian(address custodian);
    error CustodyExists(uint256 version);
    error NotCustodian(address caller, uint256 index);
    error DeliveryClosed(uint256 purchase);
    error AlreadyDelivered(uint256 purchase, uint256 index);
    error InvalidCiphertext();
    error CustodyInUse(uint256 version);

    /// @notice Sets the StakeRegistry custodians' bonds are locked in.
    /// @param stakes_ The StakeRegistry (the inheriting module needs its MODULE_ROLE).
    constructor(IStakeRegistry stakes_) {
        stakes = stakes_;
    }

    /// @notice Delivers custodian `index`'s share for `purchase`, encrypted to the buyer's key (emitted, never
    ///         stored), before the purchase's delivery deadline.
    /// @param purchase The purchase.
    /// @param index The caller's share index in the version's custody.
    /// @param ciphertext The encrypted share (1..MAX_SHARE_CIPHERTEXT bytes).
    function deliverShare(uint256 purchase, uint256 index, bytes calldata ciphertext) external {
        (uint256 version, bool open) = _deliveryTerms(purchase);
        if (!open) revert DeliveryClosed(purchase);
        address[] storage custodians = _custodians[version];
        if (index >= custodians.length || custodians[index] != msg.sender) revert NotCustodian(msg.sender, index);
        if (ciphertext.length == 0 || ciphertext.length > MAX_SHARE_CIPHERTEXT) revert InvalidCiphertext();
        uint256 mask = deliveredMask[purchase];
        if (mask & (1 << index) != 0) revert AlreadyDelivered(purchase, index);
        deliveredMask[purchase] = mask | (1 << index);
        emit ShareDelivered(purchase, version, index, msg.sender, ciphertext);
    }

    /// @notice Unlocks what is left of custodian `index`'s bond for `version` once its custody may end.
    /// @param version The model version.
    /// @param index The custodian's share index.
    function releaseCustody(uint256 version, uint256 index) external {
        if (!_custodyReleasable(version)) revert CustodyInUse(version);
        address[] storage custodians = _custodians[version];
        if (index >= custodians.length) revert NotCustodian(address(0), index);
        uint256 amount = _bondLeft[version][index];
        if (amount == 0) return;
        _bondLeft[version][index] = 0;
        address custodian = custodians[index];
        emit CustodyReleased(version, custodian, amount);
        stakes.unlock(custodian, IStakeRegistry.Role.STORAGE, amount);
    }

    /// @notice Version `version`'s custody.
    /// @param version The model version.
    /// @return custody Key hash, threshold, size and bond.
    /// @return custodians The custodians in share order.
    /// @return shareCommitments keccak256 of each share.
    function custodyOf(uint256 version)
        external
        view
        returns (Custody memory custody, address[] memory custodians, bytes32[] memory shareCommitments)
    {
        return (_custodies[version], _custodians[version], _shareCommitments[version]);
    }

    /// @notice Bond left of custodian `index` for `version`, in wei.
    /// @param version The model version.
    /// @param index The share index.
    /// @return Wei.
    function bondLeft(uint256 version, uint256 index) external view returns (uint256) {
        return _bondLeft[version][index];
    }

    /// @dev Records the custody and locks each custodian's bond.
    function _openCustody(
        uint256 version,
        bytes32 keyHash,
        uint256 threshold,
        address[] calldata custodians,
        bytes32[] calldata shareCommitments,
        uint96 bond
    ) internal {
        uint256 size = custodians.length;
        if (_custodies[version].size != 0) revert CustodyExists(version);
        // A key is rebuilt from two shares at least (workers.shards.crypto.combine_shares).
        if (threshold < 2) revert ThresholdTooLow(threshold);
        if (
            keyHash == bytes32(0) || threshold > size || size > MAX_CUSTODIANS
                || shareCommitments.length != size
        ) revert InvalidCustody();
        _custodies[version] =
            Custody({keyHash: keyHash, threshold: uint8(threshold), size: uint8(size), bond: bond});
        for (uint256 i = 0; i < size; ++i) {
            address custodian = custodians[i];
            if (custodian == address(0) || shareCommitments[i] == bytes32(0)) revert InvalidCustody();
            for (uint256 j = 0; j < i; ++j) {
                if (custodians[j] == custodian) revert DuplicateCustodian(custodian);
            }
            _custodians[version].push(custodian);
            _shareCommitments[version].push(shareCommitments[i]);
            _bondLeft[version][i] = bond;
        }
        emit CustodyOpened(version, keyHash, threshold, custodians, shareCommitments);
        // Checks-effects-interactions: every record is written before the first external call.
        if (bond != 0) {
            for (uint256 i = 0; i < size; ++i) {
                stakes.lock(custodians[i], IStakeRegistry.Role.STORAGE, bond);
            }
        }
    }

    /// @dev Closes `purchase`'s deliveries: slashes each silent custodian (up to `slashAmount` of its bond left,
    ///      to `beneficiary`) when `slashSilent`, and returns the delivered mask, count and the custodians.
    function _closeDeliveries(
        uint256 purchase,
        uint256 version,
        bool slashSilent,
        uint256 slashAmount,
        address beneficiary
    ) internal returns (uint256 mask, uint256 delivered, address[] storage custodians) {
        mask = deliveredMask[purchase];
        custodians = _custodians[version];
        uint256 size = custodians.length;
        uint256[] memory slashed = new uint256[](size);
        for (uint256 i = 0; i < size; ++i) {
            if (mask & (1 << i) != 0) {
                ++delivered;
            } else if (slashSilent) {
                uint256 amount = _bondLeft[version][i];
                if (amount > slashAmount) amount = slashAmount;
                if (amount == 0) continue;
                _bondLeft[version][i] -= uint96(amount);
                slashed[i] = amount;
                emit CustodianSlashed(purchase, custodians[i], amount);
            }
        }
        // Checks-effects-interactions: every bond is written down before the first external call.
        for (uint256 i = 0; i < size; ++i) {
            if (slashed[i] != 0) stakes.slash(custodians[i], IStakeRegistry.Role.STORAGE, slashed[i], beneficiary);
        }
    }

    /// @dev The custody's threshold and size.
    function _custodySize(uint256 version) internal view returns (uint256 threshold, uint256 size) {
        Custody storage custody = _custodies[version];
        return (custody.threshold, custody.size);
    }

    /// @dev The version a purchase is for and whether its delivery window is open.
    function _deliveryTerms(uint256 purchase) internal view virtual returns (uint256 version, bool open);

    /// @dev Whether `version`'s custody may end (no sale left that could need a share).
    function _custodyReleasable(uint256 version) internal view virtual returns (bool);
}
