"""`deepshard weights fetch`: the buyer's assembly of a version from a local manifest (the skeleton of `deepshard
weights price|buy|fetch VERSION`; paying and reading the manifest CID, key hash and weights hash from the chain
come with the WeightAccess contract).

    deepshard weights fetch MANIFEST --weights-hash 0x.. -o DIR (--key-file FILE | --buyer-key FILE --share FILE...)

The key comes from a file, never from the command line (which other users can read): either the version key
(64 hex digits), or the buyer's X25519 private key (64 hex digits) and at least k sealed shares (162 hex digits
each, as custodians deliver them), opened and combined here. Replicas come from the content store (an IPFS node
with --ipfs-api or $DEEPSHARD_IPFS_API, else the embedded store): on IPFS a CID is the same whichever node pins
it. Expected failures print one line, `error: ...`, on stderr and exit 1; nothing is written at DIR on failure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workers.storage import StorageError, open_store

from .crypto import KEY_BYTES, SEALED_SHARE_BYTES, X25519_KEY_BYTES, combine_shares, open_share
from .errors import ShardError
from .manifest import MAX_MANIFEST_BYTES, parse_manifest

HELP = "fetch, verify and assemble a version's weights"
MAX_SECRET_FILE_BYTES = 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the `fetch` action to the `weights` parser."""
    actions = parser.add_subparsers(dest="weights_action", metavar="ACTION", required=True)
    fetch = actions.add_parser(
        "fetch",
        help="assemble a version from its manifest into a transformers folder",
        description="Fetch every shard from any holder, verify, decrypt and write a loadable model folder.",
    )
    fetch.add_argument("manifest", metavar="MANIFEST", help="the version's shard manifest (JSON file)")
    fetch.add_argument("--weights-hash", required=True, metavar="HASH", help="the registry's weights hash (0x...)")
    fetch.add_argument("-o", "--output", required=True, metavar="DIR", help="the folder to create")
    fetch.add_argument("--key-file", metavar="FILE", help="the version key, 64 hex digits")
    fetch.add_argument("--buyer-key", metavar="FILE", help="the buyer's X25519 private key, 64 hex digits")
    fetch.add_argument("--share", action="append", default=[], metavar="FILE", help="a sealed key share (repeat)")
    fetch.add_argument("--ipfs-api", metavar="ADDR", default=None, help="IPFS RPC API (default: $DEEPSHARD_IPFS_API)")
    fetch.add_argument("--store-dir", metavar="DIR", default=None, help="embedded store directory")
    fetch.set_defaults(weights_handler=_fetch)


def run(args: argparse.Namespace) -> int:
    """Runs the chosen action; expected failures print `error: ...` on stderr and return 1."""
    try:
        return args.weights_handler(args)
    except (ShardError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _read(path: str, what: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ShardError(f"cannot read the {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise ShardError(f"the {what} {path} is over {limit:,} bytes")
    return data


def _hex_secret(path: str, what: str, size: int) -> bytes:
    text = _read(path, what, MAX_SECRET_FILE_BYTES).decode("ascii", errors="replace").strip().removeprefix("0x")
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != size:
        # The content is a secret: say what is wrong with it, never show it.
        raise ShardError(f"the {what} {path} must hold {2 * size} hex digits")
    return value


def _fetch(args: argparse.Namespace) -> int:
    if bool(args.key_file) == bool(args.buyer_key or args.share):
        raise ShardError("give either --key-file, or --buyer-key with the --share files")
    manifest = parse_manifest(_read(args.manifest, "manifest", MAX_MANIFEST_BYTES), what=f"manifest {args.manifest}")
    if args.key_file:
        key = _hex_secret(args.key_file, "key file", KEY_BYTES)
    else:
        if not args.buyer_key or len(args.share) < 2:
            raise ShardError("--buyer-key and at least two --share files are needed to rebuild the key")
        private = _hex_secret(args.buyer_key, "buyer key", X25519_KEY_BYTES)
        sealed = [_hex_secret(path, "sealed share", SEALED_SHARE_BYTES) for path in args.share]
        shares = [open_share(share, private, version=manifest.version) for share in sealed]
        key = combine_shares(shares, manifest.key_hash)
    from .assembly import assemble, fetch_from_stores  # torch: imported only when weights are assembled

    with open_store(api=args.ipfs_api, store_dir=args.store_dir) as store:
        fetch = fetch_from_stores(dict.fromkeys(manifest.holders, store))
        result = assemble(manifest, key, fetch, Path(args.output), weights_hash=args.weights_hash.lower())
    for fault in result.faults:
        print(f"skipped: {fault}", file=sys.stderr)
    print(f"version {manifest.version}: {len(manifest.shards)} shards verified, weights {result.weights_hash}")
    print(f"wrote {result.folder}")
    return 0
