"""Network roles, in the order of `IStakeRegistry.Role` (the enum's integer is the index here)."""

from __future__ import annotations

from .errors import InvalidRequest

ROLES: tuple[str, ...] = ("INFORMANT", "CURATOR", "TRAINER", "EVALUATOR", "STORAGE", "INFERENCE")


def parse_role(name: str | int) -> int:
    """'trainer' -> 2. Case-insensitive; `InvalidRequest` listing the known roles otherwise."""
    if isinstance(name, int) and 0 <= name < len(ROLES):
        return name
    key = str(name).strip().upper()
    if key in ROLES:
        return ROLES.index(key)
    raise InvalidRequest(f"unknown role {name!r}: expected one of {', '.join(ROLES)}")
