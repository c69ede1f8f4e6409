"""WeightAccess and its KeyCustody: publication (shards first, V snapshotted, custody checked, bonds locked),
buy (a moved price or a passed deadline refused with nothing charged), share delivery (custodians only, once,
within the window), settlement (the exact split to burn, storage pot, delivering custodians and treasury;
refund with fewer than k deliveries; silent custodians slashed), claims, the end of a sale and of custody."""

from tests.contracts.conftest import CID, DSH, STORAGE, WEIGHTS_HASH, reverts
from tests.contracts.custody.conftest import ACCESS_PARAMS, access_params, mine_past
from workers.protocol.access import fee_split, price

KEY = b"\x09" + b"\x11" * 31  # a buyer's raw X25519 public key
BOND = ACCESS_PARAMS["custodianBond"]
SLASH = ACCESS_PARAMS["custodianSlash"]


def quoted(value):
    return price(ACCESS_PARAMS["basePrice"], value, ACCESS_PARAMS["valueScale"])


def buy(weight_access, token, fund, buyer, version, max_price=None):
    cost = weight_access.price(version)
    fund(buyer, cost)
    token.approve(weight_access, cost, {"from": buyer})
    tx = weight_access.buy(version, KEY, cost if max_price is None else max_price, 2**63, {"from": buyer})
    return tx.return_value, cost


def test_publish_needs_the_shard_manifest_and_snapshots_v(
    weight_access, model_registry, emission, publisher, storage_accounts, gov, module
):
    version = model_registry.registerVersion(1, 0, CID, 0, {"from": publisher}).return_value
    custodians = storage_accounts[:3]
    commitments = [b"\x01" * 32] * 3
    with reverts("ShardsNotPublished", version):
        weight_access.publish(version, b"\x02" * 32, 2, custodians, commitments, {"from": publisher})
    model_registry.publishShards(version, CID, WEIGHTS_HASH, {"from": publisher})
    # Value created so far: what value sources drew from Emission.
    emission.grantRole(emission.VALUE_SOURCE_ROLE(), module, {"from": gov})
    emission.draw(module, 3_000 * DSH, {"from": module})
    tx = weight_access.publish(version, b"\x02" * 32, 2, custodians, commitments, {"from": publisher})
    assert tx.events["Published"]["valueSnapshot"] == emission.valueCreated() == 3_000 * DSH
    assert weight_access.price(version) == quoted(3_000 * DSH) == tx.events["Published"]["price"]
    # Value created after publication does not move this version's price.
    emission.draw(module, 5_000 * DSH, {"from": module})
    assert weight_access.price(version) == quoted(3_000 * DSH)
    with reverts("AlreadyPublished", version):
        weight_access.publish(version, b"\x02" * 32, 2, custodians, commitments, {"from": publisher})


def test_draws_of_other_drawers_are_not_value_created(emission, module, gov):
    emission.draw(module, DSH, {"from": module})
    assert emission.valueCreated() == 0


def test_publish_checks_the_custody(weight_access, model_registry, publisher, storage_accounts, registry, outsider):
    version = model_registry.registerVersion(1, 0, CID, 0, {"from": publisher}).return_value
    model_registry.publishShards(version, CID, WEIGHTS_HASH, {"from": publisher})
    a, b, c = storage_accounts[:3]
    good = [b"\x01" * 32] * 3
    with reverts("AccessControlUnauthorizedAccount"):
        weight_access.publish(version, b"\x02" * 32, 2, [a, b, c], good, {"from": outsider})
    # Shamir needs two shares at least: a threshold of 1 (or 0) could never be combined.
    for threshold in (0, 1):
        with reverts("ThresholdTooLow", threshold):
            weight_access.publish(version, b"\x02" * 32, threshold, [a, b, c], good, {"from": publisher})
    for threshold, custodians, commitments in ((4, [a, b, c], good), (2, [a, b], good)):
        with reverts("InvalidCustody"):
            weight_access.publish(version, b"\x02" * 32, threshold, custodians, commitments, {"from": publisher})
    with reverts("InvalidCustody"):
        weight_access.publish(version, b"\x00" * 32, 2, [a, b, c], good, {"from": publisher})
    with reverts("DuplicateCustodian", a):
        weight_access.publish(version, b"\x02" * 32, 2, [a, b, a], good, {"from": publisher})
    with reverts("ExceedsUnlocked"):
        weight_access.publish(version, b"\x02" * 32, 2, [a, b, outsider], good, {"from": publisher})
    weight_access.publish(version, b"\x02" * 32, 2, [a, b, c], good, {"from": publisher})
    assert [registry.lockedBy(weight_access, x, STORAGE) for x in (a, b, c)] == [BOND] * 3
    custody, custodians, commitments = weight_access.custodyOf(version)
    assert custody["threshold"] == 2 and custody["size"] == 3 and list(custodians) == [a, b, c]


def test_buy_refuses_a_moved_price_or_a_passed_deadline_and_charges_nothing(
    weight_access, list_version, storage_accounts, token, fund, alice, chain
):
    version, _ = list_version(storage_accounts[:3], 2)
    cost = weight_access.price(version)
    fund(alice, cost)
    token.approve(weight_access, cost, {"from": alice})
    with reverts("PriceAboveMax", cost, cost - 1):
        weight_access.buy(version, KEY, cost - 1, 2**63, {"from": alice})
    with reverts("DeadlinePassed"):
        weight_access.buy(version, KEY, cost, chain.time() - 100, {"from": alice})
    # Only a 32-byte X25519 key: custodians cannot seal to anything else and would be slashed for it.
    for length in (0, 31, 33, 65):
        with reverts("BuyerKeyLength", length):
            weight_access.buy(version, (KEY * 3)[:length], cost, 2**63, {"from": alice})
    with reverts("NotOnSale", 99):
        weight_access.buy(99, KEY, cost, 2**63, {"from": alice})
    assert token.balanceOf(alice) == cost and weight_access.purchaseCount() == 0
    tx = weight_access.buy(version, KEY, cost, 2**63, {"from": alice})
    assert tx.events["Purchased"]["buyerKey"] == "0x" + KEY.hex() and token.balanceOf(weight_access) == cost


def test_delivered_purchase_splits_the_fee_exactly(
    weight_access, list_version, storage_accounts, storage, token, fund, alice, treasury, chain, registry
):
    custodians = storage_accounts[:4]
    version, _ = list_version(custodians, 2)
    purchase, cost = buy(weight_access, token, fund, alice, version)
    with reverts("NotCustodian", storage_accounts[4], 0):
        weight_access.deliverShare(purchase, 0, b"ct", {"from": storage_accounts[4]})
    with reverts("InvalidCiphertext"):
        weight_access.deliverShare(purchase, 0, b"", {"from": custodians[0]})
    for index in (0, 1, 3):
        tx = weight_access.deliverShare(purchase, index, b"share-ciphertext", {"from": custodians[index]})
        assert tx.events["ShareDelivered"]["custodian"] == custodians[index]
    with reverts("AlreadyDelivered", purchase, 0):
        weight_access.deliverShare(purchase, 0, b"again", {"from": custodians[0]})
    with reverts("DeliveryOpen"):
        weight_access.settle(purchase)
    mine_past(chain, weight_access.getPurchase(purchase)["deliverBy"])
    with reverts("DeliveryClosed", purchase):
        weight_access.deliverShare(purchase, 2, b"late", {"from": custodians[2]})
    supply, treasury_before = token.totalSupply(), token.balanceOf(treasury)
    tx = weight_access.settle(purchase)
    split = fee_split(cost, ACCESS_PARAMS["burnBps"], ACCESS_PARAMS["storageBps"], ACCESS_PARAMS["custodianBps"], 3)
    settled = tx.events["Settled"]
    assert not settled["refunded"] and settled["delivered"] == 3
    assert (settled["burned"], settled["storageShare"], settled["perCustodian"], settled["treasuryShare"]) == (
        split.burned,
        split.storage,
        split.per_custodian,
        split.treasury,
    )
    assert supply - token.totalSupply() == split.burned
    assert storage.potOf(version) == split.storage == token.balanceOf(storage)
    # The silent custodian was slashed to the treasury, on top of the treasury's share.
    assert token.balanceOf(treasury) - treasury_before == split.treasury + SLASH
    assert weight_access.bondLeft(version, 2) == BOND - SLASH
    assert registry.lockedBy(weight_access, custodians[2], STORAGE) == BOND - SLASH
    assert [weight_access.owed(custodians[i]) for i in range(4)] == [split.per_custodian] * 2 + [0, split.per_custodian]
    assert token.balanceOf(weight_access) == 3 * split.per_custodian
    before = token.balanceOf(custodians[0])
    weight_access.claim({"from": custodians[0]})
    assert token.balanceOf(custodians[0]) - before == split.per_custodian
    with reverts("AlreadySettled", purchase):
        weight_access.settle(purchase)


def test_every_custodian_delivered_settles_at_once(weight_access, list_version, storage_accounts, token, fund, alice):
    custodians = storage_accounts[:3]
    version, _ = list_version(custodians, 3)
    purchase, _ = buy(weight_access, token, fund, alice, version)
    for index, custodian in enumerate(custodians):
        weight_access.deliverShare(purchase, index, b"ct", {"from": custodian})
    assert not weight_access.settle(purchase).events["Settled"]["refunded"]


def test_too_few_deliveries_refund_the_buyer_and_slash_the_silent(
    weight_access, list_version, storage_accounts, token, fund, alice, chain, treasury
):
    custodians = storage_accounts[:3]
    version, _ = list_version(custodians, 2)
    purchase, cost = buy(weight_access, token, fund, alice, version)
    weight_access.deliverShare(purchase, 1, b"ct", {"from": custodians[1]})
    mine_past(chain, weight_access.getPurchase(purchase)["deliverBy"])
    before = token.balanceOf(treasury)
    tx = weight_access.settle(purchase)
    assert tx.events["Settled"]["refunded"] and token.balanceOf(alice) == cost
    assert [e["custodian"] for e in tx.events["CustodianSlashed"]] == [custodians[0], custodians[2]]
    assert token.balanceOf(treasury) - before == 2 * SLASH
    assert weight_access.owed(custodians[1]) == 0


def test_a_closed_sale_ends_custody_once_purchases_settle(
    weight_access, list_version, storage_accounts, token, fund, alice, chain, registry, publisher
):
    custodians = storage_accounts[:3]
    version, _ = list_version(custodians, 2)
    purchase, _ = buy(weight_access, token, fund, alice, version)
    weight_access.closeSale(version, {"from": publisher})
    with reverts("NotOnSale", version):
        weight_access.buy(version, KEY, 2**200, 2**63, {"from": alice})
    with reverts("CustodyInUse", version):
        weight_access.releaseCustody(version, 0)
    for index, custodian in enumerate(custodians):
        weight_access.deliverShare(purchase, index, b"ct", {"from": custodian})
    weight_access.settle(purchase)
    weight_access.releaseCustody(version, 0)
    assert registry.lockedBy(weight_access, custodians[0], STORAGE) == 0


def test_params_are_checked_and_governed(weight_access, gov, outsider):
    with reverts("AccessControlUnauthorizedAccount"):
        weight_access.setParams(access_params(), {"from": outsider})
    for bad in (dict(valueScale=0), dict(deliveryWindow=0), dict(burnBps=6_000, storageBps=5_000)):
        with reverts("InvalidParams"):
            weight_access.setParams(access_params(**bad), {"from": gov})
    with reverts("InvalidParams"):
        weight_access.setParams(access_params(custodianSlash=ACCESS_PARAMS["custodianBond"] + 1), {"from": gov})
    weight_access.setParams(access_params(basePrice=7), {"from": gov})
    assert weight_access.quote(0) == 7
