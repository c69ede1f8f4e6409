"""The storage node role and the publisher's step on a real chain (anvil, the deployed contracts, short windows):
five nodes register; the publisher (`Publisher.step`, bounded: two calls) assigns version 1's shards R = 3 times by
the rendezvous ranking, records its manifest and publishes its key 3-of-5 among the five nodes as custodians, who
take their sealed shares; the nodes fetch, verify, pin and confirm; a buyer buys the key and assembles the exact
weights with two holders stopped; an audit names a node, which answers and is paid; a node that lost its replica
misses its audit and is slashed through `slashMissed` by a keeper; the publisher's next step re-assigns the
failed replica to the next node in the ranking, which confirms it (back to R).

The tests run in order on one module-scoped network (each builds on the state the previous one left); the stores
are embedded ones, one per node and one for the publisher (the node's sources).
"""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from netkit import ETH, TEST_REDIS_URL, Net
from services import start_child

from workers.chain import ChainClient, DeployParams, InvalidRequest, LocalSigner, TransactionReverted, deploy_network
from workers.chain.accounts import PRIVATE_KEY_ENV
from workers.chain.artifacts import project_root
from workers.chain.deploy import StorageParams
from workers.chain.deployments import DEPLOYMENTS_DIR_ENV
from workers.chain.module import cid_to_chain
from workers.chain.units import WEI_PER_DSH
from workers.protocol.access import fee_split
from workers.protocol.constants import GENESIS_VERSION
from workers.protocol.merkle import merkle_root
from workers.protocol.storage import holders
from workers.serve.registry import check_version, read_version_record
from workers.shards import assemble, buyer_keypair, fetch_from_stores, parse_manifest, shard_version
from workers.shards.access import WeightAccessClient, deliver_shares, stored_shares
from workers.shards.assembly import assemble_version
from workers.shards.chain import StorageClient
from workers.shards.manifest import Manifest
from workers.shards.node import StorageNode
from workers.shards.publisher import (
    CustodianKey,
    Publisher,
    PublishError,
    handover_path,
    key_path,
    read_handover,
    receive_share,
)
from workers.storage import STORE_DIR_ENV, Cid, EmbeddedStore, StorageError, cid_of_bytes, parse_cid
from workers.storage.cids import RAW
from workers.storage.testing import sample_bytes

VERSION = GENESIS_VERSION
PARAMS = StorageParams(confirm_window=60, audit_interval=20, answer_window=6)
NODE_COUNT = 5
THRESHOLD = 3
#: Node bond (500) and custodian bond (200) of STORAGE stake, the deployment's defaults.
NODE_STAKE = 700


@dataclasses.dataclass
class Custody:
    net: Net
    publisher: StorageClient
    publisher_store: EmbeddedStore
    nodes: dict[str, StorageNode]
    keeper: StorageNode
    publishing: Publisher
    tmp: Path
    #: node address -> its X25519 custodian key pair (private, public)
    custodian_keys: dict[str, tuple[bytes, bytes]]
    manifest: Manifest | None = None

    def publish(self, sharded):
        """The publisher's step for version 1 (the tiny model), the five nodes as custodians."""
        custodians = [CustodianKey(a, self.custodian_keys[a][1]) for a in self.nodes]
        return self.publishing.step(VERSION, sharded, base_model="tiny", custodians=custodians, threshold=THRESHOLD)

    def node_for(self, address: str) -> StorageNode:
        return self.nodes[address]

    def nonces(self) -> dict[str, int]:
        w3 = self.publisher.chain.w3
        return {address: w3.eth.get_transaction_count(address) for address in self.nodes}


def make_node(net: Net, tmp: Path, publisher_store: EmbeddedStore, *, keeper=False, staked=NODE_STAKE):
    chain = net.account(role="STORAGE" if staked else None, staked=staked)
    store = EmbeddedStore(tmp / chain.address)
    return StorageNode(
        StorageClient(chain),
        store,
        sources=[publisher_store],
        endpoint=f"/dns4/{chain.address[:10].lower()}.example/tcp/4001",
        capacity=1 << 30,
        keeper=keeper,
        out=lambda line: None,
    )


@pytest.fixture(scope="module")
def custody(net_anvil, tmp_path_factory) -> Custody:
    tmp = tmp_path_factory.mktemp("custody")
    admin_account = Account.create()
    ChainClient(net_anvil.url).w3.provider.make_request("anvil_setBalance", [admin_account.address, hex(1_000 * ETH)])
    admin = ChainClient(
        net_anvil.url, LocalSigner(admin_account), deployments_dir=tmp / "deployments", poll_interval=0.02
    )
    deploy_network(admin, DeployParams(storage=PARAMS))  # the admin is governance, hence the publisher
    net = Net(net_anvil.url, tmp / "deployments", admin, tmp / "votes", tmp / "store")
    publisher_store = EmbeddedStore(tmp / "publisher")
    nodes = [make_node(net, tmp / "nodes", publisher_store) for _ in range(NODE_COUNT)]
    keeper = make_node(net, tmp / "keeper", publisher_store, keeper=True, staked=0)
    # At most 10 replicas sealed and assigned per call: version 1's 18 take two calls.
    publishing = Publisher(admin, publisher_store, tmp / "keys", tmp / "handover", max_assignments=10)
    keys = {n.address: buyer_keypair() for n in nodes}
    return Custody(
        net, StorageClient(admin), publisher_store, {n.address: n for n in nodes}, keeper, publishing, tmp, keys
    )


def test_registration_needs_the_storage_stake_and_then_happens_once(custody, tmp_path):
    unstaked = make_node(custody.net, tmp_path, custody.publisher_store, staked=0)
    with pytest.raises(InvalidRequest, match=r"unlocked STORAGE stake.*deepshard stake STORAGE 500"):
        unstaked.step()
    assert custody.net.admin.w3.eth.get_transaction_count(unstaked.address) == 0  # nothing sent

    for node in custody.nodes.values():
        assert node.step() == [f"storage {node.address}: registered ({node.endpoint}, {1 << 30:,} bytes)"]
        assert node.storage.node().registered
    nonces = custody.nonces()
    for node in custody.nodes.values():
        assert node.step() == []
    assert custody.nonces() == nonces
    assert sorted(custody.publisher.nodes()) == sorted(custody.nodes)


def test_the_publisher_step_assigns_records_and_hands_out_the_key_idempotently(custody, sharded, tiny):
    storage, admin = custody.publisher, custody.publisher.chain
    registered = storage.nodes()
    expected = {s.index: holders(VERSION, s.index, registered, PARAMS.replication) for s in sharded.shards}
    path = key_path(custody.tmp / "keys", admin.chain_id, admin.contract("ModelRegistry").address, VERSION)

    first = custody.publish(sharded)  # bounded: 10 of the 18 replicas, no manifest yet
    assert not first.done and first.manifest_cid is None
    assert first.lines[0] == f"version {VERSION}: drew its key ({path}, mode 0600)"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assigned = [line for line in first.lines if ": assigned to " in line]
    assert len(assigned) == 10 == len(first.lines) - 1
    key = bytes.fromhex(path.read_text().strip())
    assert key.hex() not in "".join(first.lines)
    second = custody.publish(sharded)  # continues where the first stopped: the key is not drawn again
    assert second.done and bytes.fromhex(path.read_text().strip()) == key
    assert len([line for line in second.lines if ": assigned to " in line]) == 8
    assert second.lines[-2].startswith(f"version {VERSION}: key shares sealed to {NODE_COUNT} custodians in ")
    assert second.lines[-1] == f"version {VERSION}: on sale, key custody {THRESHOLD}-of-{NODE_COUNT} published"

    manifest = parse_manifest(custody.publisher_store.get(second.manifest_cid))
    custody.manifest = manifest
    assert {e.index: [to_checksum_address(r.node) for r in e.replicas] for e in manifest.shards} == expected
    for entry in manifest.shards:
        assert storage.live_replicas(VERSION, entry.index) == PARAMS.replication
        for replica in entry.replicas:
            assert storage.replica(VERSION, entry.index, replica.node).root == replica.merkle_root
    recorded = admin.contract("ModelRegistry").functions.getVersion(VERSION).call()[5]
    assert recorded == cid_to_chain(second.manifest_cid)

    # A re-run sends nothing: every shard is at R, the manifest and the custody are published.
    nonce = admin.w3.eth.get_transaction_count(admin.address)
    again = custody.publish(sharded)
    assert again.done and again.lines == [] and again.manifest_cid == second.manifest_cid
    assert admin.w3.eth.get_transaction_count(admin.address) == nonce

    # A publisher without the key file never draws a new one for a version already (partly) published.
    keyless = Publisher(admin, custody.publisher_store, custody.tmp / "other-keys", custody.tmp / "handover")
    with pytest.raises(PublishError, match=r"its key file .* is missing: the key is never drawn again"):
        keyless.step(VERSION, sharded, base_model="tiny")
    assert admin.w3.eth.get_transaction_count(admin.address) == nonce

    # Repairs re-seal from the weights given: another shard layout of the same weights is refused, nothing sent.
    other_layout = shard_version(tiny.model, tiny.tokenizer, layers_per_shard=2)
    with pytest.raises(PublishError, match=r"the weights given are not the ones its recorded manifest .* describes"):
        custody.publish(other_layout)
    assert admin.w3.eth.get_transaction_count(admin.address) == nonce

    # Each custodian takes its share from the hand-over file: sealed there, in plaintext only in its own 0600 file.
    handover = handover_path(custody.tmp / "handover", admin.chain_id, admin.contract("WeightAccess").address, VERSION)
    sealed = read_handover(handover, VERSION)
    custody_on_chain = WeightAccessClient(admin).custody(VERSION)
    assert custody_on_chain.commitments == sealed.commitments and custody_on_chain.key_hash == keccak(key)
    for node in custody.nodes.values():
        private, _ = custody.custodian_keys[node.address]
        kept = receive_share(node.storage.chain, handover, private, custody.tmp / "custody")
        assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600
        assert receive_share(node.storage.chain, handover, private, custody.tmp / "custody") == kept  # idempotent
        share = stored_shares(node.storage.chain, custody.tmp / "custody")[VERSION]
        assert keccak(share) in sealed.commitments and share.hex() not in handover.read_text()


def test_assigned_replicas_are_fetched_verified_pinned_and_confirmed_once(custody):
    storage, manifest = custody.publisher, custody.manifest
    for node in custody.nodes.values():
        mine = [(e.index, r) for e in manifest.shards for r in e.replicas if r.node == node.address.lower()]
        # Bounded work: at most `max_fetches` replicas fetched per step, the rest at the next steps.
        steps = [node.step() for _ in range(-(-len(mine) // node.max_fetches))]
        assert [len(lines) for lines in steps[:-1]] == [node.max_fetches] * (len(steps) - 1)
        lines = [line for step in steps for line in step]
        assert sorted(lines) == sorted(
            f"storage {node.address}: confirmed version {VERSION} shard {index} ({replica.size:,} bytes)"
            for index, replica in mine
        )
        for index, replica in mine:
            assert node.storage.replica(VERSION, index).status == "Holding"
            assert node.store.is_pinned(replica.cid)
    for entry in manifest.shards:
        assert storage.live_replicas(VERSION, entry.index) == PARAMS.replication

    nonces = custody.nonces()
    for node in custody.nodes.values():
        assert node.step() == []
    assert custody.nonces() == nonces  # a second pass confirms nothing twice

    # A restarted node (fresh process state) sees its replicas confirmed and sends nothing either.
    first = next(iter(custody.nodes.values()))
    restarted = StorageNode(first.storage, first.store, sources=first.sources[1:], keeper=False, out=lambda line: None)
    assert restarted.step() == []
    assert custody.nonces() == nonces


def test_a_buyer_assembles_the_exact_weights_with_two_holders_stopped(custody, sharded, tmp_path):
    manifest = custody.manifest
    buyer = custody.net.account(dsh=5_000)
    private, public = buyer_keypair()
    access = WeightAccessClient(buyer)
    purchase = access.buy(VERSION, public, 1_000 * WEI_PER_DSH, access.deadline_in(20))
    for node in custody.nodes.values():
        shares = stored_shares(node.storage.chain, custody.tmp / "custody")
        assert [step.action for step in deliver_shares(node.storage.chain, shares)] == ["delivered"]
    recovered = access.collect_key(purchase, private, timeout=0)
    assert keccak(recovered.key) == manifest.key_hash

    # The first two holders of shard 0 are stopped: every shard still has a holder among the other three.
    stopped = [to_checksum_address(r.node) for r in manifest.shards[0].replicas[:2]]
    from_holders = fetch_from_stores({a: n.store for a, n in custody.nodes.items() if a not in stopped})
    public = {entry.cid for entry in manifest.files}

    def fetch(node: str, cid: str, max_size: int) -> bytes:
        # Replicas come only from the running holders; the loader files are public and pinned by the publisher
        # (nodes pin replicas only).
        if cid in public:
            raise StorageError(f"{node} pins no public files")
        return from_holders(node, cid, max_size)

    assembly = assemble(
        manifest,
        recovered.key,
        fetch,
        tmp_path / "weights",
        weights_hash=sharded.weights_hash,
        public=custody.publisher_store,
    )
    assert assembly.weights_hash == sharded.weights_hash  # the exact state dict, hashed tensor by tensor
    assert to_checksum_address(assembly.served_by[0]) == to_checksum_address(manifest.shards[0].replicas[2].node)
    assert all(to_checksum_address(node) not in stopped for node in assembly.served_by.values())
    assert any(stopped[0].lower() in fault.lower() for fault in assembly.faults)
    # Settled (every custodian delivered): a later keeper step has no purchase of this test to settle.
    assert access.settle(purchase).delivered == NODE_COUNT


def test_a_settled_purchase_splits_the_price_and_the_bought_folder_is_servable(custody, sharded, tmp_path):
    """The buyer settles (every custodian delivered): the split equals the Python reference to the wei and lands in
    the balances; `assemble_version` takes the manifest the registry records and writes a folder whose version record
    passes the inference node's registry check."""
    buyer = custody.net.account(dsh=5_000)
    private, public = buyer_keypair()
    access = WeightAccessClient(buyer)
    price = access.quote(VERSION).price
    purchase = access.buy(VERSION, public, price, access.deadline_in(20))
    with pytest.raises(
        InvalidRequest,
        match=rf"purchase {purchase.id} cannot be settled yet: its custodians may deliver until block "
        rf"{purchase.deliver_by}; anyone may settle it once block {purchase.deliver_by + 1} is mined",
    ):
        access.settle(purchase)  # nobody delivered yet and the window is open: refused before sending
    for node in custody.nodes.values():
        deliver_shares(node.storage.chain, stored_shares(node.storage.chain, custody.tmp / "custody"))
    key = access.collect_key(purchase, private, timeout=0).key

    token = buyer.contract("DeepshardToken")
    treasury = custody.net.admin.address  # the deployer is the treasury
    before = {a: token.functions.balanceOf(a).call() for a in (treasury, custody.publisher.contract.address)}
    owed_before = {c: access.contract.functions.owed(c).call() for c in custody.nodes}
    supply = token.functions.totalSupply().call()
    settled = access.settle(purchase)
    getter = access.contract.functions.params
    params = dict(zip([o["name"] for o in getter.abi["outputs"]], getter().call(), strict=True))
    expected = fee_split(price, params["burnBps"], params["storageBps"], params["custodianBps"], NODE_COUNT)
    assert (settled.burned, settled.storage_share, settled.per_custodian, settled.treasury_share) == (
        expected.burned,
        expected.storage,
        expected.per_custodian,
        expected.treasury,
    )
    assert not settled.refunded and settled.delivered == NODE_COUNT and sorted(settled.paid) == sorted(custody.nodes)
    assert token.functions.totalSupply().call() == supply - expected.burned
    assert token.functions.balanceOf(treasury).call() == before[treasury] + expected.treasury
    storage_address = custody.publisher.contract.address
    assert token.functions.balanceOf(storage_address).call() == before[storage_address] + expected.storage
    for c in custody.nodes:
        assert access.contract.functions.owed(c).call() == owed_before[c] + expected.per_custodian
    # Settling again (or after someone else did) sends nothing and reads the settlement back.
    nonce = buyer.w3.eth.get_transaction_count(buyer.address)
    assert access.settle(purchase) == settled  # `purchase` still says unsettled: the chain is asked
    assert buyer.w3.eth.get_transaction_count(buyer.address) == nonce

    folder = tmp_path / "bought"
    holders = fetch_from_stores({a: n.store for a, n in custody.nodes.items()})
    assembly = assemble_version(buyer, custody.publisher_store, VERSION, key, folder, fetch=holders)
    assert assembly.weights_hash == sharded.weights_hash
    record = read_version_record(folder)
    assert (record.version, record.base_model, record.delta_cids) == (VERSION, "tiny", [])
    check_version(buyer, VERSION, assembly.weights_hash, record)  # what `deepshard serve --weights` checks
    with pytest.raises(InvalidRequest, match=r"version 7 is not registered: versions run from 1 to 1"):
        assemble_version(buyer, custody.publisher_store, 7, key, tmp_path / "other", fetch=holders)
    assert not (tmp_path / "other").exists()


def test_the_keeper_settles_a_purchase_once_its_window_is_over_so_custodians_are_paid(custody):
    """The buyer got its key and never settled: once the delivery window is over a keeper step settles it, and the
    custodians' pay is the Python reference's; it is not settled again."""
    buyer = custody.net.account(dsh=5_000)
    _, public = buyer_keypair()
    access = WeightAccessClient(buyer)
    price = access.quote(VERSION).price
    purchase = access.buy(VERSION, public, price, access.deadline_in(20))
    for node in custody.nodes.values():
        deliver_shares(node.storage.chain, stored_shares(node.storage.chain, custody.tmp / "custody"))
    keeper, settled = (
        custody.keeper,
        f"storage {custody.keeper.address}: settled purchase {purchase.id} of version {VERSION}",
    )

    def keep() -> list[str]:
        lines = keeper.keep()
        # The keeper may have challenged an audit epoch: its holders answer, so the tests below start with none open.
        for holder in custody.nodes.values():
            holder.step()
        return lines

    assert settled not in keep()  # the window is open: the keeper leaves it to the buyer
    assert not access.is_settled(purchase.id)
    owed = {c: access.contract.functions.owed(c).call() for c in custody.nodes}
    custody.net.mine_to(purchase.deliver_by + 1)
    assert settled in keep()
    assert access.is_settled(purchase.id)
    getter = access.contract.functions.params
    params = dict(zip([o["name"] for o in getter.abi["outputs"]], getter().call(), strict=True))
    expected = fee_split(price, params["burnBps"], params["storageBps"], params["custodianBps"], NODE_COUNT)
    for c in custody.nodes:
        assert access.contract.functions.owed(c).call() == owed[c] + expected.per_custodian
    assert settled not in keep() and purchase.id not in keeper.purchases


def test_a_replica_that_does_not_verify_is_not_confirmed_and_expires(custody):
    """The publisher records a root the replica it names does not have (version 77, the bytes of a version 1
    replica, the node's own when it holds one): the node does not confirm it, a keeper expires the assignment once
    its window is over, and the node's own replica stays pinned."""
    manifest, storage = custody.manifest, custody.publisher
    entry = manifest.shards[0]
    size = entry.replicas[0].size
    node = custody.node_for(storage.next_holder(77, 0, size))
    own = [r for e in manifest.shards for r in e.replicas if r.node == node.address.lower()]
    replica = own[0] if own else entry.replicas[0]  # bytes of another assignment
    storage.assign(77, 0, node.address, keccak(b"not this replica's root"), size, replica.cid)
    nonce = custody.nonces()[node.address]

    lines = node.step()
    assert len(lines) == 1
    assert lines[0].startswith(f"storage {node.address}: version 77 shard 0: replica {replica.cid} does not verify")
    assert lines[0].endswith("not confirmed")
    assert node.step() == []  # reported once, not fetched again
    assert node.storage.replica(77, 0).status == "Assigned"
    assert custody.nonces()[node.address] == nonce

    # Past its window, any keeper expires it, slashing the node's bond.
    deadline = node.storage.replica(77, 0).assigned_block + PARAMS.confirm_window
    custody.net.mine_to(deadline + 1)
    assert node.step() == [f"storage {node.address}: version 77 shard 0: the confirm window closed at block {deadline}"]
    bond = node.storage.node().bond
    expired = f"expired the unconfirmed assignment of version 77 shard 0 of {node.address}"
    assert f"storage {custody.keeper.address}: {expired}" in custody.keeper.keep()
    assert node.storage.replica(77, 0).status == "Failed"
    assert all(node.store.is_pinned(r.cid) for r in own)  # failing the bad assignment unpinned none of its own
    assert node.storage.node().bond == bond - PARAMS.audit_slash
    # The keeper also challenged the epoch in reach: its node answers, so that the tests below start with none open.
    answered = [line for holder in custody.nodes.values() for line in holder.step()]
    assert len(answered) == 1 and ": answered audit " in answered[0]
    assert node.step() == []


def next_epoch(custody) -> int:
    """Mines past the next audit epoch's seed block; the keeper challenges it; returns the epoch."""
    interval = PARAMS.audit_interval
    epoch = custody.net.block() // interval + 1
    custody.net.mine_to(epoch * interval + 1)
    assert custody.keeper.keep() == [f"storage {custody.keeper.address}: challenged audit epoch {epoch}"]
    return epoch


def test_an_audited_node_answers_and_is_paid(custody):
    storage = custody.publisher
    epoch = next_epoch(custody)
    audit = storage.audit(epoch)
    node = custody.node_for(audit.node)
    owed = storage.owed(node.address)

    assert node.step() == [
        f"storage {node.address}: answered audit {epoch} (version {audit.version} shard {audit.shard} chunk "
        f"{audit.chunk_index})"
    ]
    assert storage.audit(epoch).closed
    assert storage.owed(node.address) > owed  # the audit emission (the pot holds no fees yet)
    passed = storage.logs(storage.AUDIT_PASSED, {"epoch": epoch}, 0, custody.net.block())
    assert [(log.args["node"], log.args["fee"] + log.args["emitted"]) for log in passed] == [
        (node.address, storage.owed(node.address) - owed)
    ]
    nonce = custody.nonces()[node.address]
    assert node.step() == []
    restarted = StorageNode(node.storage, node.store, keeper=False, out=lambda line: None)
    assert restarted.step() == []
    assert custody.nonces()[node.address] == nonce  # answered once, restart or not
    with pytest.raises(TransactionReverted, match=rf"Storage.answer would revert: AuditClosed\(epoch={epoch}\)"):
        node.storage.answer(epoch, b"", [])  # what the step would report in one line, had it sent it
    assert custody.nonces()[node.address] == nonce


def drop_content(store: EmbeddedStore, cid: str) -> None:
    """Deletes `cid`'s root block and pin from an embedded store: the replica is gone from that disk."""
    root = str(parse_cid(cid).v1())
    store.unpin(cid)
    (store.root / "blocks" / root[-3:-1] / root).unlink()


def test_a_lost_replica_misses_its_audit_is_slashed_and_repaired_by_the_next_node(custody, sharded):
    storage, manifest = custody.publisher, custody.manifest
    epoch = next_epoch(custody)
    audit = storage.audit(epoch)
    lost = custody.node_for(audit.node)
    entry = manifest.shards[audit.shard]
    replica = next(r for r in entry.replicas if r.node == lost.address.lower())
    # The node lost its replica, and the publisher dropped its staging copy once the replicas were confirmed.
    drop_content(lost.store, replica.cid)
    drop_content(custody.publisher_store, replica.cid)
    bond = lost.storage.node().bond

    lines = lost.step()
    where = f"audit {epoch} (version {VERSION} shard {audit.shard} chunk {audit.chunk_index})"
    assert f"storage {lost.address}: {where}: the replica is not in {lost.store.location}; cannot answer" in lines
    assert not any("answered" in line or "released" in line for line in lines)  # under audit: no release
    assert custody.keeper.keep() == []  # the answer window is still open
    custody.net.mine_to(audit.deadline + 1)
    assert custody.keeper.keep() == [
        f"storage {custody.keeper.address}: slashed the missed audit {epoch} of {lost.address}"
    ]
    assert storage.replica(VERSION, audit.shard, lost.address).status == "Failed"
    assert lost.storage.node().bond == bond - PARAMS.audit_slash
    missed = storage.logs(storage.AUDIT_MISSED, {"epoch": epoch}, 0, custody.net.block())
    assert [(log.args["node"], log.args["slashed"]) for log in missed] == [(lost.address, PARAMS.audit_slash)]
    assert storage.live_replicas(VERSION, audit.shard) == PARAMS.replication - 1

    # Repair: the publisher's next step re-seals the shard for the next node in the ranking and assigns it, with
    # its CID in the event.
    successor = storage.next_holder(VERSION, audit.shard, replica.size)
    assert successor is not None and successor.lower() not in {r.node for r in entry.replicas}
    repair = custody.publish(sharded)
    assert repair.done and len(repair.lines) == 1
    assert repair.lines[0].startswith(f"version {VERSION} shard {audit.shard}: assigned to {successor} (")
    repaired = storage.replica(VERSION, audit.shard, successor)
    repaired_cid = repair.lines[0].rsplit(", ", 1)[1].removesuffix(")")
    assert custody.publish(sharded).lines == []  # back to R: nothing more to do
    node = custody.node_for(successor)
    assert f"storage {successor}: confirmed version {VERSION} shard {audit.shard} ({repaired.size:,} bytes)" in (
        node.step()
    )
    assert node.store.is_pinned(repaired_cid)  # the CID came from the chain: no manifest was handed over
    assert storage.replica(VERSION, audit.shard, successor).status == "Holding"
    assert storage.live_replicas(VERSION, audit.shard) == PARAMS.replication
    assert lost.step() == []  # its failed replica is gone from its pins already; nothing to send


def test_a_holder_that_lost_a_replica_no_source_has_releases_it_after_three_steps(custody):
    storage, manifest = custody.publisher, custody.manifest
    entry = manifest.shards[-1]
    holder = next(r for r in entry.replicas if storage.replica(VERSION, entry.index, r.node).status == "Holding")
    node = custody.node_for(to_checksum_address(holder.node))
    drop_content(node.store, holder.cid)
    drop_content(custody.publisher_store, holder.cid)
    lines = node.step()
    assert any(
        line.startswith(f"storage {node.address}: version {VERSION} shard {entry.index}: no source") for line in lines
    )
    assert node.step() == []  # the same miss is not reported twice
    assert storage.replica(VERSION, entry.index, node.address).status == "Holding"  # a source may come back
    assert node.step() == [
        f"storage {node.address}: released version {VERSION} shard {entry.index}: lost locally, no source has it"
    ]
    assert storage.replica(VERSION, entry.index, node.address).status == "Released"
    assert storage.live_replicas(VERSION, entry.index) == PARAMS.replication - 1
    assert node.step() == []


def shards_ranked_first(storage: StorageClient, version: int, size: int, count: int) -> tuple[str, list[int]]:
    """`count` shards of `version` whose next holder for `size` bytes is one same node (the first shard's)."""
    node = storage.next_holder(version, 0, size)
    shards = [s for s in range(200) if storage.next_holder(version, s, size) == node][:count]
    assert node is not None and len(shards) == count
    return node, shards


def put_raw_block(store: EmbeddedStore, data: bytes) -> str:
    """Stores `data` as one raw block and returns its raw-codec CID (which `add_bytes` would chunk otherwise)."""
    cid = Cid.for_block(RAW, data)
    name = str(cid)
    (store.root / "blocks" / name[-3:-1]).mkdir(exist_ok=True)
    (store.root / "blocks" / name[-3:-1] / name).write_bytes(data)
    return name


def test_one_bad_replica_neither_holds_up_the_others_nor_is_fetched_past_its_size_or_again(custody):
    """Version 78, four replicas for one node in one step: a raw-codec CID over bytes the store re-adds under
    another CID (a store error of that replica alone), a CID of 600 KiB assigned as 1,000 bytes (not downloaded
    past the recorded size), then two good ones, which confirm in the same step; the bad ones are not fetched
    again."""
    storage, publisher_store = custody.publisher, custody.publisher_store
    size = 300 * 1024  # above one 256 KiB chunk: the store's own CID of these bytes is dag-pb
    address, shards = shards_ranked_first(storage, 78, size, 4)
    node = custody.node_for(address)
    assert node.step() == []
    raw_data, big, good = sample_bytes(size, 1), sample_bytes(600 * 1024, 2), [sample_bytes(size, s) for s in (3, 4)]
    raw_cid = put_raw_block(publisher_store, raw_data)
    big_cid = publisher_store.add_bytes(big)
    good_cids = [publisher_store.add_bytes(data) for data in good]
    storage.assign(78, shards[0], address, merkle_root(raw_data), size, raw_cid)
    storage.assign(78, shards[1], address, merkle_root(big[:1000]), 1000, big_cid)
    for shard, data, cid in zip(shards[2:], good, good_cids, strict=True):
        storage.assign(78, shard, address, merkle_root(data), size, cid)

    lines = node.step()
    prefix = f"storage {address}: version 78 shard"
    assert len(lines) == 4, lines
    assert lines[0].startswith(f"{prefix} {shards[0]}: {node.store.location} named version 78 shard {shards[0]} ")
    assert lines[0].endswith(f", not {raw_cid}; skipped")
    assert lines[1] == (
        f"{prefix} {shards[1]}: replica {big_cid} does not verify ({big_cid} is {len(big)} bytes, above the maximum "
        "size of 1000 bytes); not confirmed"
    )
    assert lines[2:] == [
        f"storage {address}: confirmed version 78 shard {shard} ({size:,} bytes)" for shard in shards[2:]
    ]
    assert [storage.replica(78, shard, address).status for shard in shards] == ["Assigned"] * 2 + ["Holding"] * 2
    assert not node.store.is_pinned(cid_of_bytes(raw_data))  # the copy under the other CID is not kept
    assert not node.store.has(big_cid)

    # Rejected, not fetched again: with the sources' copies gone, a new fetch would report that no source has it.
    (publisher_store.root / "blocks" / raw_cid[-3:-1] / raw_cid).unlink()
    drop_content(publisher_store, big_cid)
    assert node.step() == []


def test_an_expire_that_failed_is_sent_again_at_the_next_step(custody, tmp_path):
    """A keeper without ETH for gas cannot send `expire` of version 78's two unconfirmed replicas; funded, its next
    step sends them (the assignments were still tracked)."""
    storage, net = custody.publisher, custody.net
    bad = [
        (log.args["shard"], log.args["node"])
        for log in storage.logs(storage.REPLICA_ASSIGNED, {"version": 78}, 0, net.block())
    ]
    bad = [(shard, node) for shard, node in bad if storage.replica(78, shard, node).status == "Assigned"]
    assert len(bad) == 2
    net.mine_to(max(storage.replica(78, shard, node).assigned_block for shard, node in bad) + PARAMS.confirm_window + 1)
    keeper = make_node(net, tmp_path, custody.publisher_store, keeper=True, staked=0)
    w3 = keeper.storage.chain.w3
    w3.provider.make_request("anvil_setBalance", [keeper.address, "0x0"])
    lines = keeper.keep()
    for shard, node in bad:
        assert any(
            line.startswith(f"storage {keeper.address}: expire of version 78 shard {shard} of {node} not sent: ")
            for line in lines
        ), lines
        assert storage.replica(78, shard, node).status == "Assigned"

    w3.provider.make_request("anvil_setBalance", [keeper.address, hex(10 * ETH)])
    lines = keeper.keep()
    for shard, node in bad:
        assert (
            f"storage {keeper.address}: expired the unconfirmed assignment of version 78 shard {shard} of {node}"
            in lines
        )
        assert storage.replica(78, shard, node).status == "Failed"
    # Any audit the keeper challenged is answered, so that the next test starts with none open.
    for holder in custody.nodes.values():
        holder.step()
    for epoch in keeper.audits:
        assert storage.audit(epoch).closed


def test_a_node_restarted_behind_the_head_answers_an_audit_opened_there_in_its_first_step(custody):
    """A restarted node whose first scan range (`max_range` blocks from the deploy block, `LOG_RANGE` by default)
    ends far behind the head still finds the audit opened there and answers it in its first step: from the
    assignment its scan reached, and (a range of one block, which reaches none) from the chain's replica record and
    the CID of its `ReplicaAssigned`. The history here is short; a range shorter than it stands for `LOG_RANGE`
    on a long chain (anvil takes minutes to mine thousands of blocks)."""
    storage = custody.publisher
    for reach_assignment in (True, False):
        epoch = next_epoch(custody)
        audit = storage.audit(epoch)
        node = custody.node_for(audit.node)
        assigned = storage.replica(audit.version, audit.shard, node.address).assigned_block
        max_range = assigned - storage.deploy_block() + 1 if reach_assignment else 1
        restarted = StorageNode(
            node.storage, node.store, sources=node.sources[1:], keeper=False, max_range=max_range, out=lambda line: None
        )
        where = f"audit {epoch} (version {audit.version} shard {audit.shard} chunk {audit.chunk_index})"
        assert f"storage {node.address}: answered {where}" in restarted.step()
        assert storage.audit(epoch).closed
        # Its scan stopped before the block the audit was opened in (`answerWindow` before its deadline).
        assert restarted.cursor == storage.deploy_block() + max_range <= audit.deadline - PARAMS.answer_window
        assert restarted.replicas[(audit.version, audit.shard)].assigned == assigned


def test_the_storage_worker_command_refuses_without_stake_then_registers_and_stops_on_sigterm(custody, tmp_path):
    net = custody.net
    unstaked, staked = net.account(), net.account(role="STORAGE", staked=500)
    command = [sys.executable, "-m", "workers.cli", "worker", "--role", "storage", "--rpc", net.url]
    command += [
        "--endpoint",
        "/dns4/cli.example/tcp/4001",
        "--capacity",
        str(1 << 30),
        "--no-keep",
        "--interval",
        "0.2",
    ]
    env = {
        DEPLOYMENTS_DIR_ENV: str(net.deployments),
        STORE_DIR_ENV: str(tmp_path / "store"),
        PRIVATE_KEY_ENV: net.keys[unstaked.address],
    }
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEEPSHARD_")} | env
    refused = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, cwd=project_root())
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.startswith(f"error: {unstaked.address} has 0 DSH of unlocked STORAGE stake")
    assert "Traceback" not in refused.stderr
    assert not StorageClient(unstaked).node().registered

    env[PRIVATE_KEY_ENV] = net.keys[staked.address]
    worker = start_child(
        "storage-worker", command, env, tmp_path / "worker.log", TEST_REDIS_URL, "storage worker for", 120.0
    )
    try:
        assert StorageClient(staked).node().registered  # registered before the loop starts
        assert f"storage {staked.address}: registered (/dns4/cli.example/tcp/4001, {1 << 30:,} bytes)" in worker.log()
        worker.process.terminate()
        assert worker.process.wait(timeout=60) == 0, worker.log()
        assert "storage worker stopped" in worker.log()
    finally:
        worker.stop()
