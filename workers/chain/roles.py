"""Stake roles by name: `IStakeRegistry.Role`, in enum order (`workers.protocol.constants.STAKE_ROLES`)."""

from __future__ import annotations

from ..protocol.constants import STAKE_ROLES as ROLES
from .errors import InvalidRequest


def parse_role(name: str | int) -> int:
    """'trainer' -> 2. Case-insensitive; `InvalidRequest` listing the known roles otherwise."""
    if isinstance(name, int) and 0 <= name < len(ROLES):
        return name
    key = str(name).strip().upper()
    if key in ROLES:
        return ROLES.index(key)
    raise InvalidRequest(f"unknown role {name!r}: expected one of {', '.join(ROLES)}")
