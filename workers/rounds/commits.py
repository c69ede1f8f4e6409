"""Salts of training-round commitments, kept on disk until they are revealed.

A trainer commits `keccak(deltaCid, salt, trainer)`, an evaluator `keccak(fingerprints, salt, evaluator)`;
the salt (with what it hides) is the only way to reveal, so it is written before the commitment is sent,
like the curators' votes (`workers.data.chain.VoteStore`): one JSON file per round, kind and account,
written once (`workers.chain.writeonce`: never half written, never replaced, mode 0600), under
`$DEEPSHARD_VOTES_DIR` (default `<data dir>/deepshard/votes`):

    <root>/<chain id>/<TrainingRounds address>/round-<id>-<delta|fingerprints>-<account>.json

A step interrupted between the file and the transaction resumes with the same salt and value, so the
commitment is the same and at most one lands.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from ..chain import ChainError, InvalidRequest
from ..chain.writeonce import write_once
from ..data.chain import VOTES_DIR_ENV, default_votes_dir

KINDS = ("delta", "fingerprints")


class CommitmentNotFound(ChainError):
    """No usable stored salt for a commitment: it cannot be revealed from this machine."""


@dataclass(frozen=True)
class StoredCommitment:
    """What a commitment hides: `value` is the delta CID (str) or the fingerprints (list of K-int lists)."""

    chain_id: int
    contract: str
    round_id: int
    account: str
    kind: str
    value: Any
    salt: bytes
    commitment: bytes

    def key(self) -> tuple[int, str, int, str, str]:
        return self.chain_id, self.contract, self.round_id, self.account, self.kind

    def to_json(self) -> bytes:
        data = {"chain_id": self.chain_id, "contract": self.contract, "round_id": self.round_id,
                "account": self.account, "kind": self.kind, "value": self.value,
                "salt": "0x" + self.salt.hex(), "commitment": "0x" + self.commitment.hex()}
        return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes, path: Path) -> "StoredCommitment":
        try:
            value = json.loads(data)
            kind = value["kind"]
            if kind not in KINDS:
                raise ValueError(f"unknown kind {kind!r}")
            stored = value["value"]
            if kind == "delta":
                stored = str(stored)
            else:
                stored = [[int(x) for x in row] for row in stored]
            return cls(int(value["chain_id"]), to_checksum_address(value["contract"]), int(value["round_id"]),
                       to_checksum_address(value["account"]), kind, stored,
                       bytes.fromhex(value["salt"].removeprefix("0x")),
                       bytes.fromhex(value["commitment"].removeprefix("0x")))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CommitmentNotFound(f"stored commitment {path} is unreadable ({exc}): it cannot be revealed") from None


class CommitmentStore:
    """Salts of this machine's round commitments (see the module docstring)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_votes_dir()

    def path(self, chain_id: int, contract: str, round_id: int, account: str, kind: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        return (self.root / str(int(chain_id)) / to_checksum_address(contract)
                / f"round-{int(round_id)}-{kind}-{to_checksum_address(account)}.json")

    def load(self, chain_id: int, contract: str, round_id: int, account: str, kind: str) -> StoredCommitment | None:
        path = self.path(chain_id, contract, round_id, account, kind)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CommitmentNotFound(f"cannot read stored commitment {path}: {exc.strerror}") from None
        stored = StoredCommitment.from_json(data, path)
        expected = (int(chain_id), to_checksum_address(contract), int(round_id), to_checksum_address(account), kind)
        if stored.key() != expected:
            raise CommitmentNotFound(f"stored commitment {path} belongs to another round, contract or account")
        return stored

    def save(self, stored: StoredCommitment) -> StoredCommitment:
        """Writes `stored` durably unless one is already there (`write_once`); returns the one on disk (either)."""
        path = self.path(*stored.key())
        try:
            written = write_once(path, stored.to_json())
        except OSError as exc:
            raise InvalidRequest(f"cannot store the commitment's salt in {path.parent} ({exc.strerror}): not "
                                 f"committing, since it could never be revealed (set {VOTES_DIR_ENV})") from None
        return stored if written else self.load(*stored.key())
