"""The chunk Merkle tree reference (workers.protocol.merkle): every chunk of replicas of awkward sizes proves
against the root, and nothing else does."""

import pytest

from workers.protocol.merkle import CHUNK_BYTES, chunk, chunk_count, merkle_proof, merkle_root, verify


@pytest.mark.parametrize("size", [0, 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES, 5 * CHUNK_BYTES - 7])
def test_every_chunk_proves_against_the_root(size):
    data = bytes((i * 7 + 3) % 251 for i in range(size))
    root = merkle_root(data)
    for index in range(chunk_count(size)):
        assert verify(root, index, chunk(data, index), merkle_proof(data, index))


def test_a_chunk_does_not_prove_at_another_index_or_altered():
    data = bytes(range(256)) * 20  # 5 chunks
    root = merkle_root(data)
    proof = merkle_proof(data, 2)
    assert not verify(root, 3, chunk(data, 2), proof)
    altered = bytearray(chunk(data, 2))
    altered[0] ^= 1
    assert not verify(root, 2, bytes(altered), proof)
    assert merkle_root(data[:-1] + b"\x00") != root


def test_an_index_outside_the_replica_is_refused():
    with pytest.raises(IndexError, match="chunk 2 of a 2048-byte replica"):
        merkle_proof(bytes(2 * CHUNK_BYTES), 2)
