"""Secrets of the key's way to a buyer kept on disk: the buyer's X25519 private key, a custodian's key shares and
a bought version key. Each is a hex file written once (mode 0600 in a 0700 folder, never half written, never
replaced: `workers.chain.writeonce`) and read back with its size checked; no message ever shows a secret's content.
Defaults live under `data_dir()`.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from .. import safejson
from ..chain.writeonce import write_once
from .crypto import X25519_KEY_BYTES
from .errors import ShardError

MAX_SECRET_FILE_BYTES = 1024


def data_dir() -> Path:
    """<per-user data dir>/deepshard: `$XDG_DATA_HOME`, else ~/.local/share."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "deepshard"


def read_limited(path: str | os.PathLike, what: str, limit: int) -> bytes:
    """The bytes of file `path` (`what` names it in errors: "manifest"), at most `limit` of them
    (`workers.safejson.read_limited`). Raises ShardError when it cannot be read or is larger."""
    try:
        return safejson.read_limited(path, what=f"the {what}", max_bytes=limit)
    except OSError as exc:
        raise ShardError(f"cannot read the {what} {path}: {exc.strerror}") from None
    except safejson.FileTooLarge as exc:
        raise ShardError(str(exc)) from None


def read_hex_secret(path: str | os.PathLike, what: str, size: int) -> bytes:
    """The `size` bytes a hex file holds (64 hex digits for 32 bytes, optional 0x, surrounding whitespace).
    Raises ShardError naming the file (never its content) when it cannot be read or holds anything else."""
    data = read_limited(path, what, MAX_SECRET_FILE_BYTES)
    text = data.decode("ascii", errors="replace").strip().removeprefix("0x")
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != size:
        # The content is a secret: say what is wrong with it, never show it.
        raise ShardError(f"the {what} {path} must hold {2 * size} hex digits")
    return value


def write_hex_secret(path: str | os.PathLike, value: bytes, what: str) -> Path:
    """Writes `value` as hex to a new file (mode 0600, folder 0700 if new; never half written). Raises ShardError
    if the file exists (a secret is never replaced) or cannot be written."""
    target = Path(path)
    try:
        written = write_once(target, (value.hex() + "\n").encode())
    except OSError as exc:
        raise ShardError(f"cannot write the {what} {target}: {exc.strerror}") from None
    if not written:
        raise ShardError(f"the {what} {target} already exists: choose another file or move that one away")
    return target


def default_buyer_key_path() -> Path:
    """Where the buyer's X25519 private key lives by default: <data dir>/deepshard/buyer.key."""
    return data_dir() / "buyer.key"


def buyer_key_pair(path: str | os.PathLike) -> tuple[bytes, bytes, bool]:
    """(private key, public key, created) of the buyer's X25519 key pair kept at `path`: read if the file exists,
    else drawn (`cryptography`, the OS CSPRNG) and written (hex, mode 0600). Raises ShardError for an unreadable or
    malformed file."""
    target = Path(path)
    created = False
    if not target.exists():
        private = X25519PrivateKey.generate().private_bytes_raw()
        try:
            created = write_once(target, (private.hex() + "\n").encode())
        except OSError as exc:
            raise ShardError(f"cannot write the buyer key {target}: {exc.strerror}") from None
    # Read back even when just written: a concurrent run may have created the file first, and its key wins.
    private = read_hex_secret(target, "buyer key", X25519_KEY_BYTES)
    public = X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    return private, public, created
