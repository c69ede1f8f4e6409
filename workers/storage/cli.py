"""`deepshard storage ...`: add files to and get files from the content store.

    deepshard storage add FILE              store FILE, print its CID
    deepshard storage get CID -o FILE       fetch CID, verified, into FILE

The store is an IPFS node when --ipfs-api or $DEEPSHARD_IPFS_API is set, else the embedded store
(--store-dir, else $DEEPSHARD_STORE_DIR, else the per-user data dir). Expected failures print one line,
`error: ...`, on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from . import open_store
from .base import ContentStore
from .errors import StorageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the `add` and `get` actions to the `storage` parser."""
    actions = parser.add_subparsers(dest="storage_action", metavar="ACTION", required=True)

    add = actions.add_parser(
        "add", help="store a file and print its CID", description="Store a file and print its CID."
    )
    add.add_argument("file", metavar="FILE", help="the file to store")
    add.set_defaults(storage_handler=_handler(_add))

    get = actions.add_parser(
        "get",
        help="fetch a file by CID, verified against it",
        description="Fetch a file by CID; it is written only if it matches the CID.",
    )
    get.add_argument("cid", metavar="CID", help="the content's CID (bafy..., bafk..., Qm...)")
    get.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the content")
    get.set_defaults(storage_handler=_handler(_get))

    for action in (add, get):
        action.add_argument(
            "--ipfs-api",
            metavar="ADDR",
            default=None,
            help="IPFS RPC API multiaddr (default: $DEEPSHARD_IPFS_API, else the embedded store)",
        )
        action.add_argument(
            "--store-dir",
            metavar="DIR",
            default=None,
            help="embedded store directory (default: $DEEPSHARD_STORE_DIR, else the user data dir)",
        )
        action.add_argument(
            "--timeout",
            metavar="SECONDS",
            type=float,
            default=None,
            help="how long an IPFS call may take (default: $DEEPSHARD_IPFS_TIMEOUT, else 30)",
        )


def run(args: argparse.Namespace) -> int:
    """Runs the chosen action; expected failures print `error: ...` on stderr and return 1."""
    return args.storage_handler(args)


def _handler(action: Callable[[ContentStore, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            if args.timeout is not None and args.timeout <= 0:
                raise StorageError("--timeout must be a positive number of seconds")
            with open_store(api=args.ipfs_api, store_dir=args.store_dir, timeout=args.timeout) as store:
                return action(store, args)
        except StorageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


def _add(store: ContentStore, args: argparse.Namespace) -> int:
    print(store.add_file(args.file))
    return 0


def _get(store: ContentStore, args: argparse.Namespace) -> int:
    size = store.get_to_file(args.cid, args.output)
    print(f"wrote {size} bytes to {args.output}")
    return 0
