"""Storage nodes' shard assignment and audits: the Python reference of `Storage.sol`'s rendezvous ranking and
audit draw, and the HKDF info that makes each node's replica of a shard unique.

Rendezvous (highest-random-weight) hashing, Thaler and Ravishankar 1998: node n's score for (version, shard)
is keccak256(abi.encode(uint256 version, uint256 shard, address n)) read as an integer; the shard's holders are
the R highest-scored eligible nodes. Adding or removing a node moves only the shards it ranks first for, and a
repair takes the next node down the ranking. `Storage.assign` checks the publisher's choice against the same
rule (`Storage.nextHolder`).
"""

from __future__ import annotations

from collections.abc import Iterable

from eth_abi import encode
from eth_utils import keccak, to_canonical_address, to_checksum_address

from .merkle import chunk_count


def score(version: int, shard: int, node: str) -> int:
    """Node `node`'s rendezvous score for (`version`, `shard`): keccak256(abi.encode(version, shard, node))
    as a uint256 (`Storage.score`). Higher ranks first."""
    return int.from_bytes(keccak(encode(["uint256", "uint256", "address"], [version, shard, node])), "big")


def ranking(version: int, shard: int, nodes: Iterable[str]) -> list[str]:
    """`nodes` (addresses) ordered by score, best first, as checksum addresses. Scores are 256-bit hashes:
    ties do not happen in practice, and the contract keeps the first node it scanned on one."""
    return sorted(
        (to_checksum_address(node) for node in nodes), key=lambda node: score(version, shard, node), reverse=True
    )


def next_holder(version: int, shard: int, eligible: Iterable[str]) -> str | None:
    """The node the next replica of (`version`, `shard`) goes to: the best-ranked of `eligible` (the
    registered nodes with room for the replica that never held it, as `Storage.nextHolder` filters them);
    None when there is none."""
    ranked = ranking(version, shard, eligible)
    return ranked[0] if ranked else None


def holders(version: int, shard: int, nodes: Iterable[str], replication: int) -> list[str]:
    """The first `replication` nodes of the ranking: where a shard goes when every node has room."""
    return ranking(version, shard, nodes)[:replication]


def audit_draw(seed_block_hash: bytes, epoch: int, audit_set_size: int, sizes: list[int]) -> tuple[int, int]:
    """What `Storage.challenge(epoch)` picks from the hash of block `epoch * auditInterval`: (position in the
    audit set, chunk index). `sizes[i]` is the byte size of the replica at position i of the audit set
    (`audit_set_size` of them). Raises ValueError on an empty audit set."""
    if audit_set_size < 1 or len(sizes) != audit_set_size:
        raise ValueError(f"audit_draw needs one size per replica of a non-empty audit set, got {audit_set_size}")
    seed = int.from_bytes(keccak(encode(["bytes32", "uint256"], [seed_block_hash, epoch])), "big")
    position = seed % audit_set_size
    return position, (seed >> 128) % chunk_count(sizes[position])


def replica_info(node: str, shard: int) -> bytes:
    """The HKDF `info` of node `node`'s replica key for shard `shard`: the node's 20-byte address followed by
    the shard index as a 32-byte big-endian integer. The replica key is HKDF-SHA256(version key, info): each
    node's ciphertext of a shard differs, so a node cannot answer an audit from a peer's copy."""
    if shard < 0:
        raise ValueError(f"shard index must be >= 0, got {shard}")
    return to_canonical_address(node) + shard.to_bytes(32, "big")
