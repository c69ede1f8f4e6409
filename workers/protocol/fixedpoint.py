"""18-decimal fixed-point maths ("WAD"), as `FixedPointMath.sol` rounds it (down, at every step).

Inputs are uint256 on-chain; here a negative input, one of 2**256 or more, or a product that would overflow
uint256 raises ValueError where the contract would revert.
"""

from __future__ import annotations

from .constants import WAD

UINT256_MAX = 2**256 - 1
#: ln 2 in WAD, rounded down (FixedPointMath.LN2_WAD).
LN2_WAD = 693_147_180_559_945_309
#: Largest input of `exp_wad` (FixedPointMath.MAX_EXP_INPUT): e**136 * 1e18 would not fit in uint256.
MAX_EXP_INPUT = 135 * WAD
_EXP_TERMS = 24


def _uint256(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= UINT256_MAX:
        raise ValueError(f"{name} must be a uint256 int, got {value!r}")
    return value


def mul_wad(x: int, y: int) -> int:
    """`x * y / WAD`, rounded down; ValueError when `x * y` overflows uint256 (a checked-arithmetic panic
    on-chain)."""
    product = _uint256("x", x) * _uint256("y", y)
    if product > UINT256_MAX:
        raise ValueError(f"mul_wad overflows uint256: {x} * {y}")
    return product // WAD


def pow_wad(base: int, exponent: int) -> int:
    """`base ** exponent` for a WAD `base <= WAD` and an integer `exponent`, by repeated squaring rounded
    down at each step, exactly as `FixedPointMath.powWad` (`0 ** 0` is one). Raises ValueError for a base
    above one (the contract reverts with "FixedPointMath: base above 1")."""
    _uint256("base", base)
    _uint256("exponent", exponent)
    if base > WAD:
        raise ValueError("FixedPointMath: base above 1")
    result = WAD
    while exponent != 0 and base != 0:
        if exponent & 1:
            result = mul_wad(result, base)
        base = mul_wad(base, base)
        exponent >>= 1
    # The base decayed to zero before the exponent ran out: every further factor is zero.
    return 0 if exponent != 0 else result


def exp_wad(x: int) -> int:
    """e**x for a WAD `x` in 0..MAX_EXP_INPUT, rounded down exactly as `FixedPointMath.expWad`: e**x =
    2**k * e**r with k = x // LN2_WAD and r in [0, ln 2), e**r by its Taylor series, each term rounded down,
    until a term is zero (at most 24 terms). Raises ValueError above MAX_EXP_INPUT (the contract reverts with
    ExpInputTooLarge)."""
    _uint256("x", x)
    if x > MAX_EXP_INPUT:
        raise ValueError(f"exp_wad input {x} above MAX_EXP_INPUT {MAX_EXP_INPUT}")
    k, r = divmod(x, LN2_WAD)
    term = result = WAD
    for i in range(1, _EXP_TERMS + 1):
        if term == 0:
            break
        term = term * r // (WAD * i)
        result += term
    return result << k
