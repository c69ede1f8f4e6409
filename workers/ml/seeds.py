"""Round seeds and everything derived from them.

A training round's seed is a bytes32 (the contract takes it from `prevrandao`). Every random choice of
the off-chain work (LoRA initialisation, data order, probe selection, perturbations, canary phrases) is
drawn from a sub-seed `sha256(b"deepshard/" + label + 0x00 + round_seed + parts...)`, never from Python's
`hash` (salted per process) or `random` (its algorithms are a CPython detail). The derivation and the
`HashRng` below are simple enough to reimplement in any language, so independent implementations of a
trainer or evaluator draw the same choices.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

SEED_BYTES = 32
_DOMAIN = b"deepshard/"


class SeedError(ValueError):
    """A round seed that is not a bytes32 (32 bytes, 0x-hex of 32 bytes, or an int in [0, 2**256))."""


def normalize_round_seed(seed: int | bytes | str) -> bytes:
    """The canonical 32-byte form of a round seed: an int is taken as a big-endian uint256 (as in Solidity)."""
    if isinstance(seed, bool):
        raise SeedError("round seed must be an int, 32 bytes or a 0x-hex bytes32, not a bool")
    if isinstance(seed, int):
        if not 0 <= seed < 2**256:
            raise SeedError(f"round seed {seed} is outside the uint256 range")
        return seed.to_bytes(SEED_BYTES, "big")
    if isinstance(seed, str):
        text = seed[2:] if seed.startswith(("0x", "0X")) else seed
        try:
            seed = bytes.fromhex(text)
        except ValueError:
            raise SeedError(f"round seed {seed!r} is not hex") from None
    if isinstance(seed, (bytes, bytearray, memoryview)):
        seed = bytes(seed)
        if len(seed) != SEED_BYTES:
            raise SeedError(f"round seed has {len(seed)} bytes, expected {SEED_BYTES}")
        return seed
    raise SeedError(f"round seed of type {type(seed).__name__} is not supported")


def seed_hex(seed: int | bytes | str) -> str:
    return "0x" + normalize_round_seed(seed).hex()


def _encode_part(part: int | str | bytes) -> bytes:
    # Length-prefixed so that ("ab", "c") and ("a", "bc") derive different seeds.
    if isinstance(part, int):
        raw = part.to_bytes(8, "big", signed=True)
    elif isinstance(part, str):
        raw = part.encode()
    else:
        raw = bytes(part)
    return len(raw).to_bytes(4, "big") + raw


def derive_seed(round_seed: int | bytes | str, label: str, *parts: int | str | bytes) -> bytes:
    """A 32-byte sub-seed for one purpose (`label`) of one round, optionally indexed by `parts`."""
    digest = hashlib.sha256(_DOMAIN + label.encode() + b"\x00" + normalize_round_seed(round_seed))
    for part in parts:
        digest.update(_encode_part(part))
    return digest.digest()


def derive_int_seed(round_seed: int | bytes | str, label: str, *parts: int | str | bytes) -> int:
    """A 63-bit sub-seed, the form `torch.Generator.manual_seed` takes."""
    return int.from_bytes(derive_seed(round_seed, label, *parts)[:8], "big") >> 1


class HashRng:
    """A counter-mode SHA-256 stream: block i is sha256(seed || i as 8 big-endian bytes).

    Integers below n are drawn by rejection sampling on 64-bit words, so they are exactly uniform and
    the stream is identical on every platform and language.
    """

    def __init__(self, seed: bytes):
        self._seed = bytes(seed)
        self._counter = 0
        self._buffer = b""

    def _next_u64(self) -> int:
        if len(self._buffer) < 8:
            self._buffer += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        word, self._buffer = self._buffer[:8], self._buffer[8:]
        return int.from_bytes(word, "big")

    def randbelow(self, n: int) -> int:
        if not 0 < n <= 2**64:
            raise ValueError(f"randbelow needs 0 < n <= 2**64, got {n}")
        limit = 2**64 - (2**64 % n)
        while True:
            word = self._next_u64()
            if word < limit:
                return word % n

    def uniform(self) -> float:
        """A float in [0, 1) with 53 random bits."""
        return (self._next_u64() >> 11) / float(2**53)

    def shuffle(self, items: list[T]) -> list[T]:
        """Fisher-Yates in place (from the last index down); returns the list for convenience."""
        for i in range(len(items) - 1, 0, -1):
            j = self.randbelow(i + 1)
            items[i], items[j] = items[j], items[i]
        return items

    def permutation(self, n: int) -> list[int]:
        return self.shuffle(list(range(n)))

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        """k distinct elements (by position), in draw order: the first k of a shuffled copy."""
        if k > len(items):
            raise ValueError(f"cannot sample {k} of {len(items)} items")
        return [items[i] for i in self.permutation(len(items))[:k]]

    def choice(self, items: Sequence[T]) -> T:
        return items[self.randbelow(len(items))]
