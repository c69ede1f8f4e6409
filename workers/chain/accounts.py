"""Signing accounts.

A `LocalSigner` holds a private key and signs in-process. It comes from `DEEPSHARD_PRIVATE_KEY` or
from an encrypted JSON keystore (`DEEPSHARD_KEYSTORE`; brownie's ~/.brownie/accounts/<id>.json files
are this format) unlocked with `DEEPSHARD_KEYSTORE_PASSWORD` or a password prompt.
A `NodeSigner` names an account the node itself unlocks (dev chains, brownie's `accounts[0]`).

The key never leaves the signer: it is kept in a private attribute, `repr` shows only the address,
error messages never quote the key, and pickling is refused so it cannot leak into a task queue.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from ..safejson import load_json_file
from .errors import SignerUnavailable

PRIVATE_KEY_ENV = "DEEPSHARD_PRIVATE_KEY"
KEYSTORE_ENV = "DEEPSHARD_KEYSTORE"
KEYSTORE_PASSWORD_ENV = "DEEPSHARD_KEYSTORE_PASSWORD"
#: A v3 keystore is under 1 KB; anything near this bound is not one.
MAX_KEYSTORE_BYTES = 64 * 1024


class Signer:
    """Signs transactions and EIP-712 messages for one address."""

    address: str

    def __reduce__(self):
        raise TypeError(f"{type(self).__name__} cannot be pickled: keys stay in the process that loaded them")


class LocalSigner(Signer):
    """Holds a private key; signs in-process."""

    __slots__ = ("address", "_account")

    def __init__(self, account: LocalAccount):
        self._account = account
        self.address = account.address

    @classmethod
    def from_key(cls, private_key: str | bytes) -> LocalSigner:
        """From a 32-byte key (hex with or without 0x, or bytes). Errors never echo the key."""
        try:
            return cls(Account.from_key(private_key))
        except Exception:
            raise SignerUnavailable("the private key is not valid (expected 32 bytes of hex)") from None

    def sign_transaction(self, tx: Mapping[str, Any]) -> bytes:
        """Signed raw transaction, ready for eth_sendRawTransaction."""
        return bytes(self._account.sign_transaction(dict(tx)).raw_transaction)

    def sign_typed_data(self, full_message: Mapping[str, Any]) -> tuple[int, bytes, bytes]:
        """EIP-712 signature (v, r, s) of a full typed-data message (types, primaryType, domain, message)."""
        signed = self._account.sign_typed_data(full_message=dict(full_message))
        return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")

    def __repr__(self) -> str:
        return f"LocalSigner({self.address})"

    __str__ = __repr__


class NodeSigner(Signer):
    """An account the node unlocks and signs for (eth_sendTransaction, eth_signTypedData_v4)."""

    __slots__ = ("address",)

    def __init__(self, address: str):
        self.address = to_checksum_address(address)

    def __repr__(self) -> str:
        return f"NodeSigner({self.address})"

    __str__ = __repr__


def load_signer(
    env: Mapping[str, str] | None = None,
    prompt: Callable[[str], str] = getpass.getpass,
) -> LocalSigner:
    """The signer configured by the environment; `SignerUnavailable` with a clear reason otherwise."""
    env = os.environ if env is None else env
    private_key = env.get(PRIVATE_KEY_ENV, "").strip()
    keystore = env.get(KEYSTORE_ENV, "").strip()
    if private_key and keystore:
        # Refuse to guess which identity the user meant to sign with.
        raise SignerUnavailable(f"both {PRIVATE_KEY_ENV} and {KEYSTORE_ENV} are set: set only one")
    if private_key:
        try:
            return LocalSigner.from_key(private_key)
        except SignerUnavailable:
            raise SignerUnavailable(
                f"{PRIVATE_KEY_ENV} is not a valid private key (expected 32 bytes of hex)"
            ) from None
    if keystore:
        return load_keystore(keystore, env.get(KEYSTORE_PASSWORD_ENV), prompt)
    raise SignerUnavailable(
        f"no signing key: set {PRIVATE_KEY_ENV}, or {KEYSTORE_ENV} to an encrypted JSON keystore "
        f"(e.g. ~/.brownie/accounts/<id>.json) with {KEYSTORE_PASSWORD_ENV} or an interactive prompt"
    )


def load_keystore(
    path: str | Path,
    password: str | None = None,
    prompt: Callable[[str], str] = getpass.getpass,
) -> LocalSigner:
    """Decrypts an encrypted JSON keystore (v3, as written by eth_account and brownie)."""
    path = Path(path).expanduser()
    try:
        keyfile = load_json_file(path, what="its JSON", max_bytes=MAX_KEYSTORE_BYTES)
    except FileNotFoundError:
        raise SignerUnavailable(f"keystore {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise SignerUnavailable(f"keystore {path} is unreadable: {exc}") from None
    if password is None:
        try:
            password = prompt(f"Password for keystore {path}: ")
        except (EOFError, KeyboardInterrupt):
            raise SignerUnavailable(f"no password for keystore {path}: set {KEYSTORE_PASSWORD_ENV}") from None
    try:
        key = Account.decrypt(keyfile, password)
    except ValueError:
        raise SignerUnavailable(f"cannot decrypt keystore {path}: wrong password") from None
    except Exception as exc:  # malformed JSON structure, unsupported KDF ...
        raise SignerUnavailable(f"keystore {path} is not a valid encrypted key ({type(exc).__name__})") from None
    return LocalSigner(Account.from_key(key))
