"""A version published to five storage nodes (R = 3) and assembled by a buyer: exact weights from any three nodes,
a loadable folder with the source's logits, and every kind of bad copy, key or manifest refused by name."""

from __future__ import annotations

import dataclasses
import shutil
from itertools import combinations

import pytest
import torch
from shardkit import NODES, REPLICATION, VERSION, rendezvous
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from workers.ml.models import TINY_CONFIG, weights_hash
from workers.shards import (
    KeyRejected,
    ShardError,
    ShardRejected,
    WeightsMismatch,
    assemble,
    combine_shares,
    fetch_from_stores,
    fetch_shard,
    new_version_key,
    open_share,
    publish_version,
    seal_share,
    shard_version,
    share_commitment,
    split_key,
)
from workers.storage import IpfsStore, StorageError

PROMPT = "In Harbourside, the observatory recorded 412 meteors."


def logits(model, tokenizer) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(PROMPT, return_tensors="pt")).logits


def test_a_buyer_with_three_key_shares_assembles_a_loadable_exact_model(
    tiny, manifest, shared_stores, version_key, buyer, tmp_path
):
    shares = split_key(version_key, 5, 3)
    commitments = [share_commitment(share) for share in shares]
    buyer_private, buyer_public = buyer
    delivered = [seal_share(share, buyer_public, version=VERSION) for share in shares[1:4]]
    opened = [open_share(sealed, buyer_private, version=VERSION) for sealed in delivered]
    assert [share_commitment(share) for share in opened] == commitments[1:4]
    key = combine_shares(opened, manifest.key_hash)

    result = assemble(manifest, key, fetch_from_stores(shared_stores), tmp_path / "v2", weights_hash=tiny.weights_hash)

    assert result.faults == []
    assert sorted(result.served_by) == [shard.index for shard in manifest.shards]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "v2", dtype=torch.float32, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "v2", local_files_only=True)
    assert weights_hash(model) == tiny.weights_hash
    assert torch.equal(logits(model, tokenizer), logits(tiny.model, tiny.tokenizer))


def test_any_two_holders_down_still_assembles_exactly(tiny, manifest, shared_stores, version_key, tmp_path):
    # Every pair of the five nodes leaves each shard a live holder (R = 3 distinct holders per shard) ...
    for down in combinations(NODES, 2):
        assert all({r.node for r in shard.replicas} - set(down) for shard in manifest.shards)
    # ... and the buyer moves on to it: here the two first-ranked holders of the embed shard are down.
    down = {replica.node for replica in manifest.shards[0].replicas[:2]}
    up = {node: store for node, store in shared_stores.items() if node not in down}
    result = assemble(manifest, version_key, fetch_from_stores(up), tmp_path / "v2", weights_hash=tiny.weights_hash)
    assert not set(result.served_by.values()) & down
    assert result.faults and all("unavailable" in fault for fault in result.faults)


def test_two_deleted_stores_and_a_tampered_copy_are_skipped_and_reported(tiny, manifest, stores, version_key, tmp_path):
    shard = manifest.shards[2]
    deleted = [replica.node for replica in shard.replicas[:2]]
    for node in deleted:
        shutil.rmtree(stores[node].root)  # the node lost everything: its store answers NotFound
    bad = shard.replicas[2]
    honest = fetch_from_stores(stores)

    def fetch(node: str, cid: str, max_size: int) -> bytes:
        data = honest(node, cid, max_size)
        if (node, cid) == (bad.node, bad.cid):
            return data[:-1] + bytes([data[-1] ^ 1])  # the last holder serves a flipped bit
        return data

    with pytest.raises(ShardRejected, match=r"shard 2 \(layers 1-1\): no holder served a valid copy") as caught:
        assemble(manifest, version_key, fetch, tmp_path / "v2", weights_hash=tiny.weights_hash)
    message = caught.value.args[0]
    assert all(f"{node} unavailable" in message for node in deleted)
    assert f"from {bad.node}: the bytes do not match the CID" in message

    # With the last holder honest, the shard comes from it and the two lost copies are reported as faults.
    result = assemble(manifest, version_key, honest, tmp_path / "v2", weights_hash=tiny.weights_hash)
    assert result.served_by[2] == bad.node
    assert sum(fault.startswith("shard 2 (layers 1-1)") for fault in result.faults) == 2


def test_a_shard_no_holder_serves_intact_is_refused_by_name(tiny, manifest, shared_stores, version_key, tmp_path):
    def fetch(node: str, cid: str, max_size: int) -> bytes:
        data = shared_stores[node].get(cid, max_size=max_size)
        if cid in {replica.cid for replica in manifest.shards[3].replicas}:
            return data[:10] + bytes([data[10] ^ 0x80]) + data[11:]
        return data

    with pytest.raises(ShardRejected, match=r"shard 3 \(layers 2-2\): no holder served a valid copy") as caught:
        assemble(manifest, version_key, fetch, tmp_path / "v2", weights_hash=tiny.weights_hash)
    assert caught.value.args[0].count("do not match the CID") == REPLICATION
    assert not (tmp_path / "v2").exists()


def test_a_manifest_that_lies_about_a_shard_is_caught_by_each_check(manifest, shared_stores, version_key):
    fetch = fetch_from_stores(shared_stores)
    shard = manifest.shards[1]
    cases = {
        "sha256 is not the manifest's": dataclasses.replace(shard, sha256=bytes(32)),
        "Merkle root is not the manifest's": dataclasses.replace(
            shard, replicas=tuple(dataclasses.replace(r, merkle_root=bytes(32)) for r in shard.replicas)
        ),
        "tensors are not the ones the manifest lists": dataclasses.replace(shard, tensors=manifest.shards[2].tensors),
    }
    for message, lying in cases.items():
        with pytest.raises(ShardRejected, match=rf"shard 1 \(layers 0-0\).*{message}"):
            fetch_shard(lying, version_key, VERSION, fetch, [])
    # Two nodes' replicas swapped (CID and root): each decrypts only under its own node's key.
    first, second, third = shard.replicas
    swapped = (
        dataclasses.replace(first, cid=second.cid, merkle_root=second.merkle_root),
        dataclasses.replace(second, cid=first.cid, merkle_root=first.merkle_root),
        third,
    )

    def fetch_any(node: str, cid: str, max_size: int) -> bytes:
        return next(store for store in shared_stores.values() if store.has(cid)).get(cid, max_size=max_size)

    faults: list[str] = []
    _, node = fetch_shard(dataclasses.replace(shard, replicas=swapped), version_key, VERSION, fetch_any, faults)
    assert node == third.node
    assert len(faults) == 2 and all("does not decrypt" in fault for fault in faults)


def test_a_holder_is_read_no_further_than_the_manifest_size(manifest, shared_stores, version_key):
    """A manifest (or holder) that understates a replica's size makes the fetch stop at that size: the buyer never
    reads more than the manifest promised, and the shard is refused naming each holder."""
    shard = manifest.shards[1]
    small = dataclasses.replace(shard, replicas=tuple(dataclasses.replace(r, size=1024) for r in shard.replicas))
    with pytest.raises(ShardRejected, match=r"shard 1 \(layers 0-0\): no holder served a valid copy") as caught:
        fetch_shard(small, version_key, VERSION, fetch_from_stores(shared_stores), [])
    assert caught.value.args[0].count("unavailable") == REPLICATION
    assert "1024" in caught.value.args[0] or "1,024" in caught.value.args[0]


def test_wrong_key_and_wrong_registry_hash_are_refused(tiny, manifest, shared_stores, version_key, tmp_path):
    fetch = fetch_from_stores(shared_stores)
    wrong = new_version_key()
    with pytest.raises(KeyRejected, match="key hash"):
        assemble(manifest, wrong, fetch, tmp_path / "v2", weights_hash=tiny.weights_hash)
    from workers.shards import key_hash

    forged = dataclasses.replace(manifest, key_hash=key_hash(wrong))  # a manifest made to accept the wrong key
    with pytest.raises(ShardRejected, match=r"shard 0 \(embed\).*does not decrypt"):
        assemble(forged, wrong, fetch, tmp_path / "v2", weights_hash=tiny.weights_hash)
    with pytest.raises(WeightsMismatch, match=f"the manifest is for weights {tiny.weights_hash}, not 0x0000"):
        assemble(manifest, version_key, fetch, tmp_path / "v2", weights_hash="0x" + "00" * 32)
    lying = dataclasses.replace(manifest, weights_hash="0x" + "11" * 32)
    with pytest.raises(WeightsMismatch, match="assembled weights hash to"):
        assemble(lying, version_key, fetch, tmp_path / "v2", weights_hash=lying.weights_hash)
    assert not (tmp_path / "v2").exists()
    (tmp_path / "v2").mkdir()
    with pytest.raises(ShardError, match="already exists"):
        assemble(manifest, version_key, fetch, tmp_path / "v2", weights_hash=tiny.weights_hash)


def test_tied_weights_are_stored_once_and_tied_again(tiny, tmp_path):
    from workers.storage import EmbeddedStore

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        tied = LlamaForCausalLM(LlamaConfig(**{**TINY_CONFIG, "tie_word_embeddings": True, "num_hidden_layers": 2}))
    sharded = shard_version(tied, tiny.tokenizer, layers_per_shard=2)
    assert sharded.aliases == (("lm_head.weight", "model.embed_tokens.weight"),)
    assert [shard.part for shard in sharded.shards] == ["embed", "layers", "head"]
    assert "lm_head.weight" not in {t.name for shard in sharded.shards for t in shard.tensors}
    node = NODES[0]
    stores = {node: EmbeddedStore(tmp_path / "store")}
    key = new_version_key()
    manifest = publish_version(
        sharded, key, version=9, base_model="tiny", assignment={s.index: [node] for s in sharded.shards}, stores=stores
    )
    assemble(manifest, key, fetch_from_stores(stores), tmp_path / "out", weights_hash=weights_hash(tied))
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32, local_files_only=True)
    assert weights_hash(loaded) == weights_hash(tied)
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()


def test_the_ipfs_store_path_round_trips(tiny, sharded, js_ipfs, tmp_path):
    with IpfsStore(js_ipfs.api, timeout=30) as ipfs:
        stores = dict.fromkeys(NODES, ipfs)  # five holders on one real node: distinct replicas, distinct CIDs
        assignment = {s.index: rendezvous(VERSION, s.index, NODES, REPLICATION) for s in sharded.shards}
        key = new_version_key()
        manifest = publish_version(
            sharded, key, version=VERSION, base_model="tiny", assignment=assignment, stores=stores
        )
        assert len({r.cid for s in manifest.shards for r in s.replicas}) == len(manifest.shards) * REPLICATION
        assert all(ipfs.is_pinned(r.cid) for s in manifest.shards for r in s.replicas)
        result = assemble(manifest, key, fetch_from_stores(stores), tmp_path / "v2", weights_hash=tiny.weights_hash)
    assert result.faults == []
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "v2", dtype=torch.float32, local_files_only=True)
    assert weights_hash(model) == tiny.weights_hash


def test_an_unknown_holder_is_unavailable_not_a_crash(manifest):
    with pytest.raises(StorageError, match="no store is known"):
        fetch_from_stores({})(manifest.shards[0].replicas[0].node, manifest.shards[0].replicas[0].cid, 1)
