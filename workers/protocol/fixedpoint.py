"""18-decimal fixed-point maths ("WAD"), as `FixedPointMath.sol` rounds it (down, at every step)."""

from __future__ import annotations

from .constants import WAD


def mul_wad(x: int, y: int) -> int:
    """`x * y / WAD`, rounded down (x, y >= 0)."""
    return x * y // WAD


def pow_wad(base: int, exponent: int) -> int:
    """`base ** exponent` for a WAD `base <= WAD`, by repeated squaring rounded down at each step, exactly as
    `FixedPointMath.powWad`. Raises ValueError for a base above one (the contract reverts)."""
    if base > WAD:
        raise ValueError("FixedPointMath: base above 1")
    result = WAD
    while exponent != 0 and base != 0:
        if exponent & 1:
            result = mul_wad(result, base)
        base = mul_wad(base, base)
        exponent >>= 1
    return 0 if exponent != 0 else result
