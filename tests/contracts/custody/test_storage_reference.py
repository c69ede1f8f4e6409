"""Storage against its Python reference, workers.protocol.storage, on shared vectors: the rendezvous score and
the next holder over random node sets, shards and versions, and the audit draw (which replica, which chunk) of
real challenges; each answered with a proof from workers.protocol.merkle over random replica sizes (one chunk,
exact multiples of CHUNK_BYTES, a short last chunk)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contracts.custody.conftest import EXAMPLES, STORAGE_PARAMS, open_audit, replica_bytes
from workers.protocol import storage as reference
from workers.protocol.merkle import CHUNK_BYTES, chunk, merkle_proof, merkle_root

uint256 = st.integers(0, 2**256 - 1)


def test_score_and_next_holder_match_the_reference(storage, storage_nodes):
    nodes = [n.address for n in storage_nodes]

    @settings(max_examples=EXAMPLES, deadline=None)
    @given(uint256, uint256, st.sampled_from(nodes))
    def check(version, shard, node):
        assert storage.score(version, shard, node) == reference.score(version, shard, node)
        assert storage.nextHolder(version, shard, 1) == reference.next_holder(version, shard, nodes)

    check()


def test_audits_draw_and_verify_as_the_reference(storage, storage_nodes, store_shard, chain):
    sizes = st.one_of(st.sampled_from([1, CHUNK_BYTES, 2 * CHUNK_BYTES, CHUNK_BYTES + 1]), st.integers(1, 9_000))
    by_address = {n.address: n for n in storage_nodes}
    holdings = []  # (version, shard, node, size) in audit-set order
    for shard, size in enumerate([1, CHUNK_BYTES, 3 * CHUNK_BYTES + 5]):
        holdings += [(9, shard, node, size) for node in store_shard(9, shard, size=size)]

    @settings(max_examples=max(3, EXAMPLES // 5), deadline=None)
    @given(sizes)
    def check(size):
        shard = len(holdings) // 3
        holdings.extend((9, shard, node, size) for node in store_shard(9, shard, size=size))
        epoch, event = open_audit(storage, chain)
        seed_hash = chain[epoch * STORAGE_PARAMS["auditInterval"]].hash
        position, index = reference.audit_draw(seed_hash, epoch, len(holdings), [h[3] for h in holdings])
        version, target_shard, node, target_size = holdings[position]
        assert (event["shard"], event["node"], event["chunkIndex"]) == (target_shard, node, index)
        data = replica_bytes(version, target_shard, node, target_size)
        assert storage.getReplica(version, target_shard, node)["root"] == "0x" + merkle_root(data).hex()
        storage.answer(epoch, chunk(data, index), merkle_proof(data, index), {"from": by_address[node]})

    check()
