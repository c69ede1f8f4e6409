"""The chain side of a version's key: a buyer buys it from `WeightAccess` and rebuilds it from the custodians'
deliveries; a custodian delivers its share to every buyer (contracts/custody/README.md, "A version's life" 5).

    access = WeightAccessClient(chain)
    access.quote(version)                                   # price (wei) and the value snapshot it came from
    purchase = access.buy(version, buyer_public, max_price, deadline)
    recovered = access.collect_key(purchase, buyer_private) # waits for k verified shares, checks keccak(key)
    deliver_shares(custodian_chain, {version: share})       # a custodian: every open purchase, once each

The contract decides every rule (the price, `maxPrice`, the deadline, who may deliver, once per purchase, the
delivery window); this module asks it before sending, so a refused purchase costs nothing (no approve, no buy).
What the contract cannot check, the buyer does: each delivered share must open with its X25519 key and hash to
its custodian's commitment `keccak256(share)` recorded at publication, and the k shares must rebuild a key whose
keccak256 is the custody's key hash (`workers.shards.crypto`). A share failing either is named (its index and
custodian) and left out; k good ones of the n are enough.

Secrets on disk (the buyer's X25519 private key, a custodian's shares, a bought key) are hex files written once,
mode 0600 in a 0700 folder (`workers.chain.writeonce`), never printed. Defaults live under `<data dir>/deepshard`
(`$XDG_DATA_HOME`, else ~/.local/share): `buyer.key` and `custody/<chain id>/<WeightAccess>/<version>-<account>
.share`, or `$DEEPSHARD_CUSTODY_DIR` for the latter.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from eth_utils import to_checksum_address
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.logs import DISCARD

from ..chain.client import ChainClient
from ..chain.errors import ChainError, InvalidRequest, TransactionReverted
from ..chain.module import event_logs, raced, settle_inflight, struct_of, tx_hash
from ..chain.revert import decode_revert, revert_data_from_exception
from ..chain.units import format_dsh
from .crypto import SHARE_BYTES, X25519_KEY_BYTES, combine_shares, open_share, seal_share, share_commitment
from .errors import KeyRejected, ShardError, ShareRejected
from .keyfiles import data_dir, read_hex_secret, write_hex_secret

CONTRACT = "WeightAccess"
#: Seconds between looks at the chain while a buyer waits for deliveries.
POLL_INTERVAL = 0.5
#: Blocks measured to turn a deadline in blocks into the contract's deadline in seconds.
BLOCK_TIME_SAMPLE = 256
CUSTODY_DIR_ENV = "DEEPSHARD_CUSTODY_DIR"
#: What a custodian delivers instead of a sealed share when the buyer's 32-byte key is no usable X25519 public key
#: (a low-order point, `seal_share` refuses it): a delivery, so the custodian is not slashed for a key the buyer
#: chose, and the purchase is not refunded. Any 1..1024 bytes pass `deliverShare`; one byte is the cheapest.
REFUSED_SHARE = b"\x00"
_PRICE_ABOVE_MAX = re.compile(r"PriceAboveMax\(price=(\d+), maxPrice=(\d+)\)")


# ---------------------------------------------------------------- the contract's records


@dataclass(frozen=True)
class Quote:
    """A version on sale: its price now and the value created when it was published (wei), the block it was
    published in, and whether its sale is closed."""

    version: int
    price: int
    value_snapshot: int
    published_block: int
    closed: bool


@dataclass(frozen=True)
class Custody:
    """A version's key custody: keccak256 of the key, k, the n custodians and keccak256 of each one's share."""

    version: int
    key_hash: bytes
    threshold: int
    custodians: tuple[str, ...]
    commitments: tuple[bytes, ...]

    def label(self, index: int) -> str:
        """'custodian 2 (0xAbc...)'."""
        return f"custodian {index} ({self.custodians[index]})"


@dataclass(frozen=True)
class Purchase:
    """A purchase: price escrowed (wei), the last block for deliveries, the block it was bought in (deliveries
    come after it) and the X25519 public key the shares are sealed to."""

    id: int
    version: int
    buyer: str
    price: int
    deliver_by: int
    settled: bool
    block: int
    buyer_key: bytes
    tx_hash: str


@dataclass(frozen=True)
class RecoveredKey:
    """A version key rebuilt from the shares of the custodians at `indices`; `faults` names each delivered share
    that was left out and why."""

    key: bytes
    indices: tuple[int, ...]
    faults: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Settlement:
    """A settled purchase (`WeightAccess.settle`, its `Settled` event): how many custodians delivered, whether
    the buyer was refunded (fewer than k: the whole `price`, wei, back to `buyer`), and the fee split in wei:
    burned, to the version's storage pot (paid to its holders per audited epoch), to each custodian that delivered
    (`paid`: credited `per_custodian` each, to withdraw; empty on a refund) and to the treasury. `slashed`: each
    silent custodian and the wei of STORAGE stake it lost (the transaction's `CustodianSlashed` events)."""

    purchase: int
    version: int
    buyer: str
    price: int
    delivered: int
    refunded: bool
    burned: int
    storage_share: int
    per_custodian: int
    treasury_share: int
    paid: tuple[str, ...]
    slashed: tuple[tuple[str, int], ...]
    tx_hash: str

    def lines(self) -> list[str]:
        """Who got what, in DSH: 'purchase 4 (version 2): settled in tx 0x...', then the refund or the split, then
        one line per slashed custodian."""

        def dsh(wei: int) -> str:
            return f"{format_dsh(wei, grouped=True)} DSH"

        head = f"purchase {self.purchase} (version {self.version}): settled in tx {self.tx_hash}"
        if self.refunded:
            lines = [
                head,
                f"{self.delivered} custodians delivered, too few to rebuild the key: {dsh(self.price)} refunded to "
                f"the buyer {self.buyer}",
            ]
        else:
            lines = [
                head,
                f"{self.delivered} custodians delivered; of the {dsh(self.price)} paid: {dsh(self.burned)} burned, "
                f"{dsh(self.storage_share)} to version {self.version}'s storage pot, {dsh(self.treasury_share)} to "
                "the treasury",
                *(f"custodian {c}: {dsh(self.per_custodian)} credited (to withdraw)" for c in self.paid),
            ]
        lines += [f"custodian {c}: slashed {dsh(amount)} of STORAGE stake (no delivery)" for c, amount in self.slashed]
        return lines


@dataclass(frozen=True)
class DeliveryStep:
    """What a custodian did for one purchase: `delivered` (with its transaction), `refused (unusable buyer key)`
    (`REFUSED_SHARE` sent, with its transaction), or why it sent nothing: `already delivered`, `settled`, `window
    closed`, `failed: <why>` (an error of the chain or of the share, for this purchase only). For a version that
    failed as a whole (`failed: <why>`: no custody, not its custodian, a share that is not its own), `purchase`
    and `index` are None."""

    purchase: int | None
    version: int
    index: int | None
    action: str
    tx_hash: str | None = None

    def line(self) -> str:
        """'purchase 4 (version 2, share 1): delivered tx 0x...', or 'version 2: failed: ...'."""
        tx = f" tx {self.tx_hash}" if self.tx_hash else ""
        if self.purchase is None:
            return f"version {self.version}: {self.action}"
        return f"purchase {self.purchase} (version {self.version}, share {self.index}): {self.action}{tx}"


class WeightAccessClient:
    """One account (read-only without a signer) on the deployment's WeightAccess contract."""

    def __init__(self, chain: ChainClient):
        self.chain = chain
        self.contract = chain.contract(CONTRACT)

    def latest_block(self) -> int:
        return int(self.chain.w3.eth.block_number)

    # ------------------------------------------------------------ reads

    def quote(self, version: int) -> Quote:
        """The price of `version` now (`WeightAccess.price`). Raises InvalidRequest if it was never put on sale."""
        listing = struct_of(self.contract, "getListing", int(version))
        if listing["publishedBlock"] == 0:
            raise InvalidRequest(f"version {version} is not on sale: WeightAccess has no publication of it")
        return Quote(
            int(version),
            int(self.contract.functions.price(int(version)).call()),
            int(listing["valueSnapshot"]),
            int(listing["publishedBlock"]),
            bool(listing["closed"]),
        )

    def custody(self, version: int) -> Custody:
        """`version`'s key custody (`custodyOf`). Raises InvalidRequest if it has none."""
        record, custodians, commitments = self.contract.functions.custodyOf(int(version)).call()
        key_hash, threshold, size, _bond = record
        if size == 0:
            raise InvalidRequest(f"version {version} has no key custody in WeightAccess")
        return Custody(
            int(version),
            bytes(key_hash),
            int(threshold),
            tuple(to_checksum_address(c) for c in custodians),
            tuple(bytes(c) for c in commitments),
        )

    def purchase(self, purchase_id: int) -> Purchase:
        """Purchase `purchase_id` with its Purchased event (the buyer key). Raises InvalidRequest if unknown."""
        record = struct_of(self.contract, "getPurchase", int(purchase_id))
        if int(record["buyer"], 16) == 0:
            raise InvalidRequest(f"WeightAccess has no purchase {purchase_id}")
        listing = struct_of(self.contract, "getListing", int(record["version"]))
        found = event_logs(
            self.contract,
            "Purchased",
            {"purchase": int(purchase_id)},
            int(listing["publishedBlock"]),
            self.latest_block(),
            first=True,
        )
        if not found:
            raise InvalidRequest(f"the Purchased event of purchase {purchase_id} is not in the node's logs")
        return _purchase_from(found[0].args, record, found[0].block, found[0].tx_hash)

    def purchases(self, version: int | None, start: int, end: int) -> list[Purchase]:
        """The purchases of `version` (None: of every version) bought in blocks [start, end], oldest first, each
        with its current record."""
        only = None if version is None else {"version": int(version)}
        return [
            _purchase_from(
                log.args, struct_of(self.contract, "getPurchase", int(log.args["purchase"])), log.block, log.tx_hash
            )
            for log in event_logs(self.contract, "Purchased", only, start, end)
        ]

    # ------------------------------------------------------------ the buyer

    def deadline_in(self, blocks: int) -> int:
        """The contract's deadline (unix seconds) about `blocks` blocks from now: the later of the latest block's
        timestamp and the wall clock (a chain that mines on demand stamps the next block with the wall clock, however
        old its latest block), plus `blocks` times the mean block time of the last `BLOCK_TIME_SAMPLE` blocks (at
        least one second: a dev chain mines several blocks a second)."""
        if blocks < 1:
            raise InvalidRequest(f"the deadline must be at least 1 block away, not {blocks}")
        eth = self.chain.w3.eth
        latest = eth.get_block("latest")
        past = eth.get_block(max(int(latest["number"]) - BLOCK_TIME_SAMPLE, 0))
        spanned = int(latest["number"]) - int(past["number"])
        per_block = (int(latest["timestamp"]) - int(past["timestamp"])) / spanned if spanned else 1.0
        return max(int(latest["timestamp"]), int(time.time())) + int(blocks * max(per_block, 1.0))

    def buy(self, version: int, buyer_public_key: bytes, max_price: int, deadline: int) -> Purchase:
        """Buys `version`: the price (wei, at most `max_price`) is escrowed and the custodians asked to deliver
        their shares sealed to `buyer_public_key` (32-byte X25519) before `deadline` (unix seconds) passes.

        The purchase is first run as a call: a refusal by the contract (`PriceAboveMax`, `NotOnSale`,
        `DeadlinePassed`, `BuyerKeyLength`) raises InvalidRequest in one sentence before anything is sent, so
        nothing is approved or charged. Then an exact `approve` (when the allowance is short) and `buy`. Raises
        InvalidRequest for too few DSH, no ETH for gas or a custody whose threshold is below the 2 shares a key is
        rebuilt from (`combine_shares`), TransactionReverted if the chain moved in between."""
        if len(buyer_public_key) != X25519_KEY_BYTES:
            raise InvalidRequest(f"a buyer key is a {X25519_KEY_BYTES}-byte X25519 public key")
        account = to_checksum_address(self.chain.address)
        token = self.chain.contract("DeepshardToken")
        call = self.contract.functions.buy(int(version), buyer_public_key, int(max_price), int(deadline))
        try:
            call.call({"from": account})
        except (ContractLogicError, Web3RPCError) as exc:
            reason = decode_revert(revert_data_from_exception(exc)) or str(exc)
            # Without an allowance the call reaches the transfer: every rule of the contract passed.
            if not reason.startswith("ERC20InsufficientAllowance"):
                raise _refusal(version, reason) from None
        threshold = self.custody(version).threshold
        if threshold < 2:
            raise InvalidRequest(
                f"version {version}'s key custody has a threshold of {threshold}: a key is rebuilt from 2 shares at "
                "least, so nothing was bought or charged"
            )
        cost = self.quote(version).price
        balance = int(token.functions.balanceOf(account).call())
        if balance < cost:
            raise InvalidRequest(
                f"version {version} costs {format_dsh(cost, grouped=True)} DSH and {account} holds "
                f"{format_dsh(balance, grouped=True)} DSH: nothing was bought"
            )
        if self.chain.w3.eth.get_balance(account) == 0:
            raise InvalidRequest(f"{account} has no ETH to pay for gas")
        if token.functions.allowance(account, self.contract.address).call() < cost:
            # Exactly the price, not an unlimited allowance: WeightAccess never holds spare rights.
            self.chain.transact(token.functions.approve(self.contract.address, cost))
        try:
            receipt = self.chain.transact(call)
        except TransactionReverted as exc:
            raise _refusal(version, exc.reason or str(exc)) from None
        events = self.contract.events.Purchased().process_receipt(receipt, errors=DISCARD)
        args = dict(events[0]["args"])
        record = struct_of(self.contract, "getPurchase", int(args["purchase"]))
        return _purchase_from(args, record, int(receipt["blockNumber"]), tx_hash(receipt))

    def settle(self, purchase: Purchase) -> Settlement:
        """Settles `purchase` (as `buy` or `purchase` returned it; anyone may settle, once every custodian delivered
        or its window is over): silent custodians are slashed, then the fee is split or the buyer refunded.
        Idempotent: a purchase already settled (by anyone, even after `purchase` was read or between this call's
        checks and its transaction) is read back from its `Settled` event. Raises InvalidRequest before anything is
        sent when the contract refuses: while deliveries are open, naming the block settling opens at."""
        purchase_id = purchase.id
        if not purchase.settled:
            call = self.contract.functions.settle(purchase_id)
            try:
                call.call({"from": to_checksum_address(self.chain.address)})
            except (ContractLogicError, Web3RPCError) as exc:
                reason = decode_revert(revert_data_from_exception(exc)) or str(exc)
                if not self.is_settled(purchase_id):
                    if reason.startswith("DeliveryOpen"):
                        # The call runs at the latest block: settling opens once a block past deliverBy is mined.
                        raise InvalidRequest(
                            f"purchase {purchase_id} cannot be settled yet: its custodians may deliver until block "
                            f"{purchase.deliver_by}; anyone may settle it once block {purchase.deliver_by + 1} is "
                            f"mined (the latest is {self.latest_block()})"
                        ) from None
                    raise InvalidRequest(f"purchase {purchase_id} cannot be settled now: {reason}") from None
            else:
                raced(lambda: self.chain.transact(call), lambda: self.is_settled(purchase_id))
        found = event_logs(
            self.contract, "Settled", {"purchase": int(purchase_id)}, purchase.block, self.latest_block(), first=True
        )
        if not found:
            raise InvalidRequest(f"the Settled event of purchase {purchase_id} is not in the node's logs")
        args = found[0].args
        custodians = self.custody(purchase.version).custodians
        mask = self.delivered_mask(purchase_id)
        slashed = event_logs(
            self.contract, "CustodianSlashed", {"purchase": purchase_id}, found[0].block, found[0].block
        )
        return Settlement(
            int(purchase_id),
            purchase.version,
            purchase.buyer,
            purchase.price,
            int(args["delivered"]),
            bool(args["refunded"]),
            int(args["burned"]),
            int(args["storageShare"]),
            int(args["perCustodian"]),
            int(args["treasuryShare"]),
            () if args["refunded"] else tuple(c for i, c in enumerate(custodians) if mask >> i & 1),
            tuple((to_checksum_address(log.args["custodian"]), int(log.args["amount"])) for log in slashed),
            found[0].tx_hash,
        )

    def delivered_mask(self, purchase_id: int) -> int:
        """Bit i set: custodian i delivered to `purchase_id` (`deliveredMask`; the contract counts a delivery, it
        cannot check the share)."""
        return int(self.contract.functions.deliveredMask(int(purchase_id)).call())

    def is_settled(self, purchase_id: int) -> bool:
        """Whether `purchase_id` is settled now: its record's flag alone (the rest of a `Purchase` cannot change)."""
        return bool(struct_of(self.contract, "getPurchase", purchase_id)["settled"])

    def verified_shares(
        self, purchase: Purchase, custody: Custody, buyer_private_key: bytes, end: int
    ) -> tuple[dict[int, bytes], list[str]]:
        """The shares delivered for `purchase` up to block `end` that open with `buyer_private_key` and hash to
        their custodian's commitment, by custodian index, and one sentence per delivery left out (a custodian's
        `REFUSED_SHARE` among them: it could not seal to the buyer key)."""
        good: dict[int, bytes] = {}
        faults: list[str] = []
        for log in event_logs(self.contract, "ShareDelivered", {"purchase": purchase.id}, purchase.block, end):
            index = int(log.args["index"])
            who = custody.label(index)
            if bytes(log.args["ciphertext"]) == REFUSED_SHARE:
                faults.append(f"{who} refused to seal its share: the buyer key is not a usable X25519 public key")
                continue
            try:
                share = open_share(bytes(log.args["ciphertext"]), buyer_private_key, version=purchase.version)
            except ShareRejected as exc:
                faults.append(f"{who} delivered a share that is refused: {exc}")
                continue
            if len(share) != SHARE_BYTES or share_commitment(share) != custody.commitments[index]:
                faults.append(f"{who} delivered a share that does not match its on-chain commitment keccak256(share)")
                continue
            good[index] = share
        return good, faults

    def collect_key(
        self,
        purchase: Purchase,
        buyer_private_key: bytes,
        *,
        timeout: float | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> RecoveredKey:
        """Waits until k delivered shares of `purchase` verify (`verified_shares`), then rebuilds the key and checks
        keccak256(key) against the custody's key hash. Looks at the chain every `poll_interval` seconds, up to the
        purchase's last delivery block (`deliverBy`: the contract accepts no delivery after it).

        Raises KeyRejected, naming how many shares verified and each fault, once the delivery window is over (the
        latest block is the purchase's last delivery block or later: no delivery can come) or after `timeout`
        seconds (None: until the window is over) with fewer than k; and when the k shares rebuild another key."""
        custody = self.custody(purchase.version)
        started = time.monotonic()
        while True:
            latest = self.latest_block()
            good, faults = self.verified_shares(purchase, custody, buyer_private_key, min(latest, purchase.deliver_by))
            if len(good) >= custody.threshold:
                indices = tuple(sorted(good)[: custody.threshold])
                key = combine_shares([good[i] for i in indices], custody.key_hash)
                return RecoveredKey(key, indices, tuple(faults))
            over = latest >= purchase.deliver_by
            if over or (timeout is not None and time.monotonic() - started >= timeout):
                when = (
                    f"when the delivery window closed at block {purchase.deliver_by}"
                    if over
                    else f"after waiting {timeout:g} s (deliveries are open until block {purchase.deliver_by})"
                )
                detail = "".join(f"; {fault}" for fault in faults)
                shares = "1 verified key share" if len(good) == 1 else f"{len(good)} verified key shares"
                raise KeyRejected(
                    f"purchase {purchase.id}: {shares} of the {custody.threshold} needed {when}, so the key cannot "
                    f"be rebuilt{detail}"
                )
            time.sleep(poll_interval)


def _purchase_from(event: Mapping, record: Mapping, block: int, tx: str) -> Purchase:
    return Purchase(
        id=int(event["purchase"]),
        version=int(record["version"]),
        buyer=to_checksum_address(record["buyer"]),
        price=int(record["price"]),
        deliver_by=int(record["deliverBy"]),
        settled=bool(record["settled"]),
        block=int(block),
        buyer_key=bytes(event["buyerKey"]),
        tx_hash=tx,
    )


def _refusal(version: int, reason: str) -> InvalidRequest:
    above = _PRICE_ABOVE_MAX.fullmatch(reason)
    if above:
        cost, most = (int(v) for v in above.groups())
        return InvalidRequest(
            f"version {version} costs {format_dsh(cost, grouped=True)} DSH, above the maximum price of "
            f"{format_dsh(most, grouped=True)} DSH: nothing was bought or charged"
        )
    return InvalidRequest(f"WeightAccess refuses to sell version {version} ({reason}): nothing was bought or charged")


# ---------------------------------------------------------------- the custodian


def default_custody_dir() -> Path:
    """$DEEPSHARD_CUSTODY_DIR, else <data dir>/deepshard/custody."""
    configured = os.environ.get(CUSTODY_DIR_ENV)
    return Path(configured).expanduser() if configured else data_dir() / "custody"


def share_path(root: str | os.PathLike, chain_id: int, contract: str, version: int, account: str) -> Path:
    """Where `account`'s share of `version` under WeightAccess `contract` of chain `chain_id` is kept."""
    return (
        Path(root)
        / str(int(chain_id))
        / to_checksum_address(contract)
        / f"{int(version)}-{to_checksum_address(account)}.share"
    )


def save_share(chain: ChainClient, version: int, share: bytes, root: str | os.PathLike | None = None) -> Path:
    """Keeps this account's Shamir share of `version` (33 bytes, hex, mode 0600, written once) where
    `stored_shares` finds it. Raises ShardError for a share of another size or a file already there."""
    if len(share) != SHARE_BYTES:
        raise ShardError(f"a key share is {SHARE_BYTES} bytes")
    contract = chain.contract(CONTRACT).address
    path = share_path(root or default_custody_dir(), chain.chain_id, contract, version, chain.address)
    return write_hex_secret(path, share, f"key share of version {version}")


def stored_shares(
    chain: ChainClient, root: str | os.PathLike | None = None, *, faults: list[str] | None = None
) -> dict[int, bytes]:
    """This account's kept shares under the deployment's WeightAccess, by version. A file that is not a share
    raises ShardError, or with `faults` is left out and named there in one sentence (a custodian's pass goes on
    with the other versions)."""
    contract = chain.contract(CONTRACT).address
    folder = share_path(root or default_custody_dir(), chain.chain_id, contract, 0, chain.address).parent
    suffix = f"-{to_checksum_address(chain.address)}.share"
    shares: dict[int, bytes] = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            number = path.name.removesuffix(suffix)
            if path.name.endswith(suffix) and number.isdigit():
                try:
                    shares[int(number)] = read_hex_secret(path, "key share", SHARE_BYTES)
                except ShardError as exc:
                    if faults is None:
                        raise
                    faults.append(f"version {int(number)}: failed: {exc}")
    return shares


def deliver_shares(
    chain: ChainClient, shares: Mapping[int, bytes], *, start_block: int | None = None
) -> list[DeliveryStep]:
    """A custodian's pass over the purchases of the versions in `shares` (version -> this account's 33-byte
    Shamir share): for each purchase that can still be open (bought from block max(the version's publication,
    latest + 1 - the contract's current `deliveryWindow`), or from `start_block` when given: after governance
    shortens the window, a pass with `start_block` finds purchases made under the longer one), not settled, whose
    delivery window is still open for a transaction sent now and where this account has not delivered yet, its
    share sealed to the buyer's key (`seal_share`) is sent with `deliverShare`; to a 32-byte buyer key that is no
    usable X25519 point, `REFUSED_SHARE` is sent instead (silence would be slashed). Idempotent: transactions of
    this account still pending from an earlier pass are waited for first (`settle_inflight`), a delivered share
    is never sent again, a settled purchase is skipped, and a delivery of this account that landed between the
    check and the send (another process of the same custodian) is reported `already delivered`. Returns one step
    per purchase seen, oldest first, by version.

    An error of the chain or of the share (ChainError, ShardError: this account is not a custodian of a version,
    its share is not the one committed for it, a delivery that reverts or times out) is reported as that
    version's or that purchase's `failed: ...` step and the pass goes on. Raises ReceiptTimeout when earlier
    transactions stay pending (nothing is sent then)."""
    access = WeightAccessClient(chain)
    account = to_checksum_address(chain.address)
    settle_inflight(chain)
    steps: list[DeliveryStep] = []
    for version, share in sorted(shares.items()):
        try:
            index, purchases = _open_purchases(access, account, version, share, start_block)
        except (ChainError, ShardError) as exc:
            steps.append(DeliveryStep(None, version, None, f"failed: {exc}"))
            continue
        for purchase in purchases:
            try:
                steps.append(_deliver_one(access, purchase, index, share))
            except (ChainError, ShardError) as exc:
                steps.append(DeliveryStep(purchase.id, version, index, f"failed: {exc}"))
    return steps


def _open_purchases(
    access: WeightAccessClient, account: str, version: int, share: bytes, start_block: int | None
) -> tuple[int, list[Purchase]]:
    """This account's share index for `version` and the purchases `deliver_shares` looks at."""
    custody = access.custody(version)
    if account not in custody.custodians:
        raise InvalidRequest(f"{account} is not a custodian of version {version}")
    index = custody.custodians.index(account)
    if share_commitment(share) != custody.commitments[index]:
        raise ShareRejected(
            f"the share of version {version} kept for {custody.label(index)} does not match its on-chain "
            "commitment: refusing to deliver it"
        )
    latest = access.latest_block()
    if start_block is None:
        # A purchase bought in block b may be delivered until b + deliveryWindow, and a delivery sent now lands in
        # latest + 1 at the earliest: older purchases are closed.
        outputs = [o["name"] for o in access.contract.get_function_by_name("params").abi["outputs"]]
        window = int(access.contract.functions.params().call()[outputs.index("deliveryWindow")])
        start_block = latest + 1 - window
    start = max(access.quote(version).published_block, start_block)
    return index, access.purchases(version, start, latest)


def _deliver_one(access: WeightAccessClient, purchase: Purchase, index: int, share: bytes) -> DeliveryStep:
    def step(action: str, tx: str | None = None) -> DeliveryStep:
        return DeliveryStep(purchase.id, purchase.version, index, action, tx)

    def delivered() -> bool:
        return bool(access.delivered_mask(purchase.id) >> index & 1)

    if purchase.settled:
        return step("settled")
    if access.latest_block() + 1 > purchase.deliver_by:  # a delivery sent now lands after the window
        return step("window closed")
    if delivered():
        return step("already delivered")
    try:
        sealed, action = seal_share(share, purchase.buyer_key, version=purchase.version), "delivered"
    except ShareRejected:
        sealed, action = REFUSED_SHARE, "refused (unusable buyer key)"
    receipt = raced(
        lambda: access.chain.transact(access.contract.functions.deliverShare(purchase.id, index, sealed)), delivered
    )
    return step("already delivered") if receipt is None else step(action, tx_hash(receipt))
