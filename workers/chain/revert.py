"""Turns raw revert data into a readable reason such as "BelowMinimum(stakeAfter=5, minStake=10)".

Nodes disagree on how they report a revert (anvil: `error.data` is the hex; ganache: `error.data` is
an object, sometimes keyed by tx hash; web3 wraps both into ContractLogicError with `.data`), so
`revert_data_from_exception` digs the hex out of whatever shape arrives, and `decode_revert` decodes it
against the standard Error/Panic encodings and every custom error in the compiled ABIs.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from .artifacts import _canonical_type, error_abis

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string), i.e. require/revert with a message
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256), compiler-inserted checks

PANIC_CODES = {
    0x00: "generic compiler panic",
    0x01: "assert failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "corrupt storage byte array",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function pointer",
}

_HEX_RE = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


@functools.lru_cache(maxsize=1)
def _custom_errors() -> dict[bytes, dict[str, Any]]:
    table: dict[bytes, dict[str, Any]] = {}
    for entry in error_abis():
        types = ",".join(_canonical_type(i) for i in entry.get("inputs", []))
        table[function_signature_to_4byte_selector(f"{entry['name']}({types})")] = entry
    return table


def decode_revert(data: bytes | str | None) -> str | None:
    """A readable reason for revert `data`, or None when there is no data (a bare `revert()`)."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x")) if _HEX_RE.fullmatch(data) else None
    if not data:
        return None
    selector, payload = data[:4], data[4:]
    try:
        if selector == ERROR_STRING_SELECTOR:
            (message,) = abi_decode(["string"], payload)
            return f'Error("{message}")'
        if selector == PANIC_SELECTOR:
            (code,) = abi_decode(["uint256"], payload)
            return f"Panic(0x{code:02x}: {PANIC_CODES.get(code, 'unknown panic code')})"
        entry = _custom_errors().get(selector)
        if entry is not None:
            inputs = entry.get("inputs", [])
            values = abi_decode([_canonical_type(i) for i in inputs], payload)
            args = ", ".join(
                f"{param['name']}={_format_value(value, param['type'])}"
                if param.get("name")
                else _format_value(value, param["type"])
                for param, value in zip(inputs, values, strict=True)
            )
            return f"{entry['name']}({args})"
    except Exception:  # malformed payload for the selector: fall through to the raw hex
        pass
    return f"unknown error 0x{data.hex()}"


def _format_value(value: Any, abi_type: str) -> str:
    if abi_type == "address":
        return to_checksum_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v, abi_type.split("[")[0]) for v in value) + "]"
    return str(value)


def revert_data_from_exception(exc: BaseException) -> str | None:
    """The hex revert data carried by a web3 exception, whatever the node's error format."""
    candidates: list[Any] = [getattr(exc, "data", None)]
    rpc_response = getattr(exc, "rpc_response", None)
    if isinstance(rpc_response, dict):
        error = rpc_response.get("error") or {}
        candidates += [error.get("data"), error.get("message")]
    candidates += list(getattr(exc, "args", ()))
    for candidate in candidates:
        found = _find_hex(candidate)
        if found is not None:
            return found
    return None


def _find_hex(value: Any) -> str | None:
    # Revert data is 0x + 4-byte selector + 32-byte words; anything shorter than a selector is not it.
    if isinstance(value, str):
        if _HEX_RE.fullmatch(value) and len(value) >= 10 and (len(value) - 10) % 64 == 0:
            return value
        return None
    if isinstance(value, dict):
        # ganache: {"message": ..., "data": {"<txhash>": {"return": "0x..."}}} or {"result"/"data": "0x..."}
        for key in ("data", "result", "return"):
            found = _find_hex(value.get(key))
            if found is not None:
                return found
        for nested in value.values():
            if isinstance(nested, dict):
                found = _find_hex(nested)
                if found is not None:
                    return found
    if isinstance(value, (list, tuple)):
        for item in value:
            found = _find_hex(item)
            if found is not None:
                return found
    return None
