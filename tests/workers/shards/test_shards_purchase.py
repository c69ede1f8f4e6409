"""Buying a version's key on a real chain: `deepshard weights price|buy`, custodians delivering through
`deliver_shares`, and what the buyer refuses.

One anvil and one deployment for the module (its own deployments folder). Version 2 is registered as a round
would, and the publisher's step (`Publisher.step`) publishes the session's sharded tiny model: its replicas
assigned to five STORAGE-staked storage nodes, its manifest recorded, its key split 3-of-5 among the same five
accounts as custodians, who take their shares from the hand-over file (`receive_share`, kept with `save_share`).
Each test buys with a fresh account, so purchases never interfere; the key one buys assembles the weights with
`deepshard weights fetch VERSION`, which reads the manifest the registry records.
"""

from __future__ import annotations

import os
import resource
import signal
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from eth_account import Account
from eth_utils import keccak
from shardkit import VERSION
from web3.logs import DISCARD

from workers.chain import ChainClient, LocalSigner, deploy_network, stake
from workers.chain.accounts import PRIVATE_KEY_ENV
from workers.chain.deploy import GENESIS_MODEL_CID
from workers.chain.deployments import DEPLOYMENTS_DIR_ENV
from workers.chain.localnode import dev_account, dev_signer, start_anvil
from workers.chain.module import cid_from_chain, cid_to_chain, event_logs, struct_of
from workers.chain.units import WEI_PER_DSH, format_dsh
from workers.cli import main
from workers.protocol.access import fee_split
from workers.protocol.access import price as reference_price
from workers.serve.cli import load_engine
from workers.serve.registry import VersionRefused, check_version, read_version_record, shard_manifest_files
from workers.shards import KeyRejected, buyer_keypair, seal_share
from workers.shards.access import WeightAccessClient, deliver_shares, save_share, share_path, stored_shares
from workers.shards.chain import StorageClient
from workers.shards.crypto import SEALED_SHARE_BYTES
from workers.shards.manifest import MAX_MANIFEST_BYTES
from workers.shards.publisher import (
    CustodianKey,
    Publisher,
    PublishError,
    handover_path,
    key_path,
    read_handover,
    receive_share,
)
from workers.storage import STORE_DIR_ENV, EmbeddedStore

ETH = 10**18
THRESHOLD, CUSTODIANS = 3, 5
#: Node bond (500) and a custodian bond (200) per version kept (versions 2 and 3) of STORAGE stake, the defaults.
STAKE = 900
#: WeightAccess.params(), in order.
PARAMS = (
    "basePrice",
    "valueScale",
    "burnBps",
    "storageBps",
    "custodianBps",
    "deliveryWindow",
    "custodianBond",
    "custodianSlash",
)


def fresh_account(treasury: ChainClient, dsh: int) -> tuple[ChainClient, str]:
    """A new funded account: (its client, its throwaway test key for the CLI's environment)."""
    account = Account.create()
    signer = LocalSigner(account)
    treasury.w3.provider.make_request("anvil_setBalance", [signer.address, hex(10 * ETH)])
    if dsh:
        treasury.transact(treasury.contract("DeepshardToken").functions.transfer(signer.address, dsh * WEI_PER_DSH))
    return treasury.with_signer(signer), account.key.hex()


@dataclass(frozen=True)
class Sale:
    """The module's chain with the version on sale: the deployer (treasury, publisher), the custodians in share
    order with their shares and throwaway test keys, the folder where they keep their shares, the version key
    (from the publisher's key file) and the publisher's store folder (every replica, the manifest)."""

    treasury: ChainClient
    custodians: list[ChainClient]
    shares: list[bytes]
    custody_dir: Path
    keys: list[str]
    key: bytes
    store_dir: Path


@pytest.fixture(scope="module")
def sale(tmp_path_factory, sharded):
    """The chain with version 2 on sale (`Sale`)."""
    node = start_anvil()
    try:
        deployments = tmp_path_factory.mktemp("deployments")
        treasury = ChainClient(node.url, dev_signer(0), deployments_dir=deployments)
        deploy_network(treasury)  # the deployer is governance and the publisher
        custodians, keys = [], []
        for index in range(CUSTODIANS):
            client, key = fresh_account(treasury, STAKE)
            stake(client, "STORAGE", str(STAKE))
            StorageClient(client).register(f"/dns4/node{index}.example/tcp/4001", 1 << 30)
            custodians.append(client)
            keys.append(key)
        models = treasury.contract("ModelRegistry")
        # Version 2 as a training round would register it (the deployer takes the rounds' role for it).
        treasury.transact(models.functions.grantRole(models.functions.REGISTRAR_ROLE().call(), treasury.address))
        treasury.transact(models.functions.registerVersion(1, 1, cid_to_chain(GENESIS_MODEL_CID), 0))
        assert models.functions.latestVersion().call() == VERSION
        tmp = tmp_path_factory.mktemp("publisher")
        store = EmbeddedStore(tmp / "store")
        custodian_keys = [buyer_keypair() for _ in custodians]
        report = Publisher(treasury, store, tmp / "keys", tmp / "handover").step(
            VERSION,
            sharded,
            base_model="tiny",
            custodians=[
                CustodianKey(c.address, public) for c, (_, public) in zip(custodians, custodian_keys, strict=True)
            ],
            threshold=THRESHOLD,
        )
        assert report.done
        custody_dir = tmp_path_factory.mktemp("custody")
        handover = handover_path(
            tmp / "handover", treasury.chain_id, treasury.contract("WeightAccess").address, VERSION
        )
        for client, (private, _) in zip(custodians, custodian_keys, strict=True):
            receive_share(client, handover, private, custody_dir)
        shares = [stored_shares(client, custody_dir)[VERSION] for client in custodians]
        version_key = bytes.fromhex(
            key_path(tmp / "keys", treasury.chain_id, models.address, VERSION).read_text().strip()
        )
        yield Sale(treasury, custodians, shares, custody_dir, keys, version_key, tmp / "store")
    finally:
        node.stop()


@pytest.fixture(autouse=True)
def sale_env(sale, clean_env, monkeypatch):
    """The CLI finds this module's deployment (not the session's: both anvils are chain 31337)."""
    monkeypatch.setenv(DEPLOYMENTS_DIR_ENV, str(sale.treasury.deployments_dir))


def dsh_of(client: ChainClient, address: str) -> int:
    return int(client.contract("DeepshardToken").functions.balanceOf(address).call())


def deliver_from(sale: Sale, indices, purchase: int) -> list[str]:
    """Each custodian at `indices` runs its delivery pass from its kept shares; returns what each did for
    `purchase` (the pass also walks the other tests' purchases)."""
    return [
        step.action
        for index in indices
        for step in deliver_shares(sale.custodians[index], stored_shares(sale.custodians[index], sale.custody_dir))
        if step.purchase == purchase
    ]


def mine_past(client: ChainClient, block: int) -> None:
    latest = int(client.w3.eth.block_number)
    if latest <= block:
        client.w3.provider.make_request("anvil_mine", [hex(block - latest + 1)])


def test_price_shows_the_contracts_price_and_its_value_snapshot(sale, capsys):
    treasury = sale.treasury
    access = treasury.contract("WeightAccess")
    listing = access.functions.getListing(VERSION).call()
    base, scale = access.functions.params().call()[:2]
    assert access.functions.price(VERSION).call() == reference_price(base, listing[0], scale) == 1_000 * WEI_PER_DSH
    assert main(["weights", "price", str(VERSION), "--rpc", treasury.rpc_url]) == 0
    out = capsys.readouterr().out
    assert f"version {VERSION}: 1,000 DSH (on sale)" in out
    assert f"value created when published (block {listing[1]}): 0 DSH" in out


def test_buy_waits_for_the_custodians_and_writes_exactly_the_key(sale, tiny, tmp_path, monkeypatch, capsys):
    treasury, version_key = sale.treasury, sale.key
    buyer, key = fresh_account(treasury, 5_000)
    monkeypatch.setenv(PRIVATE_KEY_ENV, key)
    access = WeightAccessClient(treasury)
    bought_before = int(access.contract.functions.purchaseCount().call())
    key_out, buyer_key = tmp_path / "version.key", tmp_path / "keys" / "buyer.key"
    argv = ["weights", "buy", str(VERSION), "--max-price", "1,000", "--key-out", str(key_out)]
    # A bounded wait, in a daemon thread: a command that never gets its shares fails instead of hanging pytest.
    argv += ["--buyer-key", str(buyer_key), "--rpc", treasury.rpc_url, "--timeout", "120"]
    result: list[int] = []
    command = threading.Thread(target=lambda: result.append(main(argv)), daemon=True)
    command.start()
    # The custodians answer the purchase once it is on-chain (the command waits for them meanwhile).
    while command.is_alive() and int(access.contract.functions.purchaseCount().call()) == bought_before:
        command.join(0.05)
    purchase = bought_before + 1
    assert deliver_from(sale, range(CUSTODIANS), purchase) == ["delivered"] * CUSTODIANS
    command.join()
    out, err = capsys.readouterr()
    assert result == [0], err
    assert key_out.read_text().strip() == version_key.hex()
    assert stat.S_IMODE(os.stat(key_out).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(buyer_key).st_mode) == 0o600
    private = buyer_key.read_text().strip()
    assert private not in out + err and version_key.hex() not in out + err
    assert "keccak256 matches the on-chain key hash" in out
    assert dsh_of(treasury, buyer.address) == 4_000 * WEI_PER_DSH
    assert fetch(sale, tmp_path / "out", "--key-file", str(key_out)) == 0
    assert f"weights {tiny.weights_hash}" in capsys.readouterr().out

    # Idempotent: a second pass sends nothing; once settled, the purchase is skipped.
    assert deliver_from(sale, range(CUSTODIANS), purchase) == ["already delivered"] * CUSTODIANS
    # Every custodian delivered: anyone (here custodian 0) may settle before the window closes, and is told who got
    # what, the split as the Python reference computes it.
    monkeypatch.setenv(PRIVATE_KEY_ENV, sale.keys[0])
    assert main(["weights", "settle", str(purchase), "--rpc", treasury.rpc_url]) == 0
    out = capsys.readouterr().out
    params = dict(zip(PARAMS, access.contract.functions.params().call(), strict=True))
    split = fee_split(1_000 * WEI_PER_DSH, params["burnBps"], params["storageBps"], params["custodianBps"], CUSTODIANS)
    assert out.splitlines() == [
        f"purchase {purchase} (version {VERSION}): settled in tx {settled_tx(access, purchase)}",
        f"5 custodians delivered; of the 1,000 DSH paid: {format_dsh(split.burned, grouped=True)} DSH burned, "
        f"{format_dsh(split.storage, grouped=True)} DSH to version {VERSION}'s storage pot, "
        f"{format_dsh(split.treasury, grouped=True)} DSH to the treasury",
        *(
            f"custodian {c.address}: {format_dsh(split.per_custodian, grouped=True)} DSH credited (to withdraw)"
            for c in sale.custodians
        ),
    ]
    assert deliver_from(sale, [0], purchase) == ["settled"]
    # The buyer key is read, not replaced, on the next purchase.
    assert buyer_key.read_text().strip() == private


def settled_tx(access: WeightAccessClient, purchase: int) -> str:
    """The hash of the transaction that settled `purchase` (its `Settled` event)."""
    (log,) = event_logs(access.contract, "Settled", {"purchase": purchase}, 0, access.latest_block())
    return log.tx_hash


def fetch(sale: Sale, output: Path, *extra: str) -> int:
    """`deepshard weights fetch VERSION` against the module's chain, replicas from the publisher's store."""
    argv = ["weights", "fetch", str(VERSION), "-o", str(output), "--store-dir", str(sale.store_dir)]
    return main(argv + ["--rpc", sale.treasury.rpc_url, *extra])


def test_fetch_with_shares_sealed_to_the_buyer_writes_a_servable_folder(sale, tiny, buyer, tmp_path, capsys):
    private, public = buyer
    (tmp_path / "buyer").write_text(private.hex())
    paths = []
    for number, share in enumerate(sale.shares[:THRESHOLD]):
        paths += ["--share", str(tmp_path / f"share{number}")]
        (tmp_path / f"share{number}").write_text(seal_share(share, public, version=VERSION).hex())
    buyer_key = ["--buyer-key", str(tmp_path / "buyer")]
    assert fetch(sale, tmp_path / "out", *buyer_key, *paths) == 0
    out = capsys.readouterr().out
    assert f"version {VERSION}: 6 shards verified, weights {tiny.weights_hash}" in out
    # What `deepshard serve --weights` does with the folder: load it, hash what it loaded, check the registry.
    engine = load_engine("tiny", tmp_path / "out")
    assert engine.weights_hash == tiny.weights_hash
    check_version(sale.treasury, VERSION, engine.weights_hash, read_version_record(tmp_path / "out"))
    with pytest.raises(VersionRefused, match=f"the registry records {tiny.weights_hash} for version {VERSION}"):
        check_version(sale.treasury, VERSION, "0x" + "00" * 32, read_version_record(tmp_path / "out"))
    # The loader files are the manifest's, byte for byte: the weights hash binds only the tensors.
    folder = tmp_path / "out"
    store = EmbeddedStore(sale.store_dir)

    def served(claimed_hash: str = tiny.weights_hash) -> None:
        check_version(
            sale.treasury,
            VERSION,
            claimed_hash,
            read_version_record(folder),
            folder=folder,
            published_files=lambda version, cid: shard_manifest_files(store, version, cid),
        )

    served()
    config = (folder / "config.json").read_bytes()
    (folder / "config.json").write_bytes(
        config.replace(b'"max_position_embeddings": 512', b'"max_position_embeddings": 1000000000')
    )
    with pytest.raises(VersionRefused, match="config.json differs from version 2's shard manifest's"):
        served()
    (folder / "config.json").write_bytes(config)
    (folder / "added_tokens.json").write_text("{}")
    with pytest.raises(
        VersionRefused, match="holds added_tokens.json, which is not among version 2.s shard manifest.s loader files"
    ):
        served()
    (folder / "added_tokens.json").unlink()
    with pytest.raises(VersionRefused, match="cannot be checked against its shard manifest"):
        check_version(sale.treasury, VERSION, tiny.weights_hash, read_version_record(folder), folder=folder)

    # k - 1 shares rebuild another key: refused against the on-chain key hash, nothing written.
    assert fetch(sale, tmp_path / "two", *buyer_key, *paths[: 2 * (THRESHOLD - 1)]) == 1
    assert "committed key hash" in capsys.readouterr().err
    assert not (tmp_path / "two").exists()


def new_version(sale: Sale, manifest: bytes | None) -> int:
    """A new registered version; with `manifest`, those bytes stored and published as its shard manifest (the
    deployer holds both roles), under the tiny model's weights hash."""
    models = sale.treasury.contract("ModelRegistry")
    sale.treasury.transact(models.functions.registerVersion(1, 9, cid_to_chain(GENESIS_MODEL_CID), 0))
    version = int(models.functions.latestVersion().call())
    if manifest is not None:
        cid = EmbeddedStore(sale.store_dir).add_bytes(manifest)
        recorded = struct_of(models, "getVersion", VERSION)["weightsHash"]
        sale.treasury.transact(models.functions.publishShards(version, cid_to_chain(cid), recorded))
    return version


def test_fetch_failures_are_one_line_and_never_show_the_secret(sale, tmp_path, capsys):
    out = tmp_path / "out"

    def refused(version: int | str, *extra: str, store: Path = sale.store_dir) -> str:
        argv = ["weights", "fetch", str(version), "-o", str(out), "--store-dir", str(store), *extra]
        assert main(argv + ["--rpc", sale.treasury.rpc_url]) == 1
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.splitlines()) == 1 and captured.err.startswith("error: ")
        assert not out.exists()
        return captured.err

    key_file = tmp_path / "key"
    key_file.write_text(sale.key.hex()[:-2])
    err = refused(VERSION, "--key-file", str(key_file))
    assert err.startswith("error: the key file") and "64 hex digits" in err
    assert sale.key.hex()[:16] not in err
    key_file.write_text(sale.key.hex())
    other_key = tmp_path / "other-key"
    other_key.write_text("11" * 32)
    assert f"the version key is not version {VERSION}'s" in refused(VERSION, "--key-file", str(other_key))

    assert "version 99 is not registered" in refused(99, "--key-file", str(key_file))
    unpublished = new_version(sale, None)
    assert f"version {unpublished} has no shards published yet" in refused(unpublished, "--key-file", str(key_file))
    recorded = sale.treasury.contract("ModelRegistry").functions.getVersion(VERSION).call()
    borrowed = new_version(sale, EmbeddedStore(sale.store_dir).get(cid_from_chain(recorded[5])))
    assert f"recorded for version {borrowed} is version {VERSION}'s" in refused(borrowed, "--key-file", str(key_file))
    nested = new_version(sale, b"[" * 1000 + b"]" * 1000)
    assert "nested more than" in refused(nested, "--key-file", str(key_file))
    huge = new_version(sale, b" " * (MAX_MANIFEST_BYTES + 1))
    assert f"above the maximum size of {MAX_MANIFEST_BYTES} bytes" in refused(huge, "--key-file", str(key_file))

    # A store without the manifest: the store says so, nothing written.
    assert "is not in" in refused(VERSION, "--key-file", str(key_file), store=tmp_path / "empty")
    assert "give either --key-file" in refused(VERSION)
    out.mkdir()
    argv = ["weights", "fetch", str(VERSION), "-o", str(out), "--store-dir", str(sale.store_dir)]
    assert main(argv + ["--rpc", sale.treasury.rpc_url, "--key-file", str(key_file)]) == 1
    assert "already exists" in capsys.readouterr().err and not any(out.iterdir())


def test_fetch_refuses_an_output_it_cannot_create_before_fetching_and_a_failed_write_leaves_nothing(
    sale, tmp_path, capsys
):
    key_file = tmp_path / "key"
    key_file.write_text(sale.key.hex())
    (tmp_path / "file").write_text("")

    def refused(output: Path) -> str:
        assert fetch(sale, output, "--key-file", str(key_file)) == 1
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.splitlines()) == 1, captured.err
        return captured.err

    # Refused before a shard is fetched: nothing can be made under /proc, nor under a file.
    assert refused(Path("/proc/deepshard-out")) == (
        "error: cannot create /proc/deepshard-out: No such file or directory (in /proc)\n"
    )
    assert refused(tmp_path / "file" / "out") == (
        f"error: cannot create {tmp_path / 'file' / 'out'}: {tmp_path / 'file'} is not a folder\n"
    )
    # The disk fills while writing (a file size limit, its signal ignored so the write fails with EFBIG): one line,
    # no staging folder left, no output.
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        err = refused(tmp_path / "parent" / "out")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert err.startswith(f"error: cannot write {tmp_path / 'parent' / 'out'}: ") and "File too large" in err
    assert list((tmp_path / "parent").iterdir()) == []


def test_malformed_json_inputs_are_one_line_naming_the_file(sale, tmp_path, monkeypatch, capsys):
    """A hand-over for `receive` and a version description for `publish`: truncated, nested deeper than allowed,
    empty (/dev/null). JsonRejected, not a ShardError, used to escape as a traceback."""
    from workers.ml.models import VERSION_FILE

    bad = {"truncated": b'{"version": 2, "thresh', "deep": b"[" * 64 + b"]" * 64}
    paths = []
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
        paths.append(tmp_path / name)
    paths.append(Path(os.devnull))
    (tmp_path / "custodian.key").write_text("22" * 32)
    monkeypatch.setenv(PRIVATE_KEY_ENV, sale.keys[0])
    for path in paths:
        argv = ["weights", "receive", str(path), "--key", str(tmp_path / "custodian.key")]
        assert main([*argv, "--custody-dir", str(tmp_path / "custody"), "--rpc", sale.treasury.rpc_url]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}: ") and len(err.splitlines()) == 1, err
        assert not (tmp_path / "custody").exists()

        folder = tmp_path / f"weights-{path.name}"
        folder.mkdir()
        (folder / VERSION_FILE).symlink_to(path)
        assert main(["weights", "publish", str(VERSION), "--weights", str(folder), "--rpc", sale.treasury.rpc_url]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {folder / VERSION_FILE}: ") and len(err.splitlines()) == 1, err


def test_a_max_price_below_the_price_is_refused_and_costs_nothing(sale, tmp_path, monkeypatch, capsys):
    treasury = sale.treasury
    buyer, key = fresh_account(treasury, 5_000)
    monkeypatch.setenv(PRIVATE_KEY_ENV, key)
    eth_before = treasury.w3.eth.get_balance(buyer.address)
    key_out = tmp_path / "version.key"
    argv = ["weights", "buy", str(VERSION), "--max-price", "999.5", "--key-out", str(key_out)]
    assert main(argv + ["--buyer-key", str(tmp_path / "buyer.key"), "--rpc", treasury.rpc_url]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: version {VERSION} costs 1,000 DSH, above the maximum price of 999.5 DSH: nothing was bought or "
        "charged\n"
    )
    assert dsh_of(treasury, buyer.address) == 5_000 * WEI_PER_DSH
    assert treasury.w3.eth.get_balance(buyer.address) == eth_before
    assert treasury.w3.eth.get_transaction_count(buyer.address) == 0  # not even an approve
    assert not key_out.exists()


def test_fewer_than_k_deliveries_give_no_key_and_buy_settles_the_refund(sale, tmp_path, monkeypatch, capsys):
    treasury = sale.treasury
    buyer, key = fresh_account(treasury, 5_000)
    private, public = buyer_keypair()
    (tmp_path / "buyer.key").write_text(private.hex())
    access = WeightAccessClient(buyer)
    purchase = access.buy(VERSION, public, 1_000 * WEI_PER_DSH, access.deadline_in(20))
    assert deliver_from(sale, [0], purchase.id) == ["delivered"]
    # Custodian 1 through the command, from the shares it keeps.
    monkeypatch.setenv(PRIVATE_KEY_ENV, sale.keys[1])
    assert main(["weights", "deliver", "--custody-dir", str(sale.custody_dir), "--rpc", treasury.rpc_url]) == 0
    assert f"purchase {purchase.id} (version {VERSION}, share 1): delivered tx 0x" in capsys.readouterr().out
    # Nobody may settle while the window is open (three custodians have not delivered): one line, the block it
    # opens at, nothing sent.
    nonce = treasury.w3.eth.get_transaction_count(sale.custodians[1].address)
    assert main(["weights", "settle", str(purchase.id), "--rpc", treasury.rpc_url]) == 1
    assert capsys.readouterr().err == (
        f"error: purchase {purchase.id} cannot be settled yet: its custodians may deliver until block "
        f"{purchase.deliver_by}; anyone may settle it once block {purchase.deliver_by + 1} is mined (the latest is "
        f"{treasury.w3.eth.block_number})\n"
    )
    assert treasury.w3.eth.get_transaction_count(sale.custodians[1].address) == nonce

    monkeypatch.setenv(PRIVATE_KEY_ENV, key)
    key_out = tmp_path / "version.key"
    argv = ["weights", "buy", str(VERSION), "--purchase", str(purchase.id), "--key-out", str(key_out)]
    argv += ["--buyer-key", str(tmp_path / "buyer.key"), "--rpc", treasury.rpc_url]
    # While the window is open, a timeout says how to collect later.
    assert main([*argv, "--timeout", "0"]) == 1
    assert capsys.readouterr().err == (
        f"error: purchase {purchase.id}: 2 verified key shares of the 3 needed after waiting 0 s (deliveries are "
        f"open until block {purchase.deliver_by}), so the key cannot be rebuilt; collect them later with "
        f"`deepshard weights buy {VERSION} --purchase {purchase.id}`\n"
    )
    assert dsh_of(treasury, buyer.address) == 4_000 * WEI_PER_DSH
    # Once the window is over no share can come, and with 2 deliveries of the 3 needed a refund is all that is left:
    # the buyer's command settles the purchase itself.
    mine_past(treasury, purchase.deliver_by)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: purchase {purchase.id}: 2 verified key shares of the 3 needed when the delivery window closed at "
        f"block {purchase.deliver_by}, so the key cannot be rebuilt; settled in tx "
        f"{settled_tx(access, purchase.id)}: the 1,000 DSH escrowed was refunded to {buyer.address}\n"
    )
    assert not key_out.exists()
    assert dsh_of(treasury, buyer.address) == 5_000 * WEI_PER_DSH
    # A late custodian can no longer deliver: its pass starts after the purchases whose window is over (it does not
    # even look at this one).
    assert deliver_from(sale, [2], purchase.id) == []
    # Settled already: `settle` (anyone's, here the treasury's) sends nothing and says who got what.
    monkeypatch.setenv(PRIVATE_KEY_ENV, dev_account(0).key.hex())
    nonce = treasury.w3.eth.get_transaction_count(treasury.address)
    assert main(["weights", "settle", str(purchase.id), "--rpc", treasury.rpc_url]) == 0
    assert treasury.w3.eth.get_transaction_count(treasury.address) == nonce
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        f"purchase {purchase.id} (version {VERSION}): settled in tx {settled_tx(access, purchase.id)} (settled "
        "already)",
        f"2 custodians delivered, too few to rebuild the key: 1,000 DSH refunded to the buyer {buyer.address}",
    ]
    # The three silent custodians were slashed, each by what the contract took from it (its event).
    slashes = event_logs(access.contract, "CustodianSlashed", {"purchase": purchase.id}, 0, access.latest_block())
    assert {log.args["custodian"] for log in slashes} == {c.address for c in sale.custodians[2:]}
    assert lines[2:] == [
        f"custodian {log.args['custodian']}: slashed {format_dsh(log.args['amount'], grouped=True)} DSH of STORAGE "
        "stake (no delivery)"
        for log in slashes
    ]
    # The library's settle, given the purchase read before (still unsettled there), sends nothing either.
    assert not purchase.settled
    nonce = buyer.w3.eth.get_transaction_count(buyer.address)
    settlement = access.settle(purchase)
    assert buyer.w3.eth.get_transaction_count(buyer.address) == nonce
    assert (settlement.purchase, settlement.delivered, settlement.refunded) == (purchase.id, 2, True)
    assert settlement.paid == () and settlement.tx_hash == settled_tx(access, purchase.id)


def test_k_deliveries_that_do_not_verify_are_not_settled_by_buy(sale, tmp_path, monkeypatch, capsys):
    """The contract counts deliveries, it cannot check them: with k on-chain deliveries settling pays the
    custodians, so `buy` says so and sends nothing."""
    treasury, custodians = sale.treasury, sale.custodians
    buyer, key = fresh_account(treasury, 5_000)
    private, public = buyer_keypair()
    (tmp_path / "buyer.key").write_text(private.hex())
    access = WeightAccessClient(buyer)
    purchase = access.buy(VERSION, public, 1_000 * WEI_PER_DSH, access.deadline_in(20))
    for index in (0, 4):
        garbage = os.urandom(SEALED_SHARE_BYTES)
        custodians[index].transact(
            custodians[index].contract("WeightAccess").functions.deliverShare(purchase.id, index, garbage)
        )
    assert deliver_from(sale, [1], purchase.id) == ["delivered"]
    mine_past(treasury, purchase.deliver_by)
    monkeypatch.setenv(PRIVATE_KEY_ENV, key)
    argv = ["weights", "buy", str(VERSION), "--purchase", str(purchase.id), "--key-out", str(tmp_path / "k")]
    nonce = treasury.w3.eth.get_transaction_count(buyer.address)
    assert main(argv + ["--buyer-key", str(tmp_path / "buyer.key"), "--rpc", treasury.rpc_url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: purchase {purchase.id}: 1 verified key share of the 3 needed when the delivery")
    assert err.endswith(
        "; the contract counts 3 deliveries, at least the 3 it needs, so settling pays the custodians and refunds "
        "nothing\n"
    )
    assert treasury.w3.eth.get_transaction_count(buyer.address) == nonce
    assert not access.purchase(purchase.id).settled


def test_a_garbage_share_is_named_and_the_key_rebuilt_from_good_ones(sale, tmp_path, monkeypatch, capsys):
    treasury, custodians, shares, version_key = sale.treasury, sale.custodians, sale.shares, sale.key
    buyer, key = fresh_account(treasury, 5_000)
    private, public = buyer_keypair()
    access = WeightAccessClient(buyer)
    purchase = access.buy(VERSION, public, 1_000 * WEI_PER_DSH, access.deadline_in(20))
    # Custodian 0 seals custodian 1's share (it opens, but fails custodian 0's commitment); custodian 4 sends bytes
    # that do not open at all.
    wrong = seal_share(shares[1], public, version=VERSION)
    for index, ciphertext in ((0, wrong), (4, os.urandom(len(wrong)))):
        custodian = custodians[index]
        custodian.transact(custodian.contract("WeightAccess").functions.deliverShare(purchase.id, index, ciphertext))
    assert deliver_from(sale, [1, 2], purchase.id) == ["delivered", "delivered"]
    with pytest.raises(KeyRejected) as refused:
        access.collect_key(purchase, private, timeout=0)
    message = str(refused.value)
    assert message.startswith(f"purchase {purchase.id}: 2 verified key shares of the 3 needed after waiting 0 s")
    assert f"custodian 0 ({custodians[0].address}) delivered a share that does not match its on-chain commitment" in (
        message
    )
    assert f"custodian 4 ({custodians[4].address}) delivered a share that is refused: the key share does not open" in (
        message
    )

    assert deliver_from(sale, [3], purchase.id) == ["delivered"]
    (tmp_path / "buyer.key").write_text(private.hex())
    monkeypatch.setenv(PRIVATE_KEY_ENV, key)
    key_out = tmp_path / "version.key"
    argv = ["weights", "buy", str(VERSION), "--purchase", str(purchase.id), "--key-out", str(key_out)]
    assert main(argv + ["--buyer-key", str(tmp_path / "buyer.key"), "--rpc", treasury.rpc_url]) == 0
    out, err = capsys.readouterr()
    assert key_out.read_text().strip() == version_key.hex()
    assert "key rebuilt from the shares of custodians 1, 2, 3" in out
    assert f"skipped: custodian 0 ({custodians[0].address})" in err


def test_a_custodian_never_delivers_a_share_that_is_not_its_own(sale):
    custodians, shares = sale.custodians, sale.shares
    (step,) = deliver_shares(custodians[0], {VERSION: shares[1]})
    assert (step.purchase, step.version, step.index, step.tx_hash) == (None, VERSION, None, None)
    assert step.action.startswith("failed: the share of version") and step.action.endswith(
        "does not match its on-chain commitment: refusing to deliver it"
    )


def test_one_failing_version_does_not_stop_the_pass(sale, tmp_path, monkeypatch, capsys):
    """`deepshard weights deliver` over kept shares where version 1 has no custody and version 7's file is not a
    share: each is one failed line, and version 2's purchase is still delivered."""
    treasury, custodian, shares = sale.treasury, sale.custodians[0], sale.shares
    buyer, _ = fresh_account(treasury, 5_000)
    access = WeightAccessClient(buyer)
    purchase = access.buy(VERSION, buyer_keypair()[1], 1_000 * WEI_PER_DSH, access.deadline_in(20))
    for version in (1, VERSION):
        save_share(custodian, version, shares[0], tmp_path)
    bad = share_path(tmp_path, treasury.chain_id, access.contract.address, 7, custodian.address)
    bad.write_text("not hex\n")
    monkeypatch.setenv(PRIVATE_KEY_ENV, sale.keys[0])
    assert main(["weights", "deliver", "--custody-dir", str(tmp_path), "--rpc", treasury.rpc_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("version 7: failed: the key share ") and "hex digits" in lines[0]
    assert lines[1] == "version 1: failed: version 1 has no key custody in WeightAccess"
    assert f"purchase {purchase.id} (version {VERSION}, share 0): delivered tx 0x" in "\n".join(lines[2:])


def test_a_buyer_key_no_custodian_can_seal_to_is_answered_not_slashed_and_not_refunded(sale):
    """The all-zero key is 32 bytes (the contract takes it) but a low-order X25519 point: every custodian sends
    the refusal marker instead of staying silent, the buyer's collect names each, and settling (at once: everyone
    delivered) slashes no custodian and refunds nothing."""
    treasury = sale.treasury
    buyer, _ = fresh_account(treasury, 5_000)
    access = WeightAccessClient(buyer)
    purchase = access.buy(VERSION, bytes(32), 1_000 * WEI_PER_DSH, access.deadline_in(20))
    refused = "refused (unusable buyer key)"
    assert deliver_from(sale, range(CUSTODIANS), purchase.id) == [refused] * CUSTODIANS
    with pytest.raises(KeyRejected) as rejected:
        access.collect_key(purchase, buyer_keypair()[0], timeout=0)
    message = str(rejected.value)
    assert message.startswith(f"purchase {purchase.id}: 0 verified key shares of the {THRESHOLD} needed")
    for index, custodian in enumerate(sale.custodians):
        assert (
            f"custodian {index} ({custodian.address}) refused to seal its share: the buyer key is not a usable "
            "X25519 public key"
        ) in message
    bonds = [int(access.contract.functions.bondLeft(VERSION, i).call()) for i in range(CUSTODIANS)]
    receipt = treasury.transact(access.contract.functions.settle(purchase.id))
    contract = access.contract
    assert contract.events.CustodianSlashed().process_receipt(receipt, errors=DISCARD) == ()
    (settled,) = contract.events.Settled().process_receipt(receipt, errors=DISCARD)
    assert settled["args"]["delivered"] == CUSTODIANS and not settled["args"]["refunded"]
    assert [int(contract.functions.bondLeft(VERSION, i).call()) for i in range(CUSTODIANS)] == bonds
    assert dsh_of(treasury, buyer.address) == 4_000 * WEI_PER_DSH


def test_the_buy_deadline_is_not_behind_the_wall_clock(sale, monkeypatch):
    """A chain that mines on demand stamps the next block with the wall clock: a deadline from an old latest
    block's timestamp alone would already be past. The wall clock here is an hour after the latest block."""
    import workers.shards.access as access_module

    access = WeightAccessClient(sale.treasury)
    latest = int(sale.treasury.w3.eth.get_block("latest")["timestamp"])
    clock = SimpleNamespace(time=lambda: latest + 3_600.0, monotonic=time.monotonic, sleep=time.sleep)
    monkeypatch.setattr(access_module, "time", clock)
    assert access.deadline_in(5) >= latest + 3_600 + 5


def test_the_publish_command_puts_a_version_on_sale_and_custodians_receive_their_shares(
    sale, tiny, tmp_path, monkeypatch, capsys
):
    """`deepshard weights custodian-key`, `publish` (on the folder `deepshard model get` writes) and `receive`."""
    from workers.node.model_cli import write_version_folder

    treasury = sale.treasury
    models = treasury.contract("ModelRegistry")
    treasury.transact(models.functions.registerVersion(VERSION, 2, cid_to_chain(GENESIS_MODEL_CID), 0))
    version = VERSION + 1
    folder = tmp_path / "weights"
    write_version_folder(tiny, {"version": version, "base_model": "tiny", "weights_hash": tiny.weights_hash}, folder)
    monkeypatch.setenv(STORE_DIR_ENV, str(tmp_path / "store"))
    lines = []
    for index, key in enumerate(sale.keys):
        monkeypatch.setenv(PRIVATE_KEY_ENV, key)
        assert main(["weights", "custodian-key", "--key", str(tmp_path / f"custodian-{index}.key")]) == 0
        lines.append(capsys.readouterr().out)
    custodians = tmp_path / "custodians.txt"
    custodians.write_text("# address X25519-public\n" + "".join(lines))

    monkeypatch.setenv(PRIVATE_KEY_ENV, dev_account(0).key.hex())
    argv = ["weights", "publish", str(version), "--weights", str(folder), "--custodians", str(custodians)]
    argv += ["--threshold", "2", "--key-dir", str(tmp_path / "keys"), "--handover-dir", str(tmp_path / "handover")]
    argv += ["--rpc", treasury.rpc_url]
    assert main([*argv[:2], "9", *argv[3:]]) == 1
    assert capsys.readouterr().err == f"error: {folder} is not version 9's folder (see its deepshard-version.json)\n"
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.endswith(
        f"version {version}: on sale, key custody 2-of-{CUSTODIANS} published\nversion {version}: complete\n"
    )
    assert main(argv) == 0  # a re-run: nothing left to do
    assert capsys.readouterr().out == f"version {version}: complete\n"

    handover = handover_path(
        tmp_path / "handover", treasury.chain_id, treasury.contract("WeightAccess").address, version
    )
    commitments = WeightAccessClient(treasury).custody(version).commitments
    for index, key in enumerate(sale.keys):
        monkeypatch.setenv(PRIVATE_KEY_ENV, key)
        argv = ["weights", "receive", str(handover), "--key", str(tmp_path / f"custodian-{index}.key")]
        assert main([*argv, "--custody-dir", str(tmp_path / "custody"), "--rpc", treasury.rpc_url]) == 0
        assert "kept this account's key share in " in capsys.readouterr().out
        share = stored_shares(sale.custodians[index], tmp_path / "custody")[version]
        assert keccak(share) == commitments[index]
    # A custodian key that is not the one the share was sealed to opens nothing and keeps nothing.
    monkeypatch.setenv(PRIVATE_KEY_ENV, sale.keys[0])
    argv = ["weights", "receive", str(handover), "--key", str(tmp_path / "custodian-1.key")]
    assert main([*argv, "--custody-dir", str(tmp_path / "other"), "--rpc", treasury.rpc_url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not open" in err and "Traceback" not in err
    assert not (tmp_path / "other").exists()


def test_a_refused_custody_is_one_line_and_the_next_step_publishes_the_same_shares(sale, sharded, tmp_path):
    """Custodians without STORAGE stake: `WeightAccess.publish` reverts after the hand-over file is written;
    once they stake, the next step publishes exactly the shares in that file (no new split, no new key)."""
    treasury = sale.treasury
    models = treasury.contract("ModelRegistry")
    treasury.transact(models.functions.registerVersion(1, 3, cid_to_chain(GENESIS_MODEL_CID), 0))
    version = int(models.functions.latestVersion().call())
    custodians = [fresh_account(treasury, 500)[0] for _ in range(3)]
    keys = [buyer_keypair() for _ in custodians]
    named = [CustodianKey(c.address, public) for c, (_, public) in zip(custodians, keys, strict=True)]
    publisher = Publisher(treasury, EmbeddedStore(tmp_path / "store"), tmp_path / "keys", tmp_path / "handover")
    with pytest.raises(PublishError) as refused:
        publisher.step(version, sharded, base_model="tiny", custodians=named, threshold=2)
    message = str(refused.value)
    assert message.startswith(f"version {version}: WeightAccess.publish refused: ") and "\n" not in message
    assert "ExceedsUnlocked" in message
    handover = handover_path(
        tmp_path / "handover", treasury.chain_id, treasury.contract("WeightAccess").address, version
    )
    written = handover.read_bytes()
    for client in custodians:
        stake(client, "STORAGE", "500")  # the STORAGE minimum, above the custodian bond
    report = publisher.step(version, sharded, base_model="tiny", custodians=named, threshold=2)
    assert report.done and report.lines == [f"version {version}: on sale, key custody 2-of-3 published"]
    assert handover.read_bytes() == written
    custody = WeightAccessClient(treasury).custody(version)
    assert custody.commitments == read_handover(handover, version).commitments
    key = key_path(tmp_path / "keys", treasury.chain_id, models.address, version).read_text().strip()
    assert custody.key_hash == keccak(bytes.fromhex(key))
