"""The demo's weight custody: the version the round registered is sharded, stored and sold.

1. The version is rebuilt from the registry's lineage as `deepshard model get` does (its verified deltas merged
   into the base model): the publisher's input, and the hash the bought weights must have.
2. Three storage nodes (`StorageNode`, each with its own embedded store) register; the publisher's step
   (`Publisher.step`, as `deepshard weights publish` runs it) seals every shard once per holder (R = 3), records the
   manifest and puts the version on sale with its key split 2-of-3 among the nodes as custodians, who take their
   shares from the hand-over file (`receive_share`); the nodes fetch, verify, pin and confirm their replicas.
3. The inference account buys the version at the contract's price (`WeightAccessClient.buy`), the custodians
   deliver their shares sealed to its key (`deliver_shares`), it rebuilds the key (`collect_key`), settles the
   purchase (the fee split) and assembles the weights from the holders' stores (`assemble_version`, checked
   against the weights hash the publisher recorded in the registry, which must also be the lineage's rebuild):
   the folder the inference node then serves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..chain import ChainClient, format_dsh, registry, stake
from ..chain.localnode import dev_signer
from ..node.model_cli import write_version_folder
from ..rounds.chain import TrainingRoundsClient
from ..rounds.specs import SpecBook
from ..shards import buyer_keypair, shard_version
from ..shards.access import WeightAccessClient, deliver_shares, stored_shares
from ..shards.assembly import assemble_version, fetch_from_stores
from ..shards.chain import StorageClient
from ..shards.node import StorageNode
from ..shards.publisher import CustodianKey, Publisher, handover_path, receive_share
from ..storage import ContentStore, EmbeddedStore
from ..tables import format_table, short_address
from ..tasks.versions import fetch_version
from .local import EXTRA_STORAGE_NODES, STORAGE_STAKE_DSH, DemoFailed, fund
from .training import DEMO_SPECS

#: Shares that rebuild the key (of one per storage node).
CUSTODY_THRESHOLD = 2
#: Bounds on the publisher's and the nodes' steps (each step is bounded; these only stop a demo that stalls).
MAX_STEPS = 20
#: Blocks the buyer allows for its purchase to be mined.
DEADLINE_BLOCKS = 20
#: Seconds the buyer waits for k shares (the custodians deliver before it starts waiting).
COLLECT_TIMEOUT_S = 60


@dataclass(frozen=True)
class SoldVersion:
    """What the weight-custody step left: the buyer's verified folder and the summary."""

    folder: Path
    summary: dict


def sell_new_version(
    treasury: ChainClient,
    stakers: dict[str, ChainClient],
    store: ContentStore,
    version: int,
    model: str,
    workdir: Path,
    out: TextIO,
) -> SoldVersion:
    """Shards, stores and sells `version` (trained from `model`) as the module docstring says; prints each step.
    Returns the buyer's folder and the summary `{"version", "price_dsh", "buyer", "holders", "hash_matches_registry",
    "recipients"}`. DemoFailed when a step does not finish within MAX_STEPS."""

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    started = time.monotonic()
    rebuilt, description = fetch_version(
        TrainingRoundsClient(treasury), version, store, SpecBook(None, [DEMO_SPECS[model]], use_env=False)
    )
    source = workdir / f"version-{version}"
    write_version_folder(rebuilt, description, source)
    del rebuilt
    sharded = shard_version(source)
    say(
        f"\nWeight custody: version {version} ({description['weights_hash'][:18]}…, rebuilt from the registry's "
        f"lineage) cut into {len(sharded.shards)} shards"
    )

    nodes = start_storage_nodes(treasury, stakers, store, workdir)
    custodian_keys = {node.address: buyer_keypair() for node in nodes}
    publisher = Publisher(treasury, store, workdir / "publisher-keys", workdir / "handover")
    custodians = [CustodianKey(address, public) for address, (_, public) in custodian_keys.items()]
    report = _until(
        lambda: publisher.step(version, sharded, base_model=model, custodians=custodians, threshold=CUSTODY_THRESHOLD),
        lambda r: r.done,
        "the publisher's step",
    )
    storage = StorageClient(treasury)
    replicas = sum(storage.live_replicas(version, shard.index) for shard in sharded.shards)
    say(
        f"  publisher: {replicas} replicas sealed (one per holder) and assigned, manifest {report.manifest_cid}; "
        f"key split {CUSTODY_THRESHOLD}-of-{len(nodes)} among the nodes"
    )
    for node in nodes:
        _until(node.step, lambda lines: not lines, f"storage node {node.address}")
    rows = []
    for node in nodes:
        held = [storage.replica(version, s.index, node.address) for s in sharded.shards]
        confirmed = [r for r in held if r.status == "Holding"]
        if len(confirmed) != len(sharded.shards):
            raise DemoFailed(f"storage node {node.address} confirmed {len(confirmed)} of {len(sharded.shards)} shards")
        rows.append([short_address(node.address), len(confirmed), f"{sum(r.size for r in confirmed):,}"])
    say(format_table(["STORAGE NODE", "SHARDS CONFIRMED", "BYTES PINNED"], rows, numeric=(1, 2)))

    access = WeightAccessClient(treasury)
    handover = handover_path(workdir / "handover", treasury.chain_id, access.contract.address, version)
    custody_dir = workdir / "custody"
    for node in nodes:
        receive_share(node.storage.chain, handover, custodian_keys[node.address][0], custody_dir)

    buyer = WeightAccessClient(stakers["INFERENCE"])
    quote = buyer.quote(version)
    private, public = buyer_keypair()
    purchase = buyer.buy(version, public, quote.price, buyer.deadline_in(DEADLINE_BLOCKS))
    say(
        f"  inference account {short_address(buyer.chain.address)} bought version {version} for "
        f"{format_dsh(purchase.price, grouped=True)} DSH (V = {format_dsh(quote.value_snapshot, grouped=True)} DSH at "
        f"publication), purchase {purchase.id}"
    )
    for node in nodes:
        steps = deliver_shares(node.storage.chain, stored_shares(node.storage.chain, custody_dir))
        if [s.action for s in steps] != ["delivered"]:
            raise DemoFailed(f"custodian {node.address} did not deliver: {'; '.join(s.line() for s in steps)}")
    recovered = buyer.collect_key(purchase, private, timeout=COLLECT_TIMEOUT_S)
    settlement = buyer.settle(purchase)
    recipients = [
        ["burned", "-", format_dsh(settlement.burned, grouped=True)],
        ["storage pot (its holders, per audited epoch)", "Storage", format_dsh(settlement.storage_share, grouped=True)],
        *(["custodian", short_address(c), format_dsh(settlement.per_custodian, grouped=True)] for c in settlement.paid),
        ["treasury", short_address(treasury.address), format_dsh(settlement.treasury_share, grouped=True)],
    ]
    say(f"  key rebuilt from shares {list(recovered.indices)}; the price went to:")
    say(format_table(["TO", "ACCOUNT", "DSH"], recipients, numeric=(2,)))

    folder = workdir / f"bought-{version}"
    holders = fetch_from_stores({node.address: node.store for node in nodes})
    assembly = assemble_version(buyer.chain, store, version, recovered.key, folder, fetch=holders)
    recorded = registry.published(treasury.contract("ModelRegistry"), version)
    registry_hash = recorded[1] if recorded else None
    matches = assembly.weights_hash == registry_hash
    say(
        f"  assembled {len(assembly.served_by)} verified shards into {folder.name}/: weights "
        f"{assembly.weights_hash[:18]}…, {'equal to' if matches else 'NOT'} the hash the registry records for "
        f"version {version} ({time.monotonic() - started:.1f} s for the whole custody step)"
    )
    if registry_hash != description["weights_hash"]:
        raise DemoFailed(
            f"the registry records weights {registry_hash} for version {version}, its lineage rebuilds to "
            f"{description['weights_hash']}"
        )
    return SoldVersion(
        folder,
        {
            "version": version,
            "price_dsh": format_dsh(purchase.price),
            "buyer": buyer.chain.address,
            "holders": [node.address for node in nodes],
            "hash_matches_registry": matches,
            "recipients": {
                "burned_dsh": format_dsh(settlement.burned),
                "storage_dsh": format_dsh(settlement.storage_share),
                "custodians": {c: format_dsh(settlement.per_custodian) for c in settlement.paid},
                "treasury_dsh": format_dsh(settlement.treasury_share),
            },
        },
    )


def start_storage_nodes(
    treasury: ChainClient, stakers: dict[str, ChainClient], store: ContentStore, workdir: Path
) -> list[StorageNode]:
    """The STORAGE staker and the extra storage accounts (funded and staked here) as storage nodes, each with
    its own embedded store that fetches from `store` (the publisher's), registered."""
    extras = [treasury.with_signer(dev_signer(i)) for i in EXTRA_STORAGE_NODES]
    fund(treasury, extras)
    for client in extras:
        stake(client, "STORAGE", STORAGE_STAKE_DSH)
    nodes = []
    for number, client in enumerate([stakers["STORAGE"], *extras]):
        node = StorageNode(
            StorageClient(client),
            EmbeddedStore(workdir / "storage-nodes" / client.address),
            sources=[store],
            endpoint=f"/ip4/127.0.0.1/tcp/{4101 + number}",
            capacity=1 << 40,
            keeper=False,
            out=lambda line: None,
        )
        node.ensure_registered()
        nodes.append(node)
    return nodes


def _until(step: Callable, finished: Callable, what: str):
    """Runs `step` until `finished(result)`, at most MAX_STEPS times; DemoFailed past that."""
    for _ in range(MAX_STEPS):
        result = step()
        if finished(result):
            return result
    raise DemoFailed(f"{what} did not finish in {MAX_STEPS} steps")
