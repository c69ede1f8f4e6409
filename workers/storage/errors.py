"""Errors of the storage layer.

Every expected failure (bad CID, missing content, node down, corrupt data, file too large) is a
`StorageError` whose message is one self-explanatory line: the CLI prints it as `error: <message>` and
exits 1. Anything else escaping the storage layer is a bug and keeps its traceback.
"""


class StorageError(Exception):
    """Base of the expected failures; `str(error)` is a complete sentence for the user."""


class InvalidCid(StorageError):
    """A CID string (or binary CID in a DAG link) cannot be parsed, or uses a codec/hash we cannot verify."""


class NotFound(StorageError):
    """The store does not hold the content, or the node could not produce it within the timeout."""


class NodeUnreachable(StorageError):
    """The IPFS node's RPC API does not answer (refused, timed out, bad address)."""


class NodeError(StorageError):
    """The IPFS node answered with an error we did not expect."""


class IntegrityError(StorageError):
    """Data read back does not match its CID (or the DAG is inconsistent); nothing was returned or written."""


class FileTooLarge(StorageError):
    """The content exceeds the store's configured maximum size."""


class UnsupportedContent(StorageError):
    """The CID names something other than a UnixFS file (a directory, a symlink, another codec)."""
