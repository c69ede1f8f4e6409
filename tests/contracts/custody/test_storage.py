"""Storage: registration and bonds, assignment by the rendezvous ranking, confirmation, audits (a chunk and its
Merkle proof from workers.protocol.merkle), slashing of a missed audit and of an unconfirmed assignment, repair
to the next node in the ranking, release and leave, and payment of audited holding from the fee pot and
Emission."""

import brownie

from tests.contracts.conftest import CAPACITY, CID, DSH, STORAGE, replica_cid, reverts
from tests.contracts.custody.conftest import STORAGE_PARAMS, mine_past, open_audit, replica_bytes, storage_params
from workers.protocol import storage as reference
from workers.protocol.merkle import chunk, merkle_proof, merkle_root

BOND = STORAGE_PARAMS["nodeBond"]
SLASH = STORAGE_PARAMS["auditSlash"]
STATUS = {name: i for i, name in enumerate(("None", "Assigned", "Holding", "Released", "Failed"))}


def test_register_locks_the_bond_and_checks_its_input(storage, storage_accounts, registry):
    node = storage_accounts[0]
    tx = storage.register(b"/ip4/10.0.0.1/tcp/4001", CAPACITY, {"from": node})
    assert tx.events["NodeRegistered"]["capacity"] == CAPACITY
    assert registry.lockedBy(storage, node, STORAGE) == BOND
    record = storage.getNode(node)
    assert (
        record["registered"] and record["bond"] == BOND and record["endpoint"] == "0x" + b"/ip4/10.0.0.1/tcp/4001".hex()
    )
    assert list(storage.nodes()) == [node]
    with reverts("AlreadyRegistered", node):
        storage.register(b"x", CAPACITY, {"from": node})
    with reverts("InvalidEndpoint"):
        storage.register(b"", CAPACITY, {"from": storage_accounts[1]})
    with reverts("InvalidEndpoint"):
        storage.register(b"x" * 257, CAPACITY, {"from": storage_accounts[1]})
    with reverts("ZeroCapacity"):
        storage.register(b"x", 0, {"from": storage_accounts[1]})


def test_register_without_enough_stake_reverts_and_keeps_nothing(storage, accounts):
    with reverts("ExceedsUnlocked"):
        storage.register(b"x", CAPACITY, {"from": accounts[7]})
    assert len(storage.nodes()) == 0


def test_assignment_follows_the_rendezvous_ranking(storage, storage_nodes, publisher, store_shard):
    nodes = [n.address for n in storage_nodes]
    expected = reference.holders(7, 2, nodes, STORAGE_PARAMS["replication"])
    assert storage.nextHolder(7, 2, 100) == expected[0]
    wrong = next(n for n in nodes if n != expected[0])
    with reverts("NotNextInRanking", wrong, expected[0]):
        storage.assign(7, 2, wrong, b"\x01" * 32, 100, CID, {"from": publisher})
    replicas = store_shard(7, 2)
    assert list(replicas) == expected
    assert storage.liveReplicas(7, 2) == 3 and storage.holdersOf(7) == 3
    for node, data in replicas.items():
        replica = storage.getReplica(7, 2, node)
        assert replica["root"] == "0x" + merkle_root(data).hex() and replica["status"] == STATUS["Holding"]
    with reverts("ReplicationReached", 7, 2):
        storage.assign(7, 2, storage.nextHolder(7, 2, 100), b"\x01" * 32, 100, CID, {"from": publisher})


def test_only_the_publisher_assigns_and_a_replica_needs_a_root_a_size_and_a_uint32_shard(
    storage, storage_nodes, publisher, outsider
):
    node = storage.nextHolder(1, 0, 10)
    with reverts("AccessControlUnauthorizedAccount"):
        storage.assign(1, 0, node, b"\x01" * 32, 10, CID, {"from": outsider})
    with reverts("InvalidReplica"):
        storage.assign(1, 0, node, b"\x00" * 32, 10, CID, {"from": publisher})
    with reverts("InvalidReplica"):
        storage.assign(1, 0, node, b"\x01" * 32, 0, CID, {"from": publisher})
    with reverts("ShardOutOfRange", 2**32):
        storage.assign(1, 2**32, storage.nextHolder(1, 2**32, 10), b"\x01" * 32, 10, CID, {"from": publisher})


def test_the_replica_cid_is_logged_and_must_be_1_to_64_bytes(storage, storage_nodes, publisher):
    node = storage.nextHolder(2, 0, 10)
    with reverts("InvalidCid"):
        storage.assign(2, 0, node, b"\x01" * 32, 10, b"", {"from": publisher})
    with reverts("InvalidCid"):
        storage.assign(2, 0, node, b"\x01" * 32, 10, b"\x01" * 65, {"from": publisher})
    assert storage.liveReplicas(2, 0) == 0
    cid = replica_cid(b"replica")
    tx = storage.assign(2, 0, node, b"\x01" * 32, 10, cid, {"from": publisher})
    event = tx.events["ReplicaAssigned"]
    assert event["node"] == node and event["cid"] == "0x" + cid.hex() and event["size"] == 10
    longest = storage.nextHolder(2, 0, 10)
    storage.assign(2, 0, longest, b"\x02" * 32, 10, b"\x01" * 64, {"from": publisher})
    assert storage.liveReplicas(2, 0) == 2


def test_a_node_without_room_is_skipped(storage, accounts, deployer, staked):
    small, large = accounts.add(), accounts.add()
    for node in (small, large):
        deployer.transfer(node, "1 ether")
        staked(node, STORAGE, BOND)
    storage.register(b"small", 1_000, {"from": small})
    storage.register(b"large", CAPACITY, {"from": large})
    others = [node for node in storage.nodes() if node not in (small.address, large.address)]
    everyone = [small.address, large.address, *others]
    # A shard the small node ranks first for: it gets a replica that fits, the next node one that does not.
    version = next(v for v in range(1, 500) if reference.ranking(v, 0, everyone)[0] == small.address)
    assert storage.nextHolder(version, 0, 500) == small
    assert storage.nextHolder(version, 0, 2_000) == reference.next_holder(version, 0, everyone[1:])


def test_confirm_window_and_expiry_slash_and_repair(
    storage, storage_nodes, store_shard, chain, registry, treasury, token
):
    replicas = store_shard(4, 1, confirm=False, count=1)
    (node,) = replicas
    with reverts("ConfirmWindowOpen"):
        storage.expire(4, 1, node)
    chain.mine(STORAGE_PARAMS["confirmWindow"] + 1)
    with reverts("ConfirmWindowClosed"):
        storage.confirm(4, 1, {"from": node})
    before = token.balanceOf(treasury)
    tx = storage.expire(4, 1, node)
    assert tx.events["ReplicaLost"]["status"] == STATUS["Failed"]
    assert token.balanceOf(treasury) - before == SLASH
    assert registry.lockedBy(storage, node, STORAGE) == BOND - SLASH
    assert storage.liveReplicas(4, 1) == 0
    # The repair goes to the next node in the ranking: the failed one never holds this shard again.
    others = [n.address for n in storage_nodes if n.address != node]
    assert storage.nextHolder(4, 1, 3_000) == reference.next_holder(4, 1, others)


def test_audit_answered_with_the_proof_pays_from_the_pot_and_emission(
    storage, storage_nodes, store_shard, chain, token, treasury, gov
):
    holdings = [(0, node) for node in store_shard(2, 0, size=5_000)] + [(1, n) for n in store_shard(2, 1, size=1_024)]
    # Fees of version 2 join its pot (as WeightAccess pays them).
    storage.grantRole(storage.FUNDER_ROLE(), treasury, {"from": gov})
    token.transfer(storage, 600 * DSH, {"from": treasury})
    storage.fund(2, 600 * DSH, {"from": treasury})
    epoch, event = open_audit(storage, chain)
    node, shard, index = event["node"], event["shard"], event["chunkIndex"]
    data = replica_bytes(2, shard, node, storage.getReplica(2, shard, node)["size"])
    by_address = {n.address: n for n in storage_nodes}
    seed_hash = chain[epoch * STORAGE_PARAMS["auditInterval"]].hash
    position, expected_chunk = reference.audit_draw(seed_hash, epoch, 6, [5_000] * 3 + [1_024] * 3)
    assert (shard, node) == holdings[position] and index == expected_chunk
    piece, proof = chunk(data, index), merkle_proof(data, index)
    with reverts("NotChallengedNode"):
        storage.answer(epoch, piece, proof, {"from": next(n for n in storage_nodes if n.address != node)})
    with reverts("InvalidProof"):
        storage.answer(epoch, piece[:-1] + bytes([piece[-1] ^ 1]), proof, {"from": by_address[node]})
    tx = storage.answer(epoch, piece, proof, {"from": by_address[node]})
    passed = tx.events["AuditPassed"]
    assert passed["fee"] == 600 * DSH // 6 and passed["emitted"] == STORAGE_PARAMS["auditEmission"]
    assert storage.owed(node) == passed["fee"] + passed["emitted"] and storage.potOf(2) == 500 * DSH
    with reverts("AuditClosed", epoch):
        storage.slashMissed(epoch)
    before = token.balanceOf(node)
    storage.claim({"from": by_address[node]})
    assert token.balanceOf(node) - before == passed["fee"] + passed["emitted"]
    with reverts("NothingToClaim"):
        storage.claim({"from": by_address[node]})


def test_missed_audit_is_slashed_and_repaired_by_the_next_in_ranking(
    storage, storage_nodes, store_shard, chain, registry, publisher
):
    store_shard(5, 0, size=2_048)
    epoch, event = open_audit(storage, chain)
    node = event["node"]
    with reverts("AnswerWindowOpen"):
        storage.slashMissed(epoch)
    with reverts("UnderAudit", epoch):
        storage.release(5, 0, {"from": node})
    chain.mine(STORAGE_PARAMS["answerWindow"] + 1)
    with reverts("AnswerWindowClosed"):
        storage.answer(epoch, b"", [], {"from": node})
    tx = storage.slashMissed(epoch)
    assert tx.events["AuditMissed"]["slashed"] == SLASH
    assert registry.lockedBy(storage, node, STORAGE) == BOND - SLASH
    assert storage.getReplica(5, 0, node)["status"] == STATUS["Failed"] and storage.liveReplicas(5, 0) == 2
    assert storage.auditSetSize() == 2
    holders = [n.address for n in storage_nodes if storage.getReplica(5, 0, n)["status"] != STATUS["None"]]
    fresh = [n.address for n in storage_nodes if n.address not in holders]
    repair = storage.nextHolder(5, 0, 2_048)
    assert repair == reference.next_holder(5, 0, fresh)
    data = replica_bytes(5, 0, repair, 2_048)
    storage.assign(5, 0, repair, merkle_root(data), 2_048, replica_cid(data), {"from": publisher})
    storage.confirm(5, 0, {"from": repair})
    assert storage.liveReplicas(5, 0) == 3 and storage.holdersOf(5) == 3


def test_seed_must_be_a_past_block_within_reach_and_used_once(storage, storage_nodes, store_shard, chain):
    interval = STORAGE_PARAMS["auditInterval"]
    future = chain.height // interval + 5
    with reverts("SeedUnavailable"):
        storage.challenge(future)
    epoch = chain.height // interval + 1
    brownie.chain.mine(epoch * interval - chain.height + 1)
    with reverts("NothingToAudit"):
        storage.challenge(epoch)
    store_shard(6, 0)
    storage.challenge(epoch)
    with reverts("AlreadyChallenged", epoch):
        storage.challenge(epoch)
    chain.mine(260)
    with reverts("SeedUnavailable"):
        storage.challenge(epoch + 1)


def test_release_then_leave_unlocks_the_bond(storage, storage_nodes, store_shard, registry):
    replicas = store_shard(8, 3)
    node = next(n for n in storage_nodes if n.address in replicas)
    with reverts("StillHolding", node, 1):
        storage.leave({"from": node})
    tx = storage.release(8, 3, {"from": node})
    assert tx.events["ReplicaLost"]["status"] == STATUS["Released"]
    with reverts("WrongStatus"):
        storage.release(8, 3, {"from": node})
    storage.leave({"from": node})
    assert registry.lockedBy(storage, node, STORAGE) == 0
    assert node.address not in storage.nodes() and len(storage.nodes()) == len(storage_nodes) - 1
    assert storage.auditSetSize() == 2
    with reverts("NotRegistered", node):
        storage.leave({"from": node})


def test_params_are_checked_and_governed(storage, gov, outsider):
    with reverts("AccessControlUnauthorizedAccount"):
        storage.setParams(storage_params(), {"from": outsider})
    for bad in (dict(replication=2), dict(replication=17), dict(auditInterval=0), dict(auditSlash=BOND + 1)):
        with reverts("InvalidParams"):
            storage.setParams(storage_params(**bad), {"from": gov})
    storage.setParams(storage_params(replication=5), {"from": gov})
    assert storage.params()["replication"] == 5


def test_two_missed_audits_of_one_replica_slash_twice_and_drop_it_once(storage, storage_nodes, store_shard, chain):
    (node,) = store_shard(11, 0, size=100, count=1)  # the only confirmed replica: every audit names it
    first, _ = open_audit(storage, chain)
    second, event = open_audit(storage, chain)
    assert event["node"] == node and storage.getAudit(first)["node"] == node
    mine_past(chain, storage.getAudit(first)["deadline"])
    storage.slashMissed(first)
    assert storage.getReplica(11, 0, node)["status"] == STATUS["Failed"]
    with reverts("WrongStatus"):
        storage.answer(second, b"", [], {"from": node})
    mine_past(chain, event["deadline"])
    assert storage.slashMissed(second).events["AuditMissed"]["slashed"] == SLASH
    assert storage.liveReplicas(11, 0) == 0 and storage.getNode(node)["live"] == 0 and storage.auditSetSize() == 0
