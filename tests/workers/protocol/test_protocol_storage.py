"""The storage references (workers.protocol.storage): the ranking orders by the keccak score, removing a node
moves only the shards it held, the audit draw stays in range, and the replica key's HKDF info layout."""

import pytest

from workers.protocol.storage import audit_draw, holders, next_holder, ranking, replica_info, score

NODES = [f"0x{i:040x}" for i in range(1, 9)]


def test_ranking_orders_by_score_and_next_holder_is_its_head():
    ranked = ranking(2, 5, NODES)
    assert [score(2, 5, n) for n in ranked] == sorted((score(2, 5, n) for n in NODES), reverse=True)
    assert next_holder(2, 5, NODES) == ranked[0] and next_holder(2, 5, []) is None
    assert holders(2, 5, NODES, 3) == ranked[:3]


def test_removing_a_node_moves_only_its_own_shards():
    for shard in range(50):
        before = holders(1, shard, NODES, 3)
        after = holders(1, shard, NODES[1:], 3)
        gone = NODES[0].lower() in (h.lower() for h in before)
        assert after[: 3 - gone] == [h for h in before if h.lower() != NODES[0].lower()]


def test_audit_draw_stays_in_range():
    for epoch in range(30):
        position, chunk = audit_draw(b"\x07" * 32, epoch, 5, [1, 1024, 1025, 5000, 0])
        assert 0 <= position < 5 and 0 <= chunk < max(1, -(-[1, 1024, 1025, 5000, 0][position] // 1024))
    with pytest.raises(ValueError):
        audit_draw(b"\x07" * 32, 1, 0, [])


def test_replica_info_is_address_then_shard_index():
    info = replica_info("0x" + "ab" * 20, 3)
    assert info == bytes.fromhex("ab" * 20) + (3).to_bytes(32, "big")
