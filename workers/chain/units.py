"""DSH amounts: decimal strings for people, integer wei (18 decimals) for the chain."""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from .errors import InvalidRequest

DECIMALS = 18
WEI_PER_DSH = 10**DECIMALS
WAD = 10**18  # fixed-point one, as in FixedPointMath.sol
#: Commas are accepted only between groups of three digits ("1,000.5"): "1,5" is refused, not read as 15 or 1.5.
_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")


def parse_dsh(amount: str | int | Decimal) -> int:
    """'12.5' -> 12.5e18 wei; '1,000.5' and '1_000' are accepted (commas only between groups of three digits).
    `InvalidRequest` for non-numbers, misplaced commas, negatives, zero and more than 18 decimals."""
    text = str(amount).strip().replace("_", "")
    if "," in text:
        if not _GROUPED.fullmatch(text):
            raise InvalidRequest(
                f"amount {amount!r}: commas may only separate groups of three digits (e.g. 1,000.5); "
                "the decimal separator is a point"
            )
        text = text.replace(",", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidRequest(f"amount {amount!r} is not a number (expected DSH, e.g. 1000 or 12.5)") from None
    if not value.is_finite():
        raise InvalidRequest(f"amount {amount!r} is not a finite number")
    if value <= 0:
        raise InvalidRequest(f"amount must be greater than 0 DSH, got {amount}")
    wei = value * WEI_PER_DSH
    if wei != wei.to_integral_value():
        raise InvalidRequest(f"amount {amount} has more than {DECIMALS} decimals")
    return int(wei)


def format_dsh(wei: int, grouped: bool = False) -> str:
    """12500000000000000000 -> '12.5' (exact, no exponent, no trailing zeros); `grouped`: '1,000.5'."""
    sign = "-" if wei < 0 else ""
    whole, frac = divmod(abs(int(wei)), WEI_PER_DSH)
    whole_text = f"{whole:,}" if grouped else str(whole)
    if frac == 0:
        return f"{sign}{whole_text}"
    return f"{sign}{whole_text}.{frac:0{DECIMALS}d}".rstrip("0")


def format_eth(wei: int, places: int = 6) -> str:
    """Ether for display, truncated to `places` decimals (balances are never rounded up)."""
    value = (Decimal(int(wei)) / WEI_PER_DSH).quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)
    return f"{value:,.{places}f}"
