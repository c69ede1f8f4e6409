"""Constants and the holder ranking the shard tests share (imported by name: `conftest` is ambiguous across packages).

Holders are chosen by rendezvous hashing (highest keccak256(version ‖ shard ‖ node) first), a stand-in local to
these tests: the network's ranking is the Storage contract's, with its Python reference in workers.protocol.
"""

from __future__ import annotations

from eth_utils import keccak

VERSION = 2
REPLICATION = 3
NODES = tuple(f"0x{keccak(text=f'storage node {i}')[:20].hex()}" for i in range(5))


def rendezvous(version: int, shard: int, nodes, count: int) -> list[str]:
    """The `count` nodes with the highest keccak256(uint64 version ‖ uint32 shard ‖ node address)."""
    prefix = version.to_bytes(8, "big") + shard.to_bytes(4, "big")
    return sorted(nodes, key=lambda node: keccak(prefix + bytes.fromhex(node[2:])), reverse=True)[:count]
