"""The data keeper's step (`workers.data.steps.keeper_once`) on a real anvil: it draws a panel at the first block
after its seed block (one found past the 256-block horizon has expired the submission, at the informant's expense),
finalizes as soon as every seat revealed or after the reveal window, then settles the seats that never revealed.
Nothing is sent while nothing is due, and it needs no stake. (The curator's step, `curate_once`, runs in
test_data_chain.py.)"""

from __future__ import annotations

import pytest
from eth_account import Account

from workers.chain import ChainClient, DataConsensusParams, DeployParams, LocalSigner, deploy_network, stake
from workers.chain.salts import SaltStore
from workers.chain.units import WEI_PER_DSH
from workers.data import SAMPLES_DIR
from workers.data.chain import DataConsensusClient
from workers.data.steps import keeper_once
from workers.protocol.consensus import expiry_slash
from workers.protocol.constants import BLOCKHASH_HORIZON
from workers.storage import open_store

PARAMS = DataConsensusParams(commit_window=6, reveal_window=6)
ETH = 10**18
POOL_BOND = 1_500 * WEI_PER_DSH
VOTE = [90, 90, 90, 90, 90]


class Net:
    def __init__(self, url: str, deployments, tmp):
        deployer = Account.create()
        ChainClient(url).w3.provider.make_request("anvil_setBalance", [deployer.address, hex(100 * ETH)])
        self.url, self.deployments = url, deployments
        self.treasury = ChainClient(url, LocalSigner(deployer), deployments_dir=deployments)
        deploy_network(self.treasury, DeployParams(data_consensus=PARAMS))
        self.salts = SaltStore(tmp / "salts")
        self.curators = [self.client("CURATOR", 2_000) for _ in range(3)]
        for curator in self.curators:
            curator.join_pool(POOL_BOND)
        self.informant = self.client("INFORMANT", 5_000)
        self.store = open_store(store_dir=tmp / "store")

    def client(self, role: str | None = None, staked: int = 0) -> DataConsensusClient:
        account = Account.create()
        self.treasury.w3.provider.make_request("anvil_setBalance", [account.address, hex(10 * ETH)])
        chain = ChainClient(self.url, LocalSigner(account), deployments_dir=self.deployments)
        if role:
            token = self.treasury.contract("DeepshardToken")
            self.treasury.transact(token.functions.transfer(account.address, staked * WEI_PER_DSH))
            stake(chain, role, str(staked))
        return DataConsensusClient(chain, self.salts)

    def block(self) -> int:
        return int(self.treasury.w3.eth.block_number)

    def mine_to(self, block: int) -> None:
        if block > self.block():
            self.treasury.w3.provider.make_request("anvil_mine", [hex(block - self.block())])

    def submit(self, dataset: str = "good.jsonl") -> int:
        # A line of its own makes each submission a new dataset (an informant may not resubmit an open one).
        data = (SAMPLES_DIR / dataset).read_bytes() + f'{{"text": "Submission marker {self.block()}."}}\n'.encode()
        return self.informant.submit(data, 200 * WEI_PER_DSH, self.store).submission_id


def nonce(client: DataConsensusClient) -> int:
    return client.chain.w3.eth.get_transaction_count(client.chain.address)


@pytest.fixture(scope="module")
def net(anvil, tmp_path_factory) -> Net:
    return Net(anvil.url, tmp_path_factory.mktemp("deployments"), tmp_path_factory.mktemp("keeper"))


@pytest.fixture(scope="module")
def keeper(net) -> DataConsensusClient:
    """A keeper: ETH for gas, no stake at all."""
    return net.client()


def test_keeper_draws_at_the_first_block_after_the_seed_block(net, keeper):
    submission_id = net.submit()
    seed_block = keeper.submission(submission_id).seed_block
    sent = nonce(keeper)
    waiting = keeper_once(keeper, submission_id)
    assert (waiting.action, waiting.detail, waiting.wake_at_block) == ("waiting", "awaiting seed block", seed_block + 1)
    assert nonce(keeper) == sent

    net.mine_to(seed_block + 1)  # its wake-up block: the seed block is mined, gas estimates see it in the past
    drawn = keeper_once(keeper, submission_id)
    submission = keeper.submission(submission_id)
    assert drawn.action == "drawn" and sorted(drawn.data["panel"]) == sorted(c.chain.address for c in net.curators)
    assert submission.status == "Voting" and drawn.wake_at_block == submission.reveal_deadline + 1
    assert submission.commit_deadline == seed_block + 2 + PARAMS.commit_window  # drawn in the very next block
    again = keeper_once(keeper, submission_id)  # a redelivered step: nothing more to do yet
    assert again.action == "waiting" and again.detail == "commit" and nonce(keeper) == sent + 1


def test_keeper_finds_a_panel_past_the_horizon_expired_at_the_informants_expense(net, keeper):
    submission_id = net.submit()
    submission = keeper.submission(submission_id)
    stake_before = net.informant.chain.contract("StakeRegistry").functions.stakeOf(submission.informant, 0).call()
    net.mine_to(submission.seed_block + BLOCKHASH_HORIZON + 1)  # nobody drew in time: the seed block is forgotten
    sent = nonce(keeper)
    expired = keeper_once(keeper, submission_id)
    slashed = expiry_slash(submission.bond, PARAMS.expiry_slash_bps)
    assert (expired.action, expired.wake_at_block, expired.data) == ("done", None, {"expired_slash": slashed})
    assert "expired undrawn" in expired.detail and nonce(keeper) == sent + 1
    after = keeper.submission(submission_id)
    assert after.status == "Expired" and after.finalized and after.phase(net.block()) == "expired undrawn"
    registry = net.informant.chain.contract("StakeRegistry")
    assert registry.functions.stakeOf(submission.informant, 0).call() == stake_before - slashed
    assert keeper_once(keeper, submission_id).action == "done" and nonce(keeper) == sent + 1


def test_keeper_finalizes_as_soon_as_every_seat_revealed(net, keeper):
    submission_id = net.submit()
    net.mine_to(keeper.submission(submission_id).seed_block + 1)
    assert keeper_once(keeper, submission_id).action == "drawn"
    for curator in net.curators:
        curator.vote(submission_id, VOTE)
    submission = keeper.submission(submission_id)
    net.mine_to(submission.commit_deadline + 1)
    waiting = keeper_once(keeper, submission_id)
    assert waiting.action == "waiting" and waiting.wake_at_block == submission.reveal_deadline + 1
    for curator in net.curators:
        curator.reveal(submission_id)
    finalized = keeper_once(keeper, submission_id)
    assert finalized.action == "finalized" and finalized.data == {"status": "Accepted"}
    assert net.block() < submission.reveal_deadline  # before the window's end
    sent = nonce(keeper)
    done = keeper_once(keeper, submission_id)
    assert done.action == "done" and done.finished and nonce(keeper) == sent
    # Revealed seats are their curators' to claim: the keeper leaves them.
    assert keeper.submission(submission_id).settled_mask == 0


def test_keeper_finalizes_after_the_reveal_window_and_settles_the_silent_seats(net, keeper):
    submission_id = net.submit()
    net.mine_to(keeper.submission(submission_id).seed_block + 1)
    keeper_once(keeper, submission_id)
    revealing, committed_only, absent = net.curators
    for curator in (revealing, committed_only):
        curator.vote(submission_id, VOTE)
    submission = keeper.submission(submission_id)
    net.mine_to(submission.commit_deadline + 1)
    revealing.reveal(submission_id)
    assert keeper_once(keeper, submission_id).wake_at_block == submission.reveal_deadline + 1

    net.mine_to(submission.reveal_deadline + 1)
    assert keeper_once(keeper, submission_id).action == "finalized"
    bonds = {c.chain.address: c.pool_bond() for c in (committed_only, absent)}
    settled = keeper_once(keeper, submission_id)
    silent = {keeper.seat_of(submission_id, c.chain.address): c.chain.address for c in (committed_only, absent)}
    assert settled.action == "settled"
    assert {(s["seat"], s["curator"]) for s in settled.data["seats"]} == set(silent.items())
    for seat in settled.data["seats"]:
        assert seat["penalty"] == bonds[seat["curator"]] * PARAMS.no_reveal_penalty_bps // 10_000 > 0
        assert keeper.pool_bond(seat["curator"]) == bonds[seat["curator"]] - seat["penalty"]
    after = keeper.submission(submission_id)
    assert after.silent_seats == [] and not after.settled(keeper.seat_of(submission_id, revealing.chain.address))
    assert keeper_once(keeper, submission_id).action == "done"
    assert keeper.registry.functions.stakeOf(keeper.chain.address, 1).call() == 0  # the keeper stakes nothing
