"""`deepshard weights`: a version's price, buying its key, a custodian's deliveries, and the buyer's assembly.

    deepshard weights price VERSION                          the price now (DSH) and the value snapshot behind it
    deepshard weights buy VERSION --max-price DSH [--deadline-blocks N] [--key-out FILE] [--buyer-key FILE]
                                  [--timeout S] [--purchase ID]
    deepshard weights deliver [--custody-dir DIR]            a custodian: deliver kept shares to open purchases
    deepshard weights settle PURCHASE                        anyone, after the delivery window: refund or pay out
    deepshard weights fetch VERSION -o DIR (--key-file FILE | --buyer-key FILE --share FILE...) [--rpc URL]
    deepshard weights publish VERSION --weights DIR --custodians FILE --threshold K [--key-dir DIR]
                                  [--handover-dir DIR] [--layers-per-shard N]   the publisher's step (and repairs)
    deepshard weights custodian-key [--key FILE]             a custodian: its X25519 public key, for the publisher
    deepshard weights receive HANDOVER [--key FILE] [--custody-dir DIR]   a custodian: take its sealed key share

`publish` (the account holding PUBLISHER_ROLE) runs `workers.shards.publisher.Publisher.step` once on the version
folder `deepshard model get VERSION --out DIR` wrote (its `deepshard-version.json` must name VERSION and the
folder's weights must hash to the weights hash it records): it prints one line per action and `more to do` while a
call's bounded work leaves some; run it again (a re-run is also the repair pass). --custodians is a file of lines
`0xADDRESS 0xX25519PUBLIC` (what `custodian-key` prints; `#` starts a comment). `receive` opens the share sealed to
this account in the publisher's hand-over file, checks it against its on-chain commitment and keeps it (mode 0600)
where `deliver` finds it.

`buy` reads (or creates, mode 0600) the buyer's X25519 key pair at --buyer-key (default <data dir>/deepshard/
buyer.key), buys through `WeightAccess.buy` (a price above --max-price is refused by the contract before anything
is sent), waits for k key shares that open and match their on-chain commitments, rebuilds the key, checks it
against the on-chain key hash and writes it to --key-out (default version-<VERSION>.key), the file `fetch
--key-file` takes. `--purchase ID` collects the shares of an earlier purchase instead of buying again. Once the
delivery window is over with fewer than k verified shares, `buy` settles the purchase itself when the contract
counts fewer than k deliveries: `WeightAccess.settle` is open to anyone after the window and the refund is then
the only outcome left, so the buyer gets the escrow back without a second command (with k or more deliveries
that do not verify the contract would pay the custodians instead: `buy` says so and settles nothing). The
signing key comes from the environment like every command's (workers.chain.accounts); amounts print in DSH.

`settle` settles a purchase once its delivery window is over (or every custodian delivered): silent custodians
are slashed, then the buyer is refunded (fewer than k deliveries) or the fee is split (burned, the version's
storage pot, each custodian that delivered, the treasury). Anyone may send it; it prints who got what, and for a
purchase settled already, who got what then.

`fetch` reads VERSION's shard manifest and weights hash from what its publisher recorded in the ModelRegistry,
checks the key against the key hash WeightAccess publishes, fetches every shard from any holder, verifies, decrypts
and assembles it, checks the weights hash, and writes a folder `deepshard serve --weights DIR` serves
(`workers.shards.assembly.assemble_version`). The key comes from a file, never from the command line (which other
users can read): either the version key (64 hex digits), or the buyer's X25519 private key (64 hex digits) and at
least k sealed shares (162 hex digits each, as custodians deliver them), opened, combined and checked against the
on-chain key hash. Replicas come from the content store (an IPFS node with --ipfs-api or $DEEPSHARD_IPFS_API, else
the embedded store): on IPFS a CID is the same whichever node pins it. Expected failures print one line, `error:
...`, on stderr and exit 1; nothing is written at DIR on failure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from workers.chain.endpoint import add_rpc_option
from workers.safejson import JsonRejected
from workers.storage import StorageError, open_store

from .crypto import KEY_BYTES, SEALED_SHARE_BYTES, X25519_KEY_BYTES, combine_shares, open_share
from .errors import KeyRejected, ShardError
from .keyfiles import buyer_key_pair, data_dir, read_hex_secret, read_limited

if TYPE_CHECKING:  # the publisher imports torch (layout): loaded only by `publish` and `receive`
    from .access import Purchase, WeightAccessClient
    from .publisher import CustodianKey

HELP = "a version's weights: price, buy its key, deliver key shares, fetch and assemble"
#: Blocks a purchase may wait in the mempool before the contract refuses it (`buy`'s deadline).
DEFAULT_DEADLINE_BLOCKS = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the `weights` actions (module docstring) to the `weights` parser."""
    actions = parser.add_subparsers(dest="weights_action", metavar="ACTION", required=True)
    price = actions.add_parser(
        "price",
        help="a version's price now, in DSH",
        description="Show a version's price in WeightAccess and the value snapshot it was computed from.",
    )
    price.add_argument("version", metavar="VERSION", type=int, help="the model version")
    add_rpc_option(price)
    price.set_defaults(weights_handler=_price)
    buy = actions.add_parser(
        "buy",
        help="buy a version's key and rebuild it from the custodians' shares",
        description="Buy a version's key (at most --max-price DSH), wait for k verified key shares, rebuild the "
        "key, check it against the on-chain key hash and write it where `weights fetch --key-file` reads it.",
    )
    buy.add_argument("version", metavar="VERSION", type=int, help="the model version")
    buy.add_argument("--max-price", metavar="DSH", help="the most to pay, a decimal such as 1,000 or 12.5")
    buy.add_argument(
        "--deadline-blocks",
        metavar="N",
        type=int,
        default=DEFAULT_DEADLINE_BLOCKS,
        help=f"refuse the purchase if it is not mined within about N blocks (default {DEFAULT_DEADLINE_BLOCKS})",
    )
    buy.add_argument("--key-out", metavar="FILE", help="where to write the version key (default version-VERSION.key)")
    buy.add_argument("--buyer-key", metavar="FILE", help="the buyer's X25519 private key, created if missing")
    buy.add_argument("--timeout", metavar="S", type=float, help="stop waiting for shares after S seconds")
    buy.add_argument("--purchase", metavar="ID", type=int, help="collect an earlier purchase's shares, buy nothing")
    add_rpc_option(buy)
    buy.set_defaults(weights_handler=_buy)
    deliver = actions.add_parser(
        "deliver",
        help="a custodian: deliver its kept key shares to every open purchase",
        description="Seal this account's kept key share to each open purchase's buyer key and send deliverShare, "
        "once per purchase.",
    )
    deliver.add_argument(
        "--custody-dir", metavar="DIR", help="where the shares are kept (default $DEEPSHARD_CUSTODY_DIR)"
    )
    add_rpc_option(deliver)
    deliver.set_defaults(weights_handler=_deliver)
    settle = actions.add_parser(
        "settle",
        help="settle a purchase after its delivery window: refund the buyer or pay the custodians",
        description="Settle PURCHASE (anyone may, once its delivery window is over) and print who got what: the "
        "buyer's refund or the fee split, the custodians slashed; for a purchase settled already, the same.",
    )
    settle.add_argument("purchase", metavar="PURCHASE", type=int, help="the purchase id `buy` printed")
    add_rpc_option(settle)
    settle.set_defaults(weights_handler=_settle)
    fetch = actions.add_parser(
        "fetch",
        help="assemble a bought version into a folder `deepshard serve --weights` serves",
        description="Read VERSION's shard manifest from the registry, fetch every shard from any holder, verify, "
        "decrypt and write a loadable model folder with its version record.",
    )
    fetch.add_argument("version", metavar="VERSION", type=int, help="the model version")
    fetch.add_argument("-o", "--output", required=True, metavar="DIR", help="the folder to create")
    fetch.add_argument("--key-file", metavar="FILE", help="the version key, 64 hex digits")
    fetch.add_argument("--buyer-key", metavar="FILE", help="the buyer's X25519 private key, 64 hex digits")
    fetch.add_argument("--share", action="append", default=[], metavar="FILE", help="a sealed key share (repeat)")
    fetch.add_argument("--ipfs-api", metavar="ADDR", default=None, help="IPFS RPC API (default: $DEEPSHARD_IPFS_API)")
    fetch.add_argument("--store-dir", metavar="DIR", default=None, help="embedded store directory")
    add_rpc_option(fetch)
    fetch.set_defaults(weights_handler=_fetch)
    publish = actions.add_parser(
        "publish",
        help="the publisher: shard, seal, assign, record and put a registered version on sale (and repair)",
        description="One bounded pass of the publisher's step for VERSION (workers.shards.publisher); run it again "
        "until it says the version is complete, and later to repair shards below R.",
    )
    publish.add_argument("version", metavar="VERSION", type=int, help="the model version")
    publish.add_argument("--weights", required=True, metavar="DIR", help="the folder `deepshard model get` wrote")
    publish.add_argument("--custodians", metavar="FILE", help="lines `0xADDRESS 0xX25519PUBLIC`, in share order")
    publish.add_argument("--threshold", type=int, default=0, metavar="K", help="shares needed to rebuild the key")
    publish.add_argument("--key-dir", metavar="DIR", help="where version keys are kept (default <data dir>/publisher)")
    publish.add_argument("--handover-dir", metavar="DIR", help="where sealed shares are written (default <data dir>)")
    publish.add_argument(
        "--layers-per-shard", type=int, metavar="N", help="decoder layers per shard (default 4, the layout's)"
    )
    add_rpc_option(publish)
    publish.set_defaults(weights_handler=_publish)
    custodian_key = actions.add_parser(
        "custodian-key",
        help="a custodian: print its X25519 public key line for the publisher's --custodians file",
        description="Read (or create, mode 0600) this custodian's X25519 key pair and print `ADDRESS 0xPUBLIC`.",
    )
    custodian_key.add_argument("--key", metavar="FILE", help="the X25519 private key (default <data dir>)")
    custodian_key.set_defaults(weights_handler=_custodian_key)
    receive = actions.add_parser(
        "receive",
        help="a custodian: take its key share from the publisher's hand-over file",
        description="Open this account's sealed share, check its on-chain commitment and keep it (mode 0600).",
    )
    receive.add_argument("handover", metavar="HANDOVER", help="the publisher's hand-over file (JSON)")
    receive.add_argument("--key", metavar="FILE", help="the X25519 private key (default <data dir>)")
    receive.add_argument("--custody-dir", metavar="DIR", help="where shares are kept (default $DEEPSHARD_CUSTODY_DIR)")
    add_rpc_option(receive)
    receive.set_defaults(weights_handler=_receive)


def run(args: argparse.Namespace) -> int:
    """Runs the chosen action; expected failures print `error: ...` on stderr and return 1."""
    try:
        return args.weights_handler(args)
    # JsonRejected: any JSON file a command reads (a hand-over, a version description); its message names it.
    except (ShardError, StorageError, JsonRejected) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _fetch(args: argparse.Namespace) -> int:
    from ..chain import registry
    from .access import WeightAccessClient

    if bool(args.key_file) == bool(args.buyer_key or args.share):
        raise ShardError("give either --key-file, or --buyer-key with the --share files")
    if not args.key_file and (not args.buyer_key or len(args.share) < 2):
        raise ShardError("--buyer-key and at least two --share files are needed to rebuild the key")
    output = Path(args.output)
    if output.exists():
        raise ShardError(f"{output} already exists; fetch writes a new folder")
    chain = _chain(args, with_signer=False)
    registry.check_registered(chain.contract("ModelRegistry"), args.version)
    custody = None  # a key file is checked against the custody after the manifest (`assemble_version` reads it)
    if args.key_file:
        key = read_hex_secret(args.key_file, "key file", KEY_BYTES)
    else:
        private = read_hex_secret(args.buyer_key, "buyer key", X25519_KEY_BYTES)
        sealed = [read_hex_secret(path, "sealed share", SEALED_SHARE_BYTES) for path in args.share]
        shares = [open_share(share, private, version=args.version) for share in sealed]
        custody = WeightAccessClient(chain).custody(args.version)  # read once, passed on to the assembly
        key = combine_shares(shares, custody.key_hash)
    from .assembly import assemble_version  # torch: imported only when weights are assembled

    with open_store(api=args.ipfs_api, store_dir=args.store_dir) as store:
        result = assemble_version(chain, store, args.version, key, output, custody=custody)
    for fault in result.faults:
        print(f"skipped: {fault}", file=sys.stderr)
    print(f"version {args.version}: {len(result.served_by)} shards verified, weights {result.weights_hash}")
    print(f"wrote {result.folder} (deepshard serve --weights {result.folder})")
    return 0


def _chain(args: argparse.Namespace, *, with_signer: bool):
    from ..chain import ChainClient, load_signer

    # The key is loaded before connecting: a missing key is reported without touching the network.
    return ChainClient(args.rpc, load_signer() if with_signer else None)


def _price(args: argparse.Namespace) -> int:
    from ..chain import format_dsh
    from .access import WeightAccessClient

    quote = WeightAccessClient(_chain(args, with_signer=False)).quote(args.version)
    state = "sale closed" if quote.closed else "on sale"
    print(f"version {quote.version}: {format_dsh(quote.price, grouped=True)} DSH ({state})")
    print(
        f"value created when published (block {quote.published_block}): "
        f"{format_dsh(quote.value_snapshot, grouped=True)} DSH"
    )
    return 0


def _buy(args: argparse.Namespace) -> int:
    from ..chain import InvalidRequest, format_dsh, parse_dsh
    from .access import WeightAccessClient
    from .keyfiles import buyer_key_pair, default_buyer_key_path, write_hex_secret

    # Everything that can be refused here is, before the key is loaded or anything is sent.
    if args.purchase is None and args.max_price is None:
        raise InvalidRequest("--max-price is needed to buy (or --purchase ID to collect an earlier purchase)")
    max_price = None if args.max_price is None else parse_dsh(args.max_price)
    key_out = Path(args.key_out or f"version-{args.version}.key")
    if key_out.exists():
        raise ShardError(f"the key file {key_out} already exists: choose another --key-out or move it away")
    key_path = Path(args.buyer_key) if args.buyer_key else default_buyer_key_path()
    private, public, created = buyer_key_pair(key_path)
    print(f"buyer key {key_path} ({'created' if created else 'read'}), public 0x{public.hex()}")
    access = WeightAccessClient(_chain(args, with_signer=True))
    if max_price is not None and args.purchase is None:
        quote = access.quote(args.version)
        print(f"version {args.version}: {format_dsh(quote.price, grouped=True)} DSH")
        purchase = access.buy(args.version, public, max_price, access.deadline_in(args.deadline_blocks))
        print(
            f"bought: purchase {purchase.id}, {format_dsh(purchase.price, grouped=True)} DSH escrowed, tx "
            f"{purchase.tx_hash}"
        )
    else:
        purchase = access.purchase(args.purchase)
        if purchase.version != args.version or purchase.buyer_key != public:
            raise InvalidRequest(
                f"purchase {purchase.id} is of version {purchase.version} for buyer key 0x{purchase.buyer_key.hex()}, "
                f"not of version {args.version} for this buyer key"
            )
    threshold = access.custody(args.version).threshold
    print(f"waiting for {threshold} key shares (deliveries until block {purchase.deliver_by})", flush=True)
    try:
        recovered = access.collect_key(purchase, private, timeout=args.timeout)
    except KeyRejected as exc:
        if access.latest_block() >= purchase.deliver_by:
            raise KeyRejected(f"{exc}; {_settle_after_window(access, purchase, threshold)}") from None
        raise KeyRejected(
            f"{exc}; collect them later with `deepshard weights buy {args.version} --purchase {purchase.id}`"
        ) from None
    for fault in recovered.faults:
        print(f"skipped: {fault}", file=sys.stderr)
    write_hex_secret(key_out, recovered.key, "key file")
    shares = ", ".join(str(i) for i in recovered.indices)
    print(f"key rebuilt from the shares of custodians {shares}; keccak256 matches the on-chain key hash")
    print(f"wrote {key_out} (deepshard weights fetch {args.version} --key-file {key_out} -o DIR)")
    return 0


def _settle_after_window(access: WeightAccessClient, purchase: Purchase, threshold: int) -> str:
    """What became of a purchase whose window closed without k verified shares: settled for the refund when the
    contract counts fewer than k deliveries (anyone may settle now, and nothing else can happen to it), else why
    settling refunds nothing."""
    from ..chain import ChainError, format_dsh

    delivered = access.delivered_mask(purchase.id).bit_count()
    if delivered >= threshold:
        return (
            f"the contract counts {delivered} deliveries, at least the {threshold} it needs, so settling pays the "
            "custodians and refunds nothing"
        )
    price = f"{format_dsh(purchase.price, grouped=True)} DSH"
    try:
        settlement = access.settle(purchase)
    except ChainError as exc:
        return f"`deepshard weights settle {purchase.id}` refunds the {price} escrowed ({exc})"
    # Fewer than k deliveries, none possible any more: the settlement is the refund.
    return f"settled in tx {settlement.tx_hash}: the {price} escrowed was refunded to {settlement.buyer}"


def _settle(args: argparse.Namespace) -> int:
    from .access import WeightAccessClient

    access = WeightAccessClient(_chain(args, with_signer=True))
    purchase = access.purchase(args.purchase)
    settlement = access.settle(purchase)
    lines = settlement.lines()
    if purchase.settled:
        lines[0] = f"{lines[0]} (settled already)"
    for line in lines:
        print(line)
    return 0


def _deliver(args: argparse.Namespace) -> int:
    from .access import deliver_shares, stored_shares

    chain = _chain(args, with_signer=True)
    unreadable: list[str] = []
    shares = stored_shares(chain, args.custody_dir, faults=unreadable)
    for fault in unreadable:
        print(fault)
    if not shares:
        if not unreadable:
            print(f"{chain.address} keeps no key shares for this deployment")
        return 0
    for step in deliver_shares(chain, shares):
        print(step.line())
    return 0


def default_custodian_key_path() -> Path:
    """<data dir>/custodian.key: a custodian's X25519 private key (hex, mode 0600)."""
    return data_dir() / "custodian.key"


def read_custodians(path: str | Path) -> list[CustodianKey]:
    """The `--custodians` file: one `0xADDRESS 0xX25519PUBLIC` per line (blank lines and `#` comments skipped),
    in share order. ShardError naming the line."""
    from eth_utils import is_hex_address, to_checksum_address

    from .publisher import CustodianKey

    text = read_limited(path, "custodians file", 64 * 1024).decode("utf-8", errors="replace")
    custodians = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        public = fields[1].removeprefix("0x") if len(fields) == 2 else ""
        if len(fields) != 2 or not is_hex_address(fields[0]) or len(public) != 2 * X25519_KEY_BYTES:
            raise ShardError(f"{path} line {number}: expected `0xADDRESS 0xX25519PUBLIC` (32 bytes of hex)")
        try:
            key = bytes.fromhex(public)
        except ValueError:
            raise ShardError(f"{path} line {number}: the public key is not hex") from None
        custodians.append(CustodianKey(to_checksum_address(fields[0]), key))
    return custodians


def _publish(args: argparse.Namespace) -> int:
    from ..ml.models import VERSION_FILE
    from ..safejson import parse_json
    from .layout import DEFAULT_LAYERS_PER_SHARD, shard_version
    from .publisher import Publisher

    folder = Path(args.weights)
    path = folder / VERSION_FILE
    description = parse_json(read_limited(path, "version description", 1 << 20), what=str(path))
    if not isinstance(description, dict) or description.get("version") != args.version:
        raise ShardError(f"{folder} is not version {args.version}'s folder (see its {VERSION_FILE})")
    custodians = read_custodians(args.custodians) if args.custodians else []
    chain = _chain(args, with_signer=True)
    sharded = shard_version(folder, layers_per_shard=args.layers_per_shard or DEFAULT_LAYERS_PER_SHARD)
    if sharded.weights_hash != description.get("weights_hash"):
        raise ShardError(f"the weights in {folder} do not hash to the weights hash its {VERSION_FILE} records")
    root = data_dir() / "publisher"
    with open_store() as store:
        publisher = Publisher(chain, store, args.key_dir or root / "keys", args.handover_dir or root / "handover")
        report = publisher.step(
            args.version,
            sharded,
            base_model=str(description.get("base_model", "")),
            custodians=custodians,
            threshold=args.threshold,
        )
    for line in report.lines:
        print(line)
    print(f"version {args.version}: {'complete' if report.done else 'more to do: run the command again'}")
    return 0


def _custodian_key(args: argparse.Namespace) -> int:
    from ..chain import load_signer

    address = load_signer().address
    _, public, created = buyer_key_pair(args.key or default_custodian_key_path())
    print(f"{address} 0x{public.hex()}")
    if created:
        print(f"created {args.key or default_custodian_key_path()} (mode 0600)", file=sys.stderr)
    return 0


def _receive(args: argparse.Namespace) -> int:
    from .publisher import receive_share

    private = read_hex_secret(args.key or default_custodian_key_path(), "custodian key", X25519_KEY_BYTES)
    chain = _chain(args, with_signer=True)
    kept = receive_share(chain, args.handover, private, args.custody_dir)
    print(f"kept this account's key share in {kept} (deepshard weights deliver sends it to buyers)")
    return 0
