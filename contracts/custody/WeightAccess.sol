// SPDX-License-Identifier: MIT
pragma solidity 0.8.26;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IStakeRegistry} from "../interfaces/IStakeRegistry.sol";
import {IStorage} from "../interfaces/IStorage.sol";
import {FixedPointMath} from "../libraries/FixedPointMath.sol";
import {ModelRegistry} from "../model/ModelRegistry.sol";
import {Emission} from "../token/Emission.sol";
import {CustodyPayouts} from "./CustodyPayouts.sol";
import {KeyCustody} from "./KeyCustody.sol";

/// @title WeightAccess
/// @notice Sells copies of a model version's weights (its key, delivered k-of-n by the custodians) at
///         price(v) = basePrice * exp(V / valueScale), V the value the network had created (Emission's
///         `valueCreated`: rewards of accepted data and training) when v was published here, so a copy gets
///         exponentially dearer as the network grows and nobody can buy just ahead of a reward that raises it.
///         `buy` escrows the price; `settle` (anyone, after the delivery window or once every custodian
///         delivered) splits it exactly to the wei (workers.protocol.access.fee_split): `burnBps` burned,
///         `storageBps` to the version's pot in Storage (paid to audited holders), `custodianBps` shared by the
///         custodians who delivered, the rest (rounding included) to the treasury; with fewer than k deliveries
///         the buyer gets the whole price back. Silent custodians are slashed either way.
/// @dev The exponent V * WAD / valueScale is clamped at MAX_PRICE_EXPONENT = 100 (e**100 ~ 2.7e43): past it the
///      price stays flat. Below FixedPointMath.MAX_EXP_INPUT (135) exp cannot overflow, and with basePrice at
///      most 2**96 the price (< 2**96 * 2.7e43 < 2**242) fits; even basePrice = 1 wei then asks 2.7e25 DSH,
///      more than the token's cap, so the clamp only caps a price nobody can pay. A buyer can always leak the
///      key it bought: keys go per version (docs/README of contracts/custody).
contract WeightAccess is KeyCustody, CustodyPayouts {
    using SafeERC20 for IERC20;

    /// @notice Role of the keeper that publishes versions for sale (it generated the key; governance at first).
    bytes32 public constant PUBLISHER_ROLE = keccak256("PUBLISHER_ROLE");
    /// @notice Basis points: 10,000 is the whole.
    uint256 public constant BPS = 10_000;
    /// @notice Clamp of V * WAD / valueScale (WAD).
    uint256 public constant MAX_PRICE_EXPONENT = 100e18;
    /// @notice Length of a buyer public key (raw X25519), in bytes: custodians can seal a share to nothing else.
    uint256 public constant BUYER_KEY_BYTES = 32;

    /// @notice Governance's parameters. Amounts in wei, windows in blocks.
    struct Params {
        uint96 basePrice; // p0: the price at V = 0
        uint96 valueScale; // V that multiplies the price by e (> 0)
        uint16 burnBps;
        uint16 storageBps;
        uint16 custodianBps; // the three at most BPS together; the treasury takes the rest
        uint32 deliveryWindow; // blocks the custodians have to deliver after a purchase
        uint96 custodianBond; // locked per custodian and version at publication
        uint96 custodianSlash; // taken per missed delivery
    }

    /// @notice A version on sale.
    struct Listing {
        uint256 valueSnapshot; // V when published
        uint64 publishedBlock; // 0: not published
        uint32 openPurchases; // bought, not settled
        bool closed; // no new purchases
    }

    /// @notice A purchase.
    struct Purchase {
        address buyer;
        uint64 version;
        uint64 deliverBy; // last block for deliveries
        bool settled;
        uint256 price; // wei escrowed
    }

    /// @notice Where V accumulates.
    Emission public immutable emission;
    /// @notice The model lineage (a version must have its shards published before it is sold).
    ModelRegistry public immutable models;
    /// @notice Storage, which receives the storage share (needs its FUNDER_ROLE).
    IStorage public immutable storageNodes;
    /// @notice Current parameters.
    Params public params;
    /// @notice Number of purchases (the newest id).
    uint256 public purchaseCount;

    mapping(uint256 version => Listing) private _listings;
    mapping(uint256 purchase => Purchase) private _purchases;

    /// @notice A version went on sale.
    /// @param version The model version.
    /// @param valueSnapshot V, in wei.
    /// @param price Its price under the parameters of the moment, in wei.
    event Published(uint256 indexed version, uint256 valueSnapshot, uint256 price);
    /// @notice A version's sale closed.
    /// @param version The model version.
    event SaleClosed(uint256 indexed version);
    /// @notice A buyer paid into escrow.
    /// @param purchase The purchase id.
    /// @param version The model version.
    /// @param buyer The buyer.
    /// @param price Wei escrowed.
    /// @param buyerKey The public key the shares are encrypted to.
    /// @param deliverBy Last block for deliveries.
    event Purchased(
        uint256 indexed purchase,
        uint256 indexed version,
        address indexed buyer,
        uint256 price,
        bytes buyerKey,
        uint256 deliverBy
    );
    /// @notice A purchase settled.
    /// @param purchase The purchase id.
    /// @param delivered Custodians who delivered.
    /// @param refunded Whether the buyer got the price back (fewer than k deliveries).
    /// @param burned Wei burned.
    /// @param storageShare Wei to the version's storage pot.
    /// @param perCustodian Wei to each delivering custodian.
    /// @param treasuryShare Wei to the treasury.
    event Settled(
        uint256 indexed purchase,
        uint256 delivered,
        bool refunded,
        uint256 burned,
        uint256 storageShare,
        uint256 perCustodian,
        uint256 treasuryShare
    );
    /// @notice Governance changed the parameters.
    /// @param params The new parameters.
    event ParamsSet(Params params);
    error InvalidParams();
    error ShardsNotPublished(uint256 version);
    error AlreadyPublished(uint256 version);
    error NotOnSale(uint256 version);
    error BuyerKeyLength(uint256 length);
    error DeadlinePassed(uint256 deadline);
    error PriceAboveMax(uint256 price, uint256 maxPrice);
    error UnknownPurchase(uint256 purchase);
    error AlreadySettled(uint256 purchase);
    error DeliveryOpen(uint256 deliverBy);

    /// @notice Deploys WeightAccess.
    /// @param stakes_ StakeRegistry (this contract needs its MODULE_ROLE: custodians' bonds).
    /// @param emission_ Emission (read-only: V).
    /// @param token_ DSH.
    /// @param models_ ModelRegistry.
    /// @param storage_ Storage (this contract needs its FUNDER_ROLE).
    /// @param admin Governance (DEFAULT_ADMIN_ROLE).
    /// @param treasury_ Receives the treasury share and slashed bonds.
    /// @param params_ Initial parameters.
    constructor(
        IStakeRegistry stakes_,
        Emission emission_,
        IERC20 token_,
        ModelRegistry models_,
        IStorage storage_,
        address admin,
        address treasury_,
        Params memory params_
    ) KeyCustody(stakes_) CustodyPayouts(token_, admin, treasury_) {
        if (
            address(stakes_) == address(0) || address(emission_) == address(0) || address(models_) == address(0)
                || address(storage_) == address(0)
        ) revert ZeroAddress();
        emission = emission_;
        models = models_;
        storageNodes = storage_;
        _setParams(params_);
    }

    // ---------------------------------------------------------------- publisher

    /// @notice Puts `version` on sale: snapshots V, opens the key's custody and locks each custodian's bond.
    ///         The version's shard manifest must be in the ModelRegistry.
    /// @param version The model version.
    /// @param keyHash keccak256 of the 32-byte version key.
    /// @param threshold Shares needed to rebuild the key (k, 2..n: Shamir needs two shares at least).
    /// @param custodians The n custodians (distinct STORAGE stakers, at most MAX_CUSTODIANS), in share order.
    /// @param shareCommitments keccak256 of each custodian's share.
    function publish(
        uint256 version,
        bytes32 keyHash,
        uint256 threshold,
        address[] calldata custodians,
        bytes32[] calldata shareCommitments
    ) external onlyRole(PUBLISHER_ROLE) {
        if (models.getVersion(version).shardManifestCid.length == 0) revert ShardsNotPublished(version);
        Listing storage listing = _listings[version];
        if (listing.publishedBlock != 0) revert AlreadyPublished(version);
        uint256 value = emission.valueCreated();
        listing.valueSnapshot = value;
        listing.publishedBlock = uint64(block.number);
        _openCustody(version, keyHash, threshold, custodians, shareCommitments, params.custodianBond);
        emit Published(version, value, quote(value));
    }

    /// @notice Ends `version`'s sale: no new purchases; custodians' bonds unlock once open purchases settle.
    /// @param version The model version.
    function closeSale(uint256 version) external onlyRole(PUBLISHER_ROLE) {
        Listing storage listing = _listings[version];
        if (listing.publishedBlock == 0 || listing.closed) revert NotOnSale(version);
        listing.closed = true;
        emit SaleClosed(version);
    }

    // ---------------------------------------------------------------- buyers

    /// @notice Buys `version`: escrows its price (pulled with a prior `approve`) and asks the custodians to
    ///         deliver their shares encrypted to `buyerKey` within `deliveryWindow` blocks. Reverts, charging
    ///         nothing, when the price is above `maxPrice`, the time past `deadline` or the key not
    ///         BUYER_KEY_BYTES long (`BuyerKeyLength`: a key custodians cannot seal to would get them slashed for
    ///         it). A 32-byte key that is no usable X25519 point (a low-order one) is answered by each custodian
    ///         with a refusal marker as its delivery: counted as delivered, so the buyer who chose it pays.
    /// @param version The model version.
    /// @param buyerKey The raw X25519 public key the shares are encrypted to (BUYER_KEY_BYTES bytes).
    /// @param maxPrice Most the buyer pays, in wei.
    /// @param deadline Last timestamp (unix seconds) the purchase may happen.
    /// @return purchase The purchase id.
    function buy(uint256 version, bytes calldata buyerKey, uint256 maxPrice, uint256 deadline)
        external
        returns (uint256 purchase)
    {
        if (block.timestamp > deadline) revert DeadlinePassed(deadline);
        Listing storage listing = _listings[version];
        if (listing.publishedBlock == 0 || listing.closed) revert NotOnSale(version);
        if (buyerKey.length != BUYER_KEY_BYTES) revert BuyerKeyLength(buyerKey.length);
        uint256 cost = quote(listing.valueSnapshot);
        if (cost > maxPrice) revert PriceAboveMax(cost, maxPrice);
        purchase = ++purchaseCount;
        uint256 deliverBy = block.number + params.deliveryWindow;
        _purchases[purchase] = Purchase({
            buyer: msg.sender,
            version: uint64(version),
            deliverBy: uint64(deliverBy),
            settled: false,
            price: cost
        });
        ++listing.openPurchases;
        emit Purchased(purchase, version, msg.sender, cost, buyerKey, deliverBy);
        token.safeTransferFrom(msg.sender, address(this), cost);
    }

    /// @notice Settles `purchase` after its delivery window, or once every custodian delivered: slashes silent
    ///         custodians, then pays out the fee split (k or more deliveries) or refunds the buyer. Anyone can
    ///         call it.
    /// @param purchase The purchase id.
    function settle(uint256 purchase) external {
        Purchase storage p = _purchases[purchase];
        if (p.buyer == address(0)) revert UnknownPurchase(purchase);
        if (p.settled) revert AlreadySettled(purchase);
        uint256 version = p.version;
        (uint256 threshold, uint256 size) = _custodySize(version);
        bool pastWindow = block.number > p.deliverBy;
        if (!pastWindow && deliveredMask[purchase] != (1 << size) - 1) revert DeliveryOpen(p.deliverBy);
        p.settled = true;
        --_listings[version].openPurchases;
        Params memory q = params;
        (uint256 mask, uint256 delivered, address[] storage custodians) =
            _closeDeliveries(purchase, version, pastWindow, q.custodianSlash, treasury);
        uint256 cost = p.price;
        if (delivered < threshold) {
            emit Settled(purchase, delivered, true, 0, 0, 0, 0);
            token.safeTransfer(p.buyer, cost);
            return;
        }
        (uint256 burned, uint256 storageShare, uint256 perCustodian, uint256 treasuryShare) =
            feeSplit(cost, delivered);
        if (perCustodian != 0) {
            for (uint256 i = 0; i < size; ++i) {
                if (mask & (1 << i) != 0) owed[custodians[i]] += perCustodian;
            }
        }
        emit Settled(purchase, delivered, false, burned, storageShare, perCustodian, treasuryShare);
        if (burned != 0) ERC20Burnable(address(token)).burn(burned);
        if (storageShare != 0) {
            token.safeTransfer(address(storageNodes), storageShare);
            storageNodes.fund(version, storageShare);
        }
        if (treasuryShare != 0) token.safeTransfer(treasury, treasuryShare);
    }

    // ---------------------------------------------------------------- governance

    /// @notice Sets the parameters (a purchase keeps the price and window it was bought under; a published
    ///         version keeps its V and its custodians' bond).
    /// @param params_ The new parameters.
    function setParams(Params calldata params_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setParams(params_);
    }

    // ---------------------------------------------------------------- views

    /// @notice The price of `version` now, in wei.
    /// @param version A published version (`NotOnSale` otherwise).
    /// @return Wei.
    function price(uint256 version) external view returns (uint256) {
        Listing storage listing = _listings[version];
        if (listing.publishedBlock == 0) revert NotOnSale(version);
        return quote(listing.valueSnapshot);
    }

    /// @notice basePrice * exp(min(value * WAD / valueScale, MAX_PRICE_EXPONENT)) / WAD, rounded down
    ///         (workers.protocol.access.price).
    /// @param value V, in wei.
    /// @return Wei.
    function quote(uint256 value) public view returns (uint256) {
        Params storage q = params;
        uint256 scale = q.valueScale;
        // Clamped before multiplying: below the clamp value < 101 * scale < 2**103, so value * WAD cannot overflow.
        uint256 exponent = value / scale >= MAX_PRICE_EXPONENT / FixedPointMath.WAD
            ? MAX_PRICE_EXPONENT
            : value * FixedPointMath.WAD / scale;
        return Math.mulDiv(q.basePrice, FixedPointMath.expWad(exponent), FixedPointMath.WAD);
    }

    /// @notice How `amount` splits with `delivered` custodians paid (workers.protocol.access.fee_split): each
    ///         share rounded down, the treasury takes the rest.
    /// @param amount Wei.
    /// @param delivered Custodians who delivered (> 0).
    /// @return burned Wei burned.
    /// @return storageShare Wei to the storage pot.
    /// @return perCustodian Wei to each delivering custodian.
    /// @return treasuryShare Wei to the treasury.
    function feeSplit(uint256 amount, uint256 delivered)
        public
        view
        returns (uint256 burned, uint256 storageShare, uint256 perCustodian, uint256 treasuryShare)
    {
        Params storage q = params;
        burned = amount * q.burnBps / BPS;
        storageShare = amount * q.storageBps / BPS;
        perCustodian = amount * q.custodianBps / BPS / delivered;
        // Each custodian's share is floored on purpose: the treasury takes the rounding remainder, to the wei.
        // slither-disable-next-line divide-before-multiply
        treasuryShare = amount - burned - storageShare - perCustodian * delivered;
    }

    /// @notice Version `version`'s listing.
    /// @param version The model version.
    /// @return Its record.
    function getListing(uint256 version) external view returns (Listing memory) {
        return _listings[version];
    }

    /// @notice Purchase `purchase`.
    /// @param purchase The purchase id.
    /// @return Its record.
    function getPurchase(uint256 purchase) external view returns (Purchase memory) {
        return _purchases[purchase];
    }

    // ---------------------------------------------------------------- internals

    function _deliveryTerms(uint256 purchase) internal view override returns (uint256 version, bool open) {
        Purchase storage p = _purchases[purchase];
        return (p.version, p.buyer != address(0) && !p.settled && block.number <= p.deliverBy);
    }

    function _custodyReleasable(uint256 version) internal view override returns (bool) {
        Listing storage listing = _listings[version];
        return listing.closed && listing.openPurchases == 0;
    }

    function _setParams(Params memory params_) private {
        if (
            params_.valueScale == 0 || params_.deliveryWindow == 0
                || uint256(params_.burnBps) + params_.storageBps + params_.custodianBps > BPS
                || params_.custodianSlash > params_.custodianBond
        ) revert InvalidParams();
        params = params_;
        emit ParamsSet(params_);
    }
}
