"""The crypto of shards on its own: per-node replicas, Shamir shares of the version key, shares sealed to a buyer."""

from __future__ import annotations

from itertools import combinations

import pytest
from pyshamir import combine

from workers.shards import (
    KeyRejected,
    ShardError,
    ShardRejected,
    ShareRejected,
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
from workers.shards.crypto import SEALED_SHARE_BYTES, SHARE_BYTES, TAG_BYTES

NODE_A = "0x" + "a1" * 20
NODE_B = "0x" + "b2" * 20
PLAINTEXT = bytes(range(256)) * 40


def test_a_replica_opens_only_for_its_own_key_version_shard_and_node():
    key = new_version_key()
    replica = seal_replica(PLAINTEXT, key, version=2, shard=3, node=NODE_A)
    assert len(replica) == len(PLAINTEXT) + TAG_BYTES
    assert open_replica(replica, key, version=2, shard=3, node=NODE_A) == PLAINTEXT
    wrong = [
        dict(version_key=new_version_key(), version=2, shard=3, node=NODE_A),
        dict(version_key=key, version=3, shard=3, node=NODE_A),
        dict(version_key=key, version=2, shard=4, node=NODE_A),
        dict(version_key=key, version=2, shard=3, node=NODE_B),
    ]
    for arguments in wrong:
        with pytest.raises(ShardRejected, match="shard"):
            open_replica(replica, **arguments)
    flipped = bytearray(replica)
    flipped[100] ^= 1
    with pytest.raises(ShardRejected, match="shard 3"):
        open_replica(bytes(flipped), key, version=2, shard=3, node=NODE_A)


def test_replicas_are_unique_per_node_and_reproducible():
    key = new_version_key()
    a = seal_replica(PLAINTEXT, key, version=2, shard=0, node=NODE_A)
    assert seal_replica(PLAINTEXT, key, version=2, shard=0, node=NODE_A) == a  # a re-seal is the same replica
    b = seal_replica(PLAINTEXT, key, version=2, shard=0, node=NODE_B)
    c = seal_replica(PLAINTEXT, key, version=2, shard=1, node=NODE_A)
    assert len({a, b, c}) == 3
    # Different keystreams: no byte position agrees more than chance would have it (1/256).
    assert sum(x == y for x, y in zip(a, b, strict=True)) < len(a) // 64


def test_any_threshold_of_shares_rebuilds_the_key_and_fewer_do_not():
    key = new_version_key()
    shares = split_key(key, 5, 3)
    assert all(len(share) == SHARE_BYTES for share in shares)
    for chosen in combinations(shares, 3):
        assert combine_shares(list(chosen), key_hash(key)) == key
    for chosen in combinations(shares, 2):
        with pytest.raises(KeyRejected, match="committed key hash"):
            combine_shares(list(chosen), key_hash(key))
        # Without the keccak check, the bytes two shares give are not the key and open no replica.
        guess = bytes(combine([bytearray(s) for s in chosen]))
        assert guess != key
        replica = seal_replica(PLAINTEXT, key, version=1, shard=0, node=NODE_A)
        with pytest.raises(ShardRejected):
            open_replica(replica, guess, version=1, shard=0, node=NODE_A)


def test_a_wrong_share_is_caught_by_the_key_hash_and_by_its_commitment():
    key = new_version_key()
    shares = split_key(key, 5, 3)
    commitments = [share_commitment(share) for share in shares]
    forged = bytes([shares[0][0] ^ 0xFF]) + shares[0][1:]
    assert share_commitment(forged) != commitments[0]
    with pytest.raises(KeyRejected):
        combine_shares([forged, shares[1], shares[2]], key_hash(key))
    with pytest.raises(KeyRejected, match="do not combine"):
        combine_shares([shares[0], shares[0], shares[1]], key_hash(key))  # the same x twice
    with pytest.raises(KeyRejected, match="33 bytes"):
        combine_shares([shares[0][:-1], shares[1]], key_hash(key))


@pytest.mark.parametrize(("count", "threshold"), [(5, 1), (2, 3), (256, 3)])
def test_impossible_share_counts_are_refused(count, threshold):
    with pytest.raises(ValueError, match="threshold"):
        split_key(new_version_key(), count, threshold)


def test_a_sealed_share_opens_only_for_its_buyer_and_version():
    share = split_key(new_version_key(), 5, 3)[0]
    buyer_private, buyer_public = buyer_keypair()
    other_private, _ = buyer_keypair()
    sealed = seal_share(share, buyer_public, version=7)
    assert len(sealed) == SEALED_SHARE_BYTES
    assert seal_share(share, buyer_public, version=7) != sealed  # a fresh ephemeral key each time
    assert open_share(sealed, buyer_private, version=7) == share
    with pytest.raises(ShareRejected, match="another key"):
        open_share(sealed, other_private, version=7)
    with pytest.raises(ShareRejected, match="another version"):
        open_share(sealed, buyer_private, version=8)
    altered = bytearray(sealed)
    altered[40] ^= 1
    with pytest.raises(ShareRejected):
        open_share(bytes(altered), buyer_private, version=7)
    with pytest.raises(ShareRejected, match="81 bytes"):
        open_share(sealed[:-1], buyer_private, version=7)


def test_bad_node_addresses_and_private_keys_are_refused():
    with pytest.raises(ShardError, match="0x and 40 hex digits"):
        seal_replica(PLAINTEXT, new_version_key(), version=1, shard=0, node="0x" + "zz" * 20)
    with pytest.raises(ShareRejected, match="private key is 32 bytes"):
        open_share(bytes(SEALED_SHARE_BYTES), bytes(31), version=1)


@pytest.mark.parametrize("public_key", [bytes(32), b"\x01" + bytes(31), bytes(31)])
def test_unusable_buyer_keys_are_refused(public_key):
    # The all-zero point and the point of order 1 give an all-zero shared secret (RFC 7748 section 6.1).
    with pytest.raises(ShareRejected, match="buyer key"):
        seal_share(bytes(SHARE_BYTES), public_key, version=1)
