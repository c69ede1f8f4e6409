"""A version's weights as encrypted shards held by storage nodes, and the buyer's way back to a loadable model.

    sharded = shard_version(model, tokenizer)                 # layer-range shards, safetensors plaintexts
    key = new_version_key()                                   # 32 random bytes; keccak(key) goes on-chain
    manifest = publish_version(sharded, key, version=2, base_model="tiny", assignment=..., stores=...)
    shares = split_key(key, shares=5, threshold=3)            # one per custodian, committed by keccak(share)
    sealed = seal_share(shares[0], buyer_public_key, version=2)
    key = combine_shares([open_share(s, buyer_private_key, version=2) for s in sealed_shares], manifest.key_hash)
    assemble(manifest, key, fetch_from_stores(stores), "out/", weights_hash=registry_hash)

The chain side (buying a key from WeightAccess, custodians' deliveries) is `workers.shards.access`, imported on its
own since it loads web3. See README.md for the formats, the crypto scheme and the trust assumptions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .assembly import Assembly, Fetch, assemble, check_replica, fetch_from_stores, fetch_shard
    from .crypto import (
        buyer_keypair,
        combine_shares,
        key_hash,
        new_version_key,
        open_replica,
        open_share,
        seal_replica,
        seal_share,
        share_commitment,
        split_key,
    )
    from .errors import KeyRejected, ManifestRejected, ShardError, ShardRejected, ShareRejected, WeightsMismatch
    from .layout import Shard, ShardedVersion, shard_state_dict, shard_version
    from .manifest import Manifest, PublicFile, Replica, ShardEntry, TensorInfo, parse_manifest
    from .publish import publish_version, seal_and_pin

# Loaded on first use, so `deepshard` commands that never touch weights do not import torch.
_HOMES = {
    "assembly": ("Assembly", "Fetch", "assemble", "check_replica", "fetch_from_stores", "fetch_shard"),
    "crypto": (
        "buyer_keypair",
        "combine_shares",
        "key_hash",
        "new_version_key",
        "open_replica",
        "open_share",
        "seal_replica",
        "seal_share",
        "share_commitment",
        "split_key",
    ),
    "errors": ("KeyRejected", "ManifestRejected", "ShardError", "ShardRejected", "ShareRejected", "WeightsMismatch"),
    "layout": ("Shard", "ShardedVersion", "shard_state_dict", "shard_version"),
    "manifest": ("Manifest", "PublicFile", "Replica", "ShardEntry", "TensorInfo", "parse_manifest"),
    "publish": ("publish_version", "seal_and_pin"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "Assembly",
    "Fetch",
    "KeyRejected",
    "Manifest",
    "ManifestRejected",
    "PublicFile",
    "Replica",
    "Shard",
    "ShardEntry",
    "ShardError",
    "ShardRejected",
    "ShardedVersion",
    "ShareRejected",
    "TensorInfo",
    "WeightsMismatch",
    "assemble",
    "buyer_keypair",
    "check_replica",
    "combine_shares",
    "fetch_from_stores",
    "fetch_shard",
    "key_hash",
    "new_version_key",
    "open_replica",
    "open_share",
    "parse_manifest",
    "publish_version",
    "seal_and_pin",
    "seal_replica",
    "seal_share",
    "shard_state_dict",
    "shard_version",
    "share_commitment",
    "split_key",
]
