"""Throughput of sharding a version for storage, and of a buyer assembling it, against plain AES-GCM of the same bytes.

`python -m benchmarks.shards.run [--model tiny] [--trials 5] [--replication 3] [--nodes 5]`

1. Encryption, side by side in one process: `seal_replica` (HKDF per replica, associated data) of every shard for
   each of its R holders, against `AESGCM.encrypt` of the same plaintexts with one key and a random nonce.
   Repetitions are interleaved (ours, plain, then plain, ours, ...) so a shared machine slows both alike; the
   headline is the median of the per-repetition ratios plain seconds / our seconds (throughput ratio). Target >= 0.8.
2. The whole publication, once: `shard_version` (state dict to safetensors shards) then `publish_version` (seal,
   chunk Merkle root, pin in each holder's embedded store) for R holders of each shard among `--nodes` nodes, and
   the pipeline's throughput against the plain AES-GCM of the same R x bytes; the rates of its two slow stages,
   the chunk Merkle tree (keccak256 of 1 KiB leaves) and the pin, measured apart on one replica of the first
   `--stage-shards` layer shards.
3. The buyer: `assemble` from the stores (fetch, CID, Merkle root, AES-GCM, sha256, tensors, weights hash, folder).
4. Storage: bytes pinned over the version's fp32 weights bytes (R x, plus the 16-byte tags and the loader files),
   and per replica set (one replica of every shard: below 1 x when tied weights are stored once).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from benchmarks import RESULTS_DIR, machine_description, utc_now
from workers.ml.models import MODEL_NAMES, load_base_model
from workers.protocol.merkle import merkle_root
from workers.shards import assemble, fetch_from_stores, new_version_key, publish_version, seal_replica, shard_version
from workers.storage import EmbeddedStore

TARGET_RATIO = 0.8
VERSION = 1
MB = 1e6


def node_address(index: int) -> str:
    return "0x" + (index + 1).to_bytes(20, "big").hex()


def assignment_for(shards: int, nodes: list[str], replication: int) -> dict[int, list[str]]:
    """R consecutive nodes per shard, round robin: a stand-in for the on-chain ranking (the cost does not depend
    on which nodes are chosen)."""
    return {s: [nodes[(s + j) % len(nodes)] for j in range(replication)] for s in range(shards)}


def time_seal(plaintexts: list[bytes], assignment: dict[int, list[str]], key: bytes) -> float:
    started = time.perf_counter()
    for index, plaintext in enumerate(plaintexts):
        for node in assignment[index]:
            seal_replica(plaintext, key, version=VERSION, shard=index, node=node)
    return time.perf_counter() - started


def time_plain(plaintexts: list[bytes], replication: int, key: bytes) -> float:
    cipher = AESGCM(key)
    started = time.perf_counter()
    for plaintext in plaintexts:
        for _ in range(replication):
            cipher.encrypt(os.urandom(12), plaintext, None)
    return time.perf_counter() - started


def run(
    model_name: str, trials: int, replication: int, node_count: int, layers_per_shard: int, stage_shards: int
) -> dict:
    base = load_base_model(model_name, device="cpu")
    started = time.perf_counter()
    sharded = shard_version(base.model, base.tokenizer, layers_per_shard=layers_per_shard)
    shard_seconds = time.perf_counter() - started
    plaintexts = [shard.plaintext for shard in sharded.shards]
    plaintext_bytes = sum(map(len, plaintexts))
    weights_bytes = sum(t.numel() * t.element_size() for t in base.model.state_dict().values())
    nodes = [node_address(i) for i in range(node_count)]
    assignment = assignment_for(len(plaintexts), nodes, replication)
    key = new_version_key()
    encrypted_bytes = plaintext_bytes * replication

    time_seal(plaintexts[:1], assignment, key)  # warm-up, untimed
    time_plain(plaintexts[:1], replication, key)
    repetitions = []
    for trial in range(trials):
        if trial % 2 == 0:
            ours, plain = time_seal(plaintexts, assignment, key), time_plain(plaintexts, replication, key)
        else:
            plain, ours = time_plain(plaintexts, replication, key), time_seal(plaintexts, assignment, key)
        repetitions.append({"seal_seconds": ours, "plain_aes_gcm_seconds": plain, "ratio": plain / ours})
    encrypt_ratio = statistics.median(r["ratio"] for r in repetitions)
    plain_seconds = statistics.median(r["plain_aes_gcm_seconds"] for r in repetitions)

    with tempfile.TemporaryDirectory(prefix="deepshard-bench-shards-") as scratch:
        stores = {node: EmbeddedStore(Path(scratch) / node) for node in nodes}
        started = time.perf_counter()
        manifest = publish_version(
            sharded, key, version=VERSION, base_model=model_name, assignment=assignment, stores=stores
        )
        publish_seconds = time.perf_counter() - started
        # Stages of the publication measured apart, on one replica of each of the first `stage_shards` layer shards.
        sampled = list(enumerate(plaintexts))[1 : 1 + stage_shards]
        sample = [seal_replica(p, key, version=VERSION, shard=i, node=nodes[0]) for i, p in sampled]
        sample_bytes = sum(map(len, sample))
        started = time.perf_counter()
        for replica in sample:
            merkle_root(replica)
        merkle_rate = sample_bytes / (time.perf_counter() - started)
        scratch_store = EmbeddedStore(Path(scratch) / "stage")
        started = time.perf_counter()
        for replica in sample:
            scratch_store.add_bytes(replica)
        pin_rate = sample_bytes / (time.perf_counter() - started)
        del sample
        pinned_bytes = sum(r.size for s in manifest.shards for r in s.replicas)
        file_bytes = sum(f.size for f in manifest.files) * node_count
        started = time.perf_counter()
        result = assemble(
            manifest, key, fetch_from_stores(stores), Path(scratch) / "assembled", weights_hash=base.weights_hash
        )
        assemble_seconds = time.perf_counter() - started
        assembled_bytes = (result.folder / "model.safetensors").stat().st_size

    pipeline_seconds = shard_seconds + publish_seconds
    return {
        "benchmark": "shards",
        "model": model_name,
        "measured_at": utc_now(),
        "machine": machine_description(),
        "setup": {
            "shards": len(plaintexts),
            "layers_per_shard": layers_per_shard,
            "nodes": node_count,
            "replication": replication,
            "trials": trials,
            "weights_bytes_fp32": weights_bytes,
            "plaintext_bytes": plaintext_bytes,
        },
        "encryption": {
            "target_ratio": TARGET_RATIO,
            "ratio_median": encrypt_ratio,
            "meets_target": encrypt_ratio >= TARGET_RATIO,
            "seal_mb_per_s_median": encrypted_bytes / MB / statistics.median(r["seal_seconds"] for r in repetitions),
            "plain_aes_gcm_mb_per_s_median": encrypted_bytes / MB / plain_seconds,
            "repetitions": repetitions,
        },
        "publication": {
            "shard_seconds": shard_seconds,
            "publish_seconds": publish_seconds,
            "pipeline_mb_per_s": encrypted_bytes / MB / pipeline_seconds,
            "ratio_to_plain_aes_gcm": plain_seconds / pipeline_seconds,
            "stage_sample_bytes": sample_bytes,
            "merkle_mb_per_s": merkle_rate / MB,
            "pin_mb_per_s": pin_rate / MB,
        },
        "assembly": {
            "seconds": assemble_seconds,
            "mb_per_s": plaintext_bytes / MB / assemble_seconds,
            "weights_hash_matches_registry": result.weights_hash == base.weights_hash,
            "faults": len(result.faults),
            "model_safetensors_bytes": assembled_bytes,
        },
        "storage": {
            "pinned_replica_bytes": pinned_bytes,
            "pinned_file_bytes": file_bytes,
            "overhead_vs_weights": (pinned_bytes + file_bytes) / weights_bytes,
            "overhead_per_replica_set": pinned_bytes / replication / weights_bytes,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODEL_NAMES, default="tiny")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--replication", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--layers-per-shard", type=int, default=4)
    parser.add_argument("--stage-shards", type=int, default=2, help="shards sampled for the Merkle and pin rates")
    parser.add_argument("--out", type=Path, default=None, help="the JSON report (default: benchmarks/results/)")
    args = parser.parse_args(argv)
    if not 1 <= args.replication <= args.nodes:
        parser.error("need 1 <= --replication <= --nodes")
    report = run(args.model, args.trials, args.replication, args.nodes, args.layers_per_shard, args.stage_shards)
    name = "shards.json" if args.model == "tiny" else f"shards-{args.model}.json"
    out = args.out or RESULTS_DIR / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    enc, pub, asm, sto = report["encryption"], report["publication"], report["assembly"], report["storage"]
    print(
        f"{args.model}: {report['setup']['shards']} shards, R = {args.replication} of {args.nodes} nodes\n"
        f"  encrypt: seal_replica {enc['seal_mb_per_s_median']:.0f} MB/s vs plain AES-GCM "
        f"{enc['plain_aes_gcm_mb_per_s_median']:.0f} MB/s, ratio {enc['ratio_median']:.2f} (target >= {TARGET_RATIO})\n"
        f"  publish (shard + seal + Merkle + pin): {pub['pipeline_mb_per_s']:.1f} MB/s, "
        f"ratio {pub['ratio_to_plain_aes_gcm']:.3f} to plain AES-GCM; Merkle {pub['merkle_mb_per_s']:.1f} MB/s, "
        f"pin {pub['pin_mb_per_s']:.0f} MB/s\n"
        f"  assemble: {asm['seconds']:.1f} s ({asm['mb_per_s']:.1f} MB/s), hash matches: "
        f"{asm['weights_hash_matches_registry']}\n"
        f"  storage: {sto['overhead_vs_weights']:.3f} x the fp32 weights\n"
        f"  -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
