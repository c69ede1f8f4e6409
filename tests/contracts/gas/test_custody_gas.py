"""Gas of the custody contracts (Storage, WeightAccess), in a module of their own so that no other gas case's
leftovers (balances, earlier draws, registered versions) change what these cost. Compared with the same
snapshot as every other case (tests/contracts/gas/test_gas_snapshot.py)."""

from tests.contracts.conftest import (
    CAPACITY,
    CID,
    STORAGE_PARAMS,
    VERSION_KEY,
    WEIGHTS_HASH,
    mine_past,
    replica_bytes,
    replica_cid,
)
from tests.contracts.gas.test_gas_snapshot import check_against_snapshot
from workers.protocol.merkle import chunk, merkle_proof, merkle_root


def measure_custody_gas(
    chain, storage, storage_accounts, weight_access, model_registry, publisher, token, fund, buyer, emission, module
):
    gas = {}
    # Someone has drawn from this epoch's emission already (as in a running network): the audit's draw then
    # costs the same whichever tests ran before.
    emission.draw(module, 1, {"from": module})
    for index, node in enumerate(storage_accounts):
        tx = storage.register(f"/ip4/127.0.0.1/tcp/{4001 + index}".encode(), CAPACITY, {"from": node})
        gas["Storage.register:first" if index == 0 else "Storage.register"] = tx.gas_used
    by_address = {node.address: node for node in storage_accounts}
    version = model_registry.registerVersion(1, 0, CID, 0, {"from": publisher}).return_value
    model_registry.publishShards(version, CID, WEIGHTS_HASH, {"from": publisher})
    size = 64 * 1024  # 64 chunks: a proof of six hashes
    for shard in range(2):
        for _ in range(STORAGE_PARAMS["replication"]):
            node = storage.nextHolder(version, shard, size)
            data = replica_bytes(version, shard, node, size)
            tx = storage.assign(version, shard, node, merkle_root(data), size, replica_cid(data), {"from": publisher})
            gas["Storage.assign:6-nodes"] = tx.gas_used
            gas["Storage.confirm"] = storage.confirm(version, shard, {"from": by_address[node]}).gas_used
    for case in ("answered", "missed"):
        interval = STORAGE_PARAMS["auditInterval"]
        epoch = chain.height // interval + 1
        mine_past(chain, epoch * interval)
        tx = storage.challenge(epoch)
        gas["Storage.challenge"] = tx.gas_used
        audit = tx.events["AuditOpened"]
        if case == "answered":
            data = replica_bytes(version, audit["shard"], audit["node"], size)
            index = audit["chunkIndex"]
            tx = storage.answer(
                epoch, chunk(data, index), merkle_proof(data, index), {"from": by_address[audit["node"]]}
            )
            gas["Storage.answer:1KiB-chunk-6-hash-proof"] = tx.gas_used
        else:
            mine_past(chain, audit["deadline"])
            gas["Storage.slashMissed"] = storage.slashMissed(epoch).gas_used

    custodians = storage_accounts[:5]
    shares = [b"\x01" * 32] * 5
    tx = weight_access.publish(version, VERSION_KEY, 3, custodians, shares, {"from": publisher})
    gas["WeightAccess.publish:3-of-5"] = tx.gas_used
    for case in ("delivered", "refunded"):
        cost = weight_access.price(version)
        fund(buyer, cost)
        token.approve(weight_access, cost, {"from": buyer})
        tx = weight_access.buy(version, b"\x09" + b"\x11" * 31, cost, 2**63, {"from": buyer})
        gas["WeightAccess.buy"] = tx.gas_used
        purchase = tx.return_value
        delivering = custodians if case == "delivered" else custodians[:2]
        for index, custodian in enumerate(delivering):
            # An ECIES-encrypted 32-byte Shamir share (plus its index) is about 130 bytes.
            tx = weight_access.deliverShare(purchase, index, b"\x22" * 130, {"from": custodian})
            gas["WeightAccess.deliverShare:130-bytes"] = tx.gas_used
        if case == "refunded":
            mine_past(chain, weight_access.getPurchase(purchase)["deliverBy"])
        gas[f"WeightAccess.settle:{case}-5-custodians"] = weight_access.settle(purchase).gas_used
    gas["WeightAccess.claim"] = weight_access.claim({"from": custodians[0]}).gas_used
    return gas


def test_custody_gas(
    chain, storage, storage_accounts, weight_access, model_registry, publisher, token, fund, alice, emission, module
):
    check_against_snapshot(
        measure_custody_gas(
            chain,
            storage,
            storage_accounts,
            weight_access,
            model_registry,
            publisher,
            token,
            fund,
            alice,
            emission,
            module,
        )
    )
