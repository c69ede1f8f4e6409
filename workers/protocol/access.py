"""The price of a copy of a model version and the split of what a buyer pays: the Python reference of
`WeightAccess.quote` and `WeightAccess.feeSplit` (contracts/custody/WeightAccess.sol), equal to the wei.

price(V) = base_price * exp(V / value_scale) (DESIGN.md, WeightAccess; the whitepaper's access price that grows
with the value the network created), V in wei of value created (Emission's `valueCreated` when the version was
published), in WAD fixed point: the exponent V * WAD // value_scale is clamped at MAX_PRICE_EXPONENT (100) so
that exp never overflows (see `workers.protocol.fixedpoint.exp_wad`); past it the price is flat, and already
far above the token's supply.
"""

from __future__ import annotations

from dataclasses import dataclass

from .constants import BPS, WAD
from .fixedpoint import exp_wad

#: Clamp of the price exponent, WAD (`WeightAccess.MAX_PRICE_EXPONENT`).
MAX_PRICE_EXPONENT = 100 * WAD


def price(base_price: int, value: int, value_scale: int) -> int:
    """The price in wei of a version published when `value` wei of value had been created:
    `base_price * exp_wad(min(value * WAD // value_scale, MAX_PRICE_EXPONENT)) // WAD`, every step rounded down
    as the contract does (OpenZeppelin `Math.mulDiv`). `base_price` and `value` are wei (>= 0), `value_scale`
    wei (> 0); raises ValueError otherwise."""
    if base_price < 0 or value < 0 or value_scale <= 0:
        raise ValueError(
            f"price needs base_price >= 0, value >= 0, value_scale > 0 (wei): {base_price, value, value_scale}"
        )
    exponent = min(value * WAD // value_scale, MAX_PRICE_EXPONENT)
    return base_price * exp_wad(exponent) // WAD


@dataclass(frozen=True)
class FeeSplit:
    """Where a settled purchase's price goes, in wei: `burned + storage + per_custodian * delivered + treasury`
    equals the price exactly."""

    burned: int
    storage: int
    per_custodian: int
    treasury: int


def fee_split(amount: int, burn_bps: int, storage_bps: int, custodian_bps: int, delivered: int) -> FeeSplit:
    """How `amount` wei splits when `delivered` (>= 1) custodians delivered their shares: the burned, storage
    and custodians' parts are `amount * bps // BPS` (the custodians' part then divided evenly, rounded down),
    the treasury takes the rest, rounding included. The three bps together are at most BPS. Raises ValueError
    on a negative amount, bps outside that or `delivered < 1`."""
    if amount < 0 or delivered < 1 or min(burn_bps, storage_bps, custodian_bps) < 0:
        raise ValueError(f"fee_split needs amount >= 0, bps >= 0 and delivered >= 1: {amount, delivered}")
    if burn_bps + storage_bps + custodian_bps > BPS:
        raise ValueError(f"burn, storage and custodian shares add up to more than {BPS} bps")
    burned = amount * burn_bps // BPS
    storage = amount * storage_bps // BPS
    per_custodian = amount * custodian_bps // BPS // delivered
    return FeeSplit(burned, storage, per_custodian, amount - burned - storage - per_custodian * delivered)
