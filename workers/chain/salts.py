"""The salts of commit-reveal commitments, kept on disk until they are revealed: one store for every module.

A curator commits `keccak(scores, salt, curator)`, a trainer `keccak(deltaCid, salt, trainer)`, an evaluator
`keccak(fingerprints, salt, evaluator)`. The salt, with what it hides, is the only way to reveal: lost, the
commitment cannot be revealed and its stake is slashed. So it is written before the commitment is sent, one
JSON file per commitment, once (`workers.chain.writeonce`: never half written, never replaced, mode 0600),
under `$DEEPSHARD_VOTES_DIR` (default `<data dir>/deepshard/votes`, the data dir being `$XDG_DATA_HOME` or
`~/.local/share`):

    <root>/<chain id>/<contract address>/<id>-<account>.json                    kind "vote" (DataConsensus)
    <root>/<chain id>/<contract address>/round-<id>-<kind>-<account>.json       kinds "delta", "fingerprints"

These are the layouts the curators' vote store and the rounds' commitment store used before this store
replaced both, so salts already on users' disks are found where they are. Files written since hold one
format (`Salt.to_json`); the two earlier formats are still read (`Salt.from_json`).

A commit interrupted between the file and the transaction resumes with the same salt and value, so the
commitment is the same and at most one lands.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from ..safejson import FileTooLarge, parse_json, read_limited
from .errors import ChainError, InvalidRequest
from .writeonce import write_once

VOTES_DIR_ENV = "DEEPSHARD_VOTES_DIR"
#: A salt file is one small JSON object (a few hundred bytes).
MAX_SALT_BYTES = 64 * 1024

#: File name of each kind of commitment within its contract's folder (the layouts already on users' disks).
FILE_NAMES = {
    "vote": "{id}-{account}.json",
    "delta": "round-{id}-delta-{account}.json",
    "fingerprints": "round-{id}-fingerprints-{account}.json",
}
KINDS = tuple(FILE_NAMES)


def plain_json(value: Any) -> Any:
    """`value` as it reads back from a JSON file (tuples become lists): how a salt's value is kept and compared."""
    return json.loads(json.dumps(value))


class SaltNotFound(ChainError):
    """No usable stored salt for a commitment: it cannot be revealed from this machine."""


def default_salts_dir() -> Path:
    """$DEEPSHARD_VOTES_DIR, else <per-user data dir>/deepshard/votes (data dir: $XDG_DATA_HOME or ~/.local/share)."""
    configured = os.environ.get(VOTES_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "deepshard" / "votes"


@dataclass(frozen=True)
class SaltKey:
    """Which commitment: a `kind` (`KINDS`) by `account` on item `id` (a submission, a round) of `contract`."""

    chain_id: int
    contract: str
    kind: str
    id: int
    account: str

    def __post_init__(self) -> None:
        if self.kind not in FILE_NAMES:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        object.__setattr__(self, "chain_id", int(self.chain_id))
        object.__setattr__(self, "contract", to_checksum_address(self.contract))
        object.__setattr__(self, "id", int(self.id))
        object.__setattr__(self, "account", to_checksum_address(self.account))


@dataclass(frozen=True)
class Salt:
    """A stored commitment: the salt, the `value` it hides (plain JSON: the five scores, the delta CID, or one
    K-int fingerprint per delta), and the commitment both give."""

    key: SaltKey
    value: Any
    salt: bytes
    commitment: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", plain_json(self.value))

    def to_json(self) -> bytes:
        data = {
            "chain_id": self.key.chain_id,
            "contract": self.key.contract,
            "kind": self.key.kind,
            "id": self.key.id,
            "account": self.key.account,
            "value": self.value,
            "salt": "0x" + self.salt.hex(),
            "commitment": "0x" + self.commitment.hex(),
        }
        return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes, path: Path) -> Salt:
        """Reads this store's format and the two it replaced: a curator's vote (`submission_id`, `curator`,
        `scores`, no kind) and a round commitment (`round_id`, `account`, `kind`, `value`)."""
        try:
            value = parse_json(data, what="salt file")
            if "submission_id" in value:  # the curators' former vote store
                key = SaltKey(value["chain_id"], value["contract"], "vote", value["submission_id"], value["curator"])
                hidden = value["scores"]
            else:
                key = SaltKey(
                    value["chain_id"],
                    value["contract"],
                    value["kind"],
                    value["id"] if "id" in value else value["round_id"],
                    value["account"],
                )
                hidden = value["value"]
            return cls(
                key,
                hidden,
                bytes.fromhex(value["salt"].removeprefix("0x")),
                bytes.fromhex(value["commitment"].removeprefix("0x")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SaltNotFound(f"stored salt {path} is unreadable ({exc}): its commitment cannot be revealed") from None


class SaltStore:
    """The salts of this machine's commitments (module docstring), under `root` (default `default_salts_dir()`)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_salts_dir()

    def path(self, key: SaltKey) -> Path:
        name = FILE_NAMES[key.kind].format(id=key.id, account=key.account)
        return self.root / str(key.chain_id) / key.contract / name

    def load(self, key: SaltKey) -> Salt | None:
        """The stored salt of `key`, None if there is none; `SaltNotFound` if the file is unreadable or belongs
        to another commitment."""
        path = self.path(key)
        try:
            data = read_limited(path, what="stored salt", max_bytes=MAX_SALT_BYTES)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SaltNotFound(f"cannot read stored salt {path}: {exc.strerror}") from None
        except FileTooLarge as exc:
            raise SaltNotFound(str(exc)) from None
        stored = Salt.from_json(data, path)
        if stored.key != key:
            raise SaltNotFound(
                f"stored salt {path} belongs to another commitment (chain, contract, kind, id or account)"
            )
        return stored

    def discard(self, key: SaltKey) -> None:
        """Deletes `key`'s stored salt, if any: only for a commitment that can never be revealed (a displaced
        trainer's, overwritten on chain), so that a fresh salt replaces it."""
        self.path(key).unlink(missing_ok=True)

    def save(self, salt: Salt) -> Salt:
        """Writes `salt` durably unless one is already stored for its key (`write_once`); returns the one on disk
        (either). `InvalidRequest` when it cannot be written: nothing may be committed then."""
        path = self.path(salt.key)
        try:
            written = write_once(path, salt.to_json())
        except OSError as exc:
            raise InvalidRequest(
                f"cannot store the salt in {path.parent} ({exc.strerror}): not committing, since "
                f"the commitment could never be revealed (set {VOTES_DIR_ENV})"
            ) from None
        if written:
            return salt
        stored = self.load(salt.key)
        if stored is None:
            raise SaltNotFound(f"stored salt {path} vanished while being written: not committing")
        return stored
