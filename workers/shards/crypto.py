"""The cryptography of a version's weights: the version key, per-node replica encryption, Shamir shares of the key
and key shares sealed to a buyer. Every primitive comes from a maintained library; this module only fixes how they
are combined (see README.md, "The crypto scheme"):

- `cryptography` (pyca): AES-256-GCM (`AESGCM`), HKDF-SHA256, X25519.
- `pyshamir` (a port of HashiCorp Vault's Shamir over GF(2^8)): k-of-n shares of the 32-byte key, 33 bytes each
  (the share's x coordinate is its last byte). Shamir shares carry no integrity: `keccak(key)` (on-chain) and
  `keccak(share)` commitments give it.
- `eth_utils.keccak`: keccak256, the hash the contracts can recompute.

Replica of shard s for node n: `k, nonce = HKDF-SHA256(ikm = version key, salt = none, info = REPLICA_LABEL ‖
node (20 bytes) ‖ uint32 s, 44 bytes)`, `replica = AES-256-GCM(k, nonce, plaintext, aad = REPLICA_LABEL ‖ uint64
version ‖ uint32 s ‖ node)` (ciphertext ‖ 16-byte tag). Each (version key, s, n) names one key that encrypts exactly
one plaintext, so the deterministic nonce can never be reused under a key; sealing is reproducible (a re-seal
gives the same bytes, the same CID and the same Merkle root).

Share sealed to a buyer's X25519 public key (the shape of libsodium's `crypto_box_seal` and of HPKE, RFC 9180,
base mode, with HKDF-SHA256 and AES-256-GCM): a fresh ephemeral X25519 key pair per seal; `k, nonce =
HKDF-SHA256(ikm = X25519(ephemeral, buyer), info = SHARE_LABEL ‖ ephemeral public ‖ buyer public, 44 bytes)`;
sealed = ephemeral public (32) ‖ AES-256-GCM(k, nonce, share, aad = SHARE_LABEL ‖ uint64 version). The ephemeral
key is used once, so the derived key encrypts one message.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_utils import keccak
from pyshamir import combine, split

from .errors import KeyRejected, ShardError, ShardRejected, ShareRejected

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
ADDRESS_BYTES = 20
SHARE_BYTES = KEY_BYTES + 1  # pyshamir appends the x coordinate
X25519_KEY_BYTES = 32
SEALED_SHARE_BYTES = X25519_KEY_BYTES + SHARE_BYTES + TAG_BYTES
REPLICA_LABEL = b"deepshard/replica"
SHARE_LABEL = b"deepshard/share"
# cryptography's AESGCM refuses data of 2^31 bytes or more.
MAX_PLAINTEXT_BYTES = 2**31 - 1
MAX_SHARES = 255  # GF(2^8): x coordinates 1..255


def new_version_key() -> bytes:
    """32 random bytes from the OS CSPRNG (`secrets`): the AES key material of one version."""
    return secrets.token_bytes(KEY_BYTES)


def key_hash(key: bytes) -> bytes:
    """keccak256(key), 32 bytes: what goes on-chain so a buyer can check the key it reassembled."""
    return keccak(key)


def node_bytes(node: str) -> bytes:
    """A node's 20-byte address from its 0x-hex form (any case). Raises ShardError for anything else."""
    if isinstance(node, str) and len(node) == 2 + 2 * ADDRESS_BYTES and node[:2] in ("0x", "0X"):
        try:
            return bytes.fromhex(node[2:])
        except ValueError:
            pass
    raise ShardError(f"a node address is 0x and 40 hex digits, not {node!r}")


def _hkdf(ikm: bytes, info: bytes) -> tuple[bytes, bytes]:
    okm = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES + NONCE_BYTES, salt=None, info=info).derive(ikm)
    return okm[:KEY_BYTES], okm[KEY_BYTES:]


def _check_version_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise KeyRejected(f"a version key is {KEY_BYTES} bytes")


def replica_key(version_key: bytes, node: str, shard: int) -> tuple[bytes, bytes]:
    """(AES-256 key, 12-byte nonce) of node `node`'s replica of shard `shard`, derived from the version key."""
    _check_version_key(version_key)
    return _hkdf(version_key, REPLICA_LABEL + node_bytes(node) + shard.to_bytes(4, "big"))


def replica_aad(version: int, shard: int, node: str) -> bytes:
    """The associated data binding a replica to its version number, shard index and node."""
    return REPLICA_LABEL + version.to_bytes(8, "big") + shard.to_bytes(4, "big") + node_bytes(node)


def seal_replica(plaintext: bytes, version_key: bytes, *, version: int, shard: int, node: str) -> bytes:
    """Node `node`'s replica of shard `shard` of `version`: AES-256-GCM ciphertext ‖ tag, len(plaintext) + 16 bytes.

    Raises KeyRejected for a key that is not 32 bytes, ShardError for a bad node address or a plaintext of 2^31
    bytes or more."""
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise ShardError(
            f"shard {shard} is {len(plaintext):,} bytes; AES-GCM here takes at most {MAX_PLAINTEXT_BYTES:,}"
        )
    key, nonce = replica_key(version_key, node, shard)
    return AESGCM(key).encrypt(nonce, plaintext, replica_aad(version, shard, node))


def open_replica(replica: bytes, version_key: bytes, *, version: int, shard: int, node: str) -> bytes:
    """The plaintext of a replica sealed by `seal_replica` with the same arguments.

    Raises ShardRejected naming the shard and node when the tag does not verify (wrong key, wrong node or shard,
    tampered bytes)."""
    key, nonce = replica_key(version_key, node, shard)
    try:
        return AESGCM(key).decrypt(nonce, replica, replica_aad(version, shard, node))
    except InvalidTag:
        raise ShardRejected(
            f"shard {shard}: the replica of {node} does not decrypt (wrong key, or tampered bytes)"
        ) from None


def split_key(key: bytes, shares: int, threshold: int) -> list[bytes]:
    """`shares` Shamir shares of the 32-byte key (33 bytes each), any `threshold` of which rebuild it
    (pyshamir; 2 <= threshold <= shares <= 255). Raises ShardError for other counts, KeyRejected for a bad key."""
    _check_version_key(key)
    if not 2 <= threshold <= shares <= MAX_SHARES:
        raise ShardError(f"need 2 <= threshold <= shares <= {MAX_SHARES}, got {threshold} of {shares}")
    return [bytes(part) for part in split(key, shares, threshold)]


def share_commitment(share: bytes) -> bytes:
    """keccak256(share): recorded at publication, so a custodian's delivered share can be checked (and disputed)."""
    return keccak(share)


def combine_shares(shares: Sequence[bytes], expected_key_hash: bytes) -> bytes:
    """The version key rebuilt from Shamir shares, checked against keccak(key).

    Raises KeyRejected when the shares are malformed (length, duplicate x) or rebuild a key whose keccak is not
    `expected_key_hash` (fewer than the threshold, a wrong share: Shamir itself cannot tell)."""
    if len(shares) < 2 or any(not isinstance(s, bytes) or len(s) != SHARE_BYTES for s in shares):
        raise KeyRejected(f"need at least 2 key shares of {SHARE_BYTES} bytes each")
    try:
        key = bytes(combine([bytearray(s) for s in shares]))
    except ValueError as exc:
        raise KeyRejected(f"the key shares do not combine: {exc}") from None
    if key_hash(key) != expected_key_hash:
        raise KeyRejected(
            f"the {len(shares)} key shares rebuild a key whose keccak is not the committed key hash "
            "(too few shares, or a wrong one)"
        )
    return key


def buyer_keypair() -> tuple[bytes, bytes]:
    """A new X25519 key pair for a buyer: (32-byte private key, 32-byte public key), raw encodings."""
    private = X25519PrivateKey.generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()


def _share_key(shared_secret: bytes, ephemeral: bytes, buyer: bytes) -> tuple[bytes, bytes]:
    return _hkdf(shared_secret, SHARE_LABEL + ephemeral + buyer)


def _share_aad(version: int) -> bytes:
    return SHARE_LABEL + version.to_bytes(8, "big")


def seal_share(share: bytes, buyer_public_key: bytes, *, version: int) -> bytes:
    """`share` encrypted to the buyer's X25519 public key (32 bytes): 81 bytes, see the module docstring.

    Raises ShareRejected for a public key that is not 32 bytes or is a low-order point."""
    if not isinstance(buyer_public_key, bytes) or len(buyer_public_key) != X25519_KEY_BYTES:
        raise ShareRejected(f"a buyer key is a {X25519_KEY_BYTES}-byte X25519 public key")
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = ephemeral.public_key().public_bytes_raw()
    try:
        secret = ephemeral.exchange(X25519PublicKey.from_public_bytes(buyer_public_key))
    except ValueError:  # all-zero shared secret: a low-order point (RFC 7748 section 6.1)
        raise ShareRejected("the buyer key is not a usable X25519 public key") from None
    key, nonce = _share_key(secret, ephemeral_public, buyer_public_key)
    return ephemeral_public + AESGCM(key).encrypt(nonce, share, _share_aad(version))


def open_share(sealed: bytes, buyer_private_key: bytes, *, version: int) -> bytes:
    """The share inside `sealed` (from `seal_share`), opened with the buyer's 32-byte X25519 private key.

    Raises ShareRejected when it was sealed to another key or another version, or was altered, or when the
    private key is not 32 bytes."""
    if not isinstance(sealed, bytes) or len(sealed) != SEALED_SHARE_BYTES:
        raise ShareRejected(f"a sealed key share is {SEALED_SHARE_BYTES} bytes")
    if not isinstance(buyer_private_key, bytes) or len(buyer_private_key) != X25519_KEY_BYTES:
        raise ShareRejected(f"a buyer's private key is {X25519_KEY_BYTES} bytes")
    private = X25519PrivateKey.from_private_bytes(buyer_private_key)
    ephemeral_public = sealed[:X25519_KEY_BYTES]
    try:
        secret = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    except ValueError:
        raise ShareRejected("the sealed key share carries an unusable ephemeral key") from None
    key, nonce = _share_key(secret, ephemeral_public, private.public_key().public_bytes_raw())
    try:
        return AESGCM(key).decrypt(nonce, sealed[X25519_KEY_BYTES:], _share_aad(version))
    except InvalidTag:
        raise ShareRejected(
            f"the key share does not open: sealed to another key or for another version than {version}, or altered"
        ) from None
