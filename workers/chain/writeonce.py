"""Write-once files, for the salts of commit-reveal schemes (curators' votes, trainers' and evaluators'
commitments): a salt is the only way to reveal what a commitment hides, so it is on disk before the
commitment is sent and is never half written nor replaced. The key secrets of `workers.shards.keyfiles` (a
buyer's X25519 key, a custodian's shares, a bought key) are kept the same way.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_once(path: Path, data: bytes) -> bool:
    """Writes `data` to `path` unless a file is already there; True if this call wrote it.

    The file is complete before it appears (a private temp file, fsynced, then hard-linked to its name,
    which fails if the name exists), so a crash never leaves half a file behind and a concurrent writer
    never replaces one that a commitment may already use. The file is mode 0600 and its folder, if new,
    0700 (folders above it get the default mode). OSError propagates.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".salt-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
    finally:
        os.unlink(temporary)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return True
