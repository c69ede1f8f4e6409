"""The chunk Merkle tree of a stored shard replica: the Python reference of what `Storage` audits check with
OpenZeppelin's `MerkleProof` (commutative keccak256 of each sorted pair, the convention of OpenZeppelin's
merkle-tree library).

A replica of `size` bytes is cut into `CHUNK_BYTES` chunks (the last may be shorter; an empty replica is one
empty chunk). Leaf i is `keccak256(bytes.concat(keccak256(abi.encodePacked(uint256(i), chunk))))`: the index
binds a chunk to its position (sorted-pair hashing alone does not), and the double hash keeps a leaf from ever
equalling an inner node (OpenZeppelin's second-preimage defence). Each level pairs neighbours left to right; an
odd last node moves up unchanged. A proof is the list of siblings from the leaf up (levels where the node moved
up unpaired contribute nothing), which is exactly what `MerkleProof.verify(proof, root, leaf)` folds.
"""

from __future__ import annotations

import sha3  # safe-pysha3: keccak256 without eth_utils' per-call dispatch, ~5x faster on 1 KiB chunks


def keccak(data: bytes) -> bytes:
    """keccak256 of `data` (32 bytes): Ethereum's, not NIST SHA3-256."""
    return sha3.keccak_256(data).digest()


# 1 KiB: an audit answer carries one chunk as calldata (~16 gas a byte), and a proof of a 1 GiB replica is 20 hashes.
CHUNK_BYTES = 1024


def chunk_count(size: int) -> int:
    """The number of chunks of a replica of `size` bytes (>= 1)."""
    if size < 0:
        raise ValueError(f"size must be >= 0 bytes, got {size}")
    return max(1, -(-size // CHUNK_BYTES))


def chunk(data: bytes, index: int) -> bytes:
    """Chunk `index` of `data` (bytes). Raises IndexError outside 0..chunk_count(len(data)) - 1."""
    if not 0 <= index < chunk_count(len(data)):
        raise IndexError(f"chunk {index} of a {len(data)}-byte replica ({chunk_count(len(data))} chunks)")
    return data[index * CHUNK_BYTES : (index + 1) * CHUNK_BYTES]


def leaf_hash(index: int, piece: bytes) -> bytes:
    """Leaf `index`: keccak256(keccak256(uint256 index ‖ chunk)), 32 bytes."""
    return keccak(keccak(index.to_bytes(32, "big") + piece))


def _parent(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a <= b else keccak(b + a)


def _levels(data: bytes) -> list[list[bytes]]:
    level = [leaf_hash(i, chunk(data, i)) for i in range(chunk_count(len(data)))]
    levels = [level]
    while len(level) > 1:
        level = [_parent(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def merkle_root(data: bytes) -> bytes:
    """The 32-byte root of the replica `data`."""
    return _levels(data)[-1][0]


def merkle_proof(data: bytes, index: int) -> list[bytes]:
    """The proof of chunk `index` of `data`: sibling hashes (32 bytes each) from the leaf up.
    Raises IndexError for an index outside the replica."""
    chunk(data, index)
    proof = []
    for level in _levels(data)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        index //= 2
    return proof


def verify(root: bytes, index: int, piece: bytes, proof: list[bytes]) -> bool:
    """Whether `piece` is chunk `index` of the replica with `root` (what MerkleProof.verify decides on-chain)."""
    node = leaf_hash(index, piece)
    for sibling in proof:
        node = _parent(node, sibling)
    return node == root
