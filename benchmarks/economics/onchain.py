"""The on-chain runner: the same strategies, acting through the real contracts' ABI on a local anvil (plain
web3 through workers.chain's ChainClient, one signer per participant).

`Chain.start` deploys the network (workers.chain.deploy_network), stakes the base participants, joins the
pools and gets spare datasets accepted (one per epoch: a round always has a dataset to open on, whatever the
epoch's own submission became), then takes an `evm_snapshot`. Each world of a paired run reverts to it, so the
honest world and the deviating one start from the same state. Per epoch it records the block hashes that
seeded the panels, so that the model can replay the epoch on the same seeds (`replay`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from workers.chain import ChainClient, DeployParams, LocalSigner, deploy_network, stake
from workers.chain.localnode import LocalNode, start_anvil
from workers.chain.module import struct_of
from workers.protocol.constants import (
    BLOCKHASH_HORIZON,
    DATA_STATUSES,
    DRAWS_PER_SEAT,
    MAX_CURATORS,
    ROUND_STATUSES,
    STAKE_ROLES,
)
from workers.protocol.sortition import draw_panel, panel_seed

from .model import EpochRecord, World, run_epoch
from .strategies import Context, Roster, Strategy
from .world import DSH, Economy, curator_scores, dataset_scores

ETH = 10**18
SPEC_HASH = keccak(b"deepshard-economics/spec")


#: Gas limit of every transaction: skips an estimate per transaction (anvil charges only the gas used; a revert
#: still raises TransactionReverted, from the receipt).
GAS = 10_000_000


def _send(client: ChainClient, call):
    return client.transact(call, gas=GAS)


def account(name: str):
    """The participant's account: a key derived from its label (local chains only)."""
    return Account.from_key(keccak(b"deepshard-economics/" + name.encode()))


@dataclass
class ChainWorld:
    """One world's run on the chain: the epochs' panel seeds and what the participants hold."""

    roster: Roster
    ctx: Context
    threshold: int
    ema: int
    ids_before: tuple[int, int]  # submissions and rounds on the chain before the first epoch
    seed_hashes: dict[tuple[str, int, int], bytes] = field(default_factory=dict)
    epochs: list[EpochRecord] = field(default_factory=list)


class Chain:
    """A deployment on an anvil this object started (and stops, by its PID)."""

    def __init__(self, node: LocalNode, admin: ChainClient, economy: Economy):
        self.node, self.admin, self.economy = node, admin, economy
        self.clients: dict[str, ChainClient] = {}
        self.names: dict[str, str] = {}  # address -> participant
        self.spare: list[int] = []
        self.snapshot = ""
        self.modules = {"data": self.data.address, "rounds": self.rounds.address}

    # ------------------------------------------------------------------ setup

    @classmethod
    def start(cls, economy: Economy, deployments: Path, *, spare: int) -> Chain:
        """Deploys on a new anvil, stakes the base roster and gets `spare` datasets accepted (one per epoch a
        world runs), then snapshots."""
        node = start_anvil(accounts=1)
        try:
            admin_account = account("admin")
            ChainClient(node.url).w3.provider.make_request(
                "anvil_setBalance", [admin_account.address, hex(10**6 * ETH)]
            )
            admin = ChainClient(node.url, LocalSigner(admin_account), deployments_dir=deployments, poll_interval=0.002)
            deploy_network(admin, DeployParams(data_consensus=economy.data, training_rounds=economy.rounds))
            chain = cls(node, admin, economy)
            base = Strategy(False).roster(economy)
            chain._join(base)
            chain.spare = [chain._accepted_dataset(base, i) for i in range(spare)]
            chain.snapshot = chain._rpc("evm_snapshot")
            return chain
        except BaseException:
            node.stop()
            raise

    def stop(self) -> None:
        self.node.stop()

    @property
    def data(self):
        return self.admin.contract("DataConsensus")

    @property
    def rounds(self):
        return self.admin.contract("TrainingRounds")

    def _rpc(self, method: str, *params):
        response = self.admin.w3.provider.make_request(method, list(params))
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response["result"]

    def client(self, name: str) -> ChainClient:
        if name not in self.clients:
            self.clients[name] = self.admin.with_signer(LocalSigner(account(name)))
            self.clients[name].poll_interval = 0.002
        return self.clients[name]

    def _fund(self, name: str, role: str, amount: int) -> None:
        address = account(name).address
        self._rpc("anvil_setBalance", address, hex(1_000 * ETH))
        token = self.admin.contract("DeepshardToken")
        _send(self.admin, token.functions.transfer(address, amount))
        stake(self.client(name), role, amount // DSH)
        self.names[address] = name

    def _join(self, roster: Roster, only: set[str] | None = None) -> None:
        """Stakes and pools the roster's participants (`only`: just these names)."""
        wanted = (lambda n: True) if only is None else (lambda n: n in only)
        for name, bond in roster.curators:
            if wanted(name):
                self._fund(name, "CURATOR", bond)
                _send(self.client(name), self.client(name).contract("DataConsensus").functions.joinPool(bond))
        for name, bond in roster.evaluators:
            if wanted(name):
                self._fund(name, "EVALUATOR", bond)
                _send(self.client(name), self.client(name).contract("TrainingRounds").functions.joinPool(bond))
        for name, bond in roster.trainers:
            if wanted(name):
                # The base trainers are staked once, for every world: enough for any bond a strategy gives them.
                self._fund(name, "TRAINER", 20 * max(bond, self.economy.rounds.trainer_bond))
        if wanted(roster.informant):
            self._fund(roster.informant, "INFORMANT", 50 * self.economy.informant_bond)

    def _accepted_dataset(self, roster: Roster, index: int) -> int:
        """A dataset the base curators accept (honest votes on good data); its id."""
        ctx = Context(seed=-1, economy=self.economy, epoch=index)
        strategy = Strategy(False)
        status, sid = self._submission(strategy, ctx, roster, None, index, spare=True)
        if status != "Accepted":
            raise RuntimeError(f"a spare dataset was {status}")
        return sid

    # ------------------------------------------------------------------ a world

    def world(self, strategy: Strategy, seed: int) -> ChainWorld:
        """Reverts to the snapshot and sets up the strategy's extra participants."""
        self._rpc("evm_revert", self.snapshot)
        self.snapshot = self._rpc("evm_snapshot")
        self.clients = {}  # nonces: the revert rewound every account
        self.admin = self.admin.with_signer(self.admin.signer)  # type: ignore[arg-type]
        self.admin.poll_interval = 0.002
        roster = strategy.roster(self.economy)
        base = Strategy(False).roster(self.economy)
        extra = {n for n, _ in roster.curators + roster.evaluators + roster.trainers}
        extra -= {n for n, _ in base.curators + base.evaluators + base.trainers}
        self.names = {a: n for a, n in self.names.items() if n not in extra}
        self._join(roster, extra)
        data = self.data
        return ChainWorld(
            roster,
            Context(seed, self.economy),
            data.functions.threshold().call(),
            data.functions.acceptanceEma().call(),
            (data.functions.submissionCount().call(), self.rounds.functions.roundCount().call()),
        )

    def wealth(self, names) -> dict[str, int]:
        """DSH balance plus stake in every role, wei per name."""
        token = self.admin.contract("DeepshardToken")
        registry = self.admin.contract("StakeRegistry")
        result = {}
        for name in names:
            address = account(name).address
            total = token.functions.balanceOf(address).call()
            total += sum(registry.functions.stakeOf(address, role).call() for role in range(len(STAKE_ROLES)))
            result[name] = total
        return result

    def run(self, strategy: Strategy, seed: int, epochs: int, *, max_rerolls: int = 3) -> ChainWorld:
        """`epochs` epochs of one world; each EpochRecord's wealth is the on-chain change since the start."""
        world = self.world(strategy, seed)
        names = sorted(self.names.values())
        start = self.wealth(names)
        for epoch in range(epochs):
            world.ctx.epoch = epoch
            status, _ = self._submission(strategy, world.ctx, world.roster, world, epoch, max_rerolls=max_rerolls)
            round_status = self._round(strategy, world, epoch)
            now = self.wealth(names)
            change = {n: now[n] - start[n] for n in names if now[n] != start[n]}
            world.epochs.append(EpochRecord(status, [], 0, round_status, [], [], change, dict(world.ctx.costs)))
        return world

    # ------------------------------------------------------------------ phases

    def _mine_to(self, block: int) -> None:
        latest = self.admin.w3.eth.block_number
        if block > latest:
            self._rpc("anvil_mine", hex(block - latest))

    def _submission(self, strategy, ctx, roster, world, epoch, *, spare=False, max_rerolls=3):
        informant = self.client(roster.informant)
        data = informant.contract("DataConsensus")
        if spare:
            bond, kind = self.economy.informant_bond, "good"
        else:
            bond, kind = strategy.submission(ctx, roster)
        truth = dataset_scores(ctx.seed, epoch, kind)
        cid = b"\x01\x55" + keccak(repr(("dataset", ctx.seed, epoch, kind, spare)).encode())
        rerolls = 0
        while True:
            _send(informant, data.functions.submit(cid, bond))
            sid = data.functions.submissionCount().call()
            seed_block = data.functions.getSubmission(sid).call()[2]
            self._mine_to(seed_block + 1)
            seed_hash = bytes(self.admin.w3.eth.get_block(seed_block)["hash"])
            if world is not None:
                world.seed_hashes[("data", epoch, rerolls)] = seed_hash
            if spare or rerolls >= max_rerolls or strategy.keep_panel(ctx, *self._predicted(sid, seed_hash), rerolls):
                break
            # The informant waits out blockhash's horizon, then draws: the submission expires, and it submits again.
            self._mine_to(seed_block + BLOCKHASH_HORIZON + 1)
            _send(self.admin, self.data.functions.drawPanel(sid))
            rerolls += 1
        _send(self.admin, self.data.functions.drawPanel(sid))
        members, _ = self.data.functions.panelOf(sid).call()
        panel = [self.names[m] for m in members]
        votes = [
            (strategy.curator_vote(ctx, n, truth) if not spare else curator_scores(-1, epoch, n, truth)) for n in panel
        ]
        salts = {}
        for name, vote in zip(panel, votes, strict=True):
            if vote is None:
                continue
            salt = keccak(repr(("salt", name, sid)).encode())
            salts[name] = salt
            commitment = keccak(encode(["uint8[5]", "bytes32", "address"], [list(vote), salt, account(name).address]))
            client = self.client(name)
            _send(client, client.contract("DataConsensus").functions.commit(sid, commitment))
        record = data.functions.getSubmission(sid).call()
        commit_deadline, reveal_deadline = record[3], record[4]
        self._mine_to(commit_deadline + 1)
        for name, vote in zip(panel, votes, strict=True):
            if vote is not None:
                client = self.client(name)
                _send(client, client.contract("DataConsensus").functions.reveal(sid, list(vote), salts[name]))
        if any(vote is None for vote in votes):
            self._mine_to(reveal_deadline + 1)
        _send(self.admin, self.data.functions.finalize(sid))
        for seat in range(len(panel)):
            _send(self.admin, self.data.functions.claim(sid, seat))
        status_index = self.data.functions.getSubmission(sid).call()[8]
        status = DATA_STATUSES[status_index]
        if status == "Accepted":
            _send(informant, data.functions.claimInformantReward(sid))
        if not spare:
            if status in ("Accepted", "Rejected"):
                ctx.history.append(tuple(self.data.functions.consensusOf(sid).call()))
            strategy.after_submission(ctx, status == "Accepted")
        return status, sid

    def _predicted(self, sid: int, seed_hash: bytes) -> tuple[list[str], list[int]]:
        """The panel the informant can compute from the mined seed block (workers.protocol's draw)."""
        count = self.data.functions.poolMemberCount().call()
        members = [self.data.functions.poolMemberAt(i).call() for i in range(1, count + 1)]
        bonds = {m: self.data.functions.poolMembers(m).call()[2] for m in members}
        informant = self.data.functions.getSubmission(sid).call()[0]
        draws = draw_panel(
            panel_seed(seed_hash, sid, self.data.address),
            members,
            bonds,
            informant,
            MAX_CURATORS,
            DRAWS_PER_SEAT * MAX_CURATORS,
        )
        return [self.names[m] for m in draws], list(draws.values())

    def _round(self, strategy: Strategy, world: ChainWorld, epoch: int) -> str:
        ctx, roster = world.ctx, world.roster
        rounds = self.rounds
        _send(self.admin, rounds.functions.openRound([self.spare[epoch]], SPEC_HASH))
        round_id = rounds.functions.roundCount().call()
        moves = strategy.trainer_moves(ctx, roster)
        salts = {}
        for name, kind in moves:
            cid = b"\x01\x55" + keccak(repr(("delta", ctx.seed, epoch, kind or "silent")).encode())
            salt = keccak(repr(("salt", name, round_id)).encode())
            salts[name] = (cid, salt)
            client = self.client(name)
            commitment = keccak(encode(["bytes", "bytes32", "address"], [cid, salt, account(name).address]))
            commit = client.contract("TrainingRounds").functions.commitDelta(
                round_id, commitment, roster.trainer_bond(name)
            )
            _send(client, commit)
        self._mine_to(self._round_field(round_id, "trainCommitDeadline") + 1)
        for name, kind in moves:
            if kind is not None:
                client = self.client(name)
                _send(client, client.contract("TrainingRounds").functions.revealDelta(round_id, *salts[name]))
        seed_block = self._round_field(round_id, "panelSeedBlock")
        self._mine_to(seed_block + 1)
        world.seed_hashes[("rounds", epoch, 0)] = bytes(self.admin.w3.eth.get_block(seed_block)["hash"])
        _send(self.admin, rounds.functions.drawEvaluators(round_id))
        status = self._round_status(round_id)
        if status == "Evaluating":
            self._evaluate(strategy, world, round_id, [kind for _, kind in moves if kind is not None])
            status = self._round_status(round_id)
        accepted_mask = self._round_field(round_id, "acceptedDeltaMask")
        revealed = [name for name, kind in moves if kind is not None]
        for delta, name in enumerate(revealed):
            # Outliers and silent trainers were settled by finalize; the rest claim.
            if status == "Failed" or accepted_mask >> delta & 1:
                client = self.client(name)
                _send(client, client.contract("TrainingRounds").functions.claimTrainer(round_id))
        return status

    def _round_field(self, round_id: int, name: str):
        """One field of `getRound(round_id)`, by its name in the ABI."""
        return struct_of(self.rounds, "getRound", round_id)[name]

    def _round_status(self, round_id: int) -> str:
        return ROUND_STATUSES[self._round_field(round_id, "status")]

    def _evaluate(self, strategy: Strategy, world: ChainWorld, round_id: int, kinds: list[str]) -> None:
        rounds = self.rounds
        members, _ = rounds.functions.panelOf(round_id).call()
        panel = [self.names[m] for m in members]
        reports = [strategy.evaluator_report(world.ctx, name, kinds) for name in panel]
        salts = {}
        for name, report in zip(panel, reports, strict=True):
            if report is None:
                continue
            salt = keccak(repr(("salt", name, "round", round_id)).encode())
            salts[name] = salt
            fps = [list(fp) for fp in report]
            commitment = keccak(encode(["int32[16][]", "bytes32", "address"], [fps, salt, account(name).address]))
            client = self.client(name)
            _send(client, client.contract("TrainingRounds").functions.commitFingerprints(round_id, commitment))
        info = struct_of(rounds, "getRound", round_id)
        self._mine_to(info["evalCommitDeadline"] + 1)
        for name, report in zip(panel, reports, strict=True):
            if report is not None:
                client = self.client(name)
                fps = [list(fp) for fp in report]
                _send(
                    client, client.contract("TrainingRounds").functions.revealFingerprints(round_id, fps, salts[name])
                )
        if any(report is None for report in reports):
            self._mine_to(info["evalRevealDeadline"] + 1)
        _send(self.admin, rounds.functions.finalize(round_id))
        for seat in range(len(panel)):
            _send(self.admin, rounds.functions.claimEvaluator(round_id, seat))


def replay(chain: Chain, strategy: Strategy, run: ChainWorld, seed: int) -> World:
    """The model's account of an on-chain world: the same strategy and seeds, the chain's panel seeds, modules,
    submission and round ids, threshold state and participant names (addresses are mapped back to names)."""
    world = World.start(strategy, chain.economy, seed, run.threshold, run.ema, run.ids_before)
    for _ in run.epochs:
        run_epoch(world, lambda kind, epoch, rerolls: run.seed_hashes[(kind, epoch, rerolls)], chain.modules)
    return world
