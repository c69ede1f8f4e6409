"""A storage node's audit answers: chunk i of its own replica with a proof that verifies against the recorded root;
a damaged replica or a peer's copy cannot answer."""

from __future__ import annotations

import pytest

from workers.protocol.merkle import verify
from workers.shards import ShardError
from workers.shards.audit import Holding, answer_challenge


def test_a_holder_answers_audits_of_its_own_replicas_only(manifest, shared_stores):
    node = manifest.shards[0].replicas[0].node
    first = manifest.shards[0].replicas[0]
    holding = Holding(shard=0, cid=first.cid, merkle_root=first.merkle_root, size=first.size)
    replica = shared_stores[node].get(holding.cid)
    last = -(-holding.size // 1024) - 1
    for index in (0, 1, last):
        answer = answer_challenge(holding, replica, index)
        assert verify(holding.merkle_root, index, answer.chunk, list(answer.proof))
    with pytest.raises(ShardError, match="outside its"):
        answer_challenge(holding, replica, last + 1)
    damaged = replica[:5000] + bytes([replica[5000] ^ 1]) + replica[5001:]
    with pytest.raises(ShardError, match="not the one recorded"):
        answer_challenge(holding, damaged, 0)  # damage in chunk 4 is caught when chunk 0 is challenged
    other = next(r for s in manifest.shards for r in s.replicas if r.node != node and s.index == holding.shard)
    with pytest.raises(ShardError, match="not the one recorded"):
        answer_challenge(holding, shared_stores[other.node].get(other.cid), 0)  # a peer's copy does not pass
