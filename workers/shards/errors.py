"""Errors of the shard layer. Every expected failure is a `ShardError` whose message is one complete sentence
naming what was refused (the shard index, the holder, the field) so a CLI can print it as it is."""


class ShardError(ValueError):
    """Base of the expected failures of sharding, sealing and assembling a version."""


class ManifestRejected(ShardError):
    """A shard manifest that is not well-formed: bad JSON, wrong types, out-of-range sizes, inconsistent fields."""


class ShardRejected(ShardError):
    """No holder of a shard produced a copy that verifies (CID, Merkle root, AES-GCM tag, plaintext hash, tensors),
    or a shard's bytes do not match what the manifest says; the message names the shard and each holder's fault."""


class KeyRejected(ShardError):
    """A version key (or a set of key shares) that does not hash to the committed keccak(key)."""


class ShareRejected(ShardError):
    """A sealed key share that cannot be opened with the given private key, or a share that fails its commitment."""


class WeightsMismatch(ShardError):
    """The assembled weights do not hash to the weights hash the registry holds for the version."""
