"""A storage node's side of custody, as a pure function: its answer to an audit challenge (chunk i of its replica
with the Merkle proof against the root recorded for it).

The challenge itself (which node, shard and chunk, at blocks nobody chooses) and the check of the answer are the
`Storage` contract's; the check's Python reference is `workers.protocol.merkle.verify`.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.protocol.merkle import chunk, chunk_count, merkle_proof, verify

from .errors import ShardError


@dataclass(frozen=True)
class Holding:
    """A replica a node must keep: the shard index, its CID, Merkle root (32 bytes) and size in bytes."""

    shard: int
    cid: str
    merkle_root: bytes
    size: int


@dataclass(frozen=True)
class AuditAnswer:
    """Chunk `index` of a replica (at most CHUNK_BYTES bytes) and its proof (32-byte sibling hashes, leaf up)."""

    shard: int
    index: int
    chunk: bytes
    proof: tuple[bytes, ...]


def answer_challenge(holding: Holding, replica: bytes, index: int) -> AuditAnswer:
    """The answer to a challenge for chunk `index` of `holding`, from the replica's bytes.

    Raises ShardError when `replica` is not the held replica (its Merkle root differs: answering would be
    slashed anyway, so the node should repair first) or `index` is outside 0..chunk_count(size) - 1."""
    if not 0 <= index < chunk_count(holding.size):
        raise ShardError(f"shard {holding.shard}: chunk {index} is outside its {chunk_count(holding.size)} chunks")
    if len(replica) == holding.size:
        piece, proof = chunk(replica, index), merkle_proof(replica, index)
        # Every chunk feeds some sibling on the path, so a replica damaged anywhere fails here.
        if verify(holding.merkle_root, index, piece, proof):
            return AuditAnswer(holding.shard, index, piece, tuple(proof))
    raise ShardError(f"shard {holding.shard}: the local replica is not the one recorded (repair it)")
