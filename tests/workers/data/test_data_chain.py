"""The on-chain data flow on a real anvil: submit -> draw -> vote/reveal by a panel -> finalize -> claim,
through the library (and the curator's step `curate_once`) and through `deepshard data ...`.

Refusals are checked to send nothing: the account's nonce is unchanged. The module deploys its own network
(short windows, its own deployment record) on the session's anvil, so its curator pool is its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from workers import cli
from workers.chain import (
    ChainClient,
    DataConsensusParams,
    DeployParams,
    InvalidRequest,
    LocalSigner,
    deploy_network,
    stake,
)
from workers.chain.accounts import PRIVATE_KEY_ENV
from workers.chain.deployments import DEPLOYMENTS_DIR_ENV
from workers.chain.localnode import free_port
from workers.chain.module import cid_from_chain, cid_to_chain
from workers.chain.salts import VOTES_DIR_ENV, SaltNotFound, SaltStore
from workers.chain.units import WEI_PER_DSH
from workers.data import SAMPLES_DIR, InvalidDataset
from workers.data.chain import DataConsensusClient
from workers.data.steps import curate_once
from workers.protocol.constants import MAX_CURATORS
from workers.storage import NodeUnreachable, cid_of_bytes, open_store
from workers.storage.embedded import STORE_DIR_ENV

PARAMS = DataConsensusParams(commit_window=30, reveal_window=30)
POOL_SIZE = 5
BOND = 200 * WEI_PER_DSH
GOOD = SAMPLES_DIR / "good.jsonl"
JUNK = SAMPLES_DIR / "junk.jsonl"
MALFORMED = SAMPLES_DIR / "malformed.jsonl"
ETH = 10**18


@dataclass
class Network:
    """A deployment of its own on the session's anvil."""

    url: str
    deployments: Path
    treasury: ChainClient

    def account(self, *, dsh: int = 0, role: str | None = None, staked: int = 0) -> tuple[str, ChainClient]:
        """(throwaway key, client) of a new funded account, staked in `role` if given."""
        account = Account.create()
        self.treasury.w3.provider.make_request("anvil_setBalance", [account.address, hex(10 * ETH)])
        if dsh:
            token = self.treasury.contract("DeepshardToken")
            self.treasury.transact(token.functions.transfer(account.address, dsh * WEI_PER_DSH))
        client = ChainClient(self.url, LocalSigner(account), deployments_dir=self.deployments)
        if role:
            stake(client, role, str(staked))
        return account.key.hex(), client

    def mine_to(self, block: int) -> None:
        missing = block - self.treasury.w3.eth.block_number
        if missing > 0:
            self.treasury.w3.provider.make_request("anvil_mine", [hex(missing)])


@dataclass
class Member:
    key: str
    consensus: DataConsensusClient

    @property
    def address(self) -> str:
        return self.consensus.chain.address

    def nonce(self) -> int:
        return self.consensus.chain.w3.eth.get_transaction_count(self.address)


@pytest.fixture(scope="module")
def net(anvil, tmp_path_factory):
    deployments = tmp_path_factory.mktemp("consensus-deployments")
    deployer = Account.create()
    ChainClient(anvil.url).w3.provider.make_request("anvil_setBalance", [deployer.address, hex(100 * ETH)])
    treasury = ChainClient(anvil.url, LocalSigner(deployer), deployments_dir=deployments)
    deploy_network(treasury, DeployParams(data_consensus=PARAMS))
    return Network(anvil.url, deployments, treasury)


@pytest.fixture(scope="module")
def votes_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("votes")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return open_store(store_dir=tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def curators(net, votes_dir) -> list[Member]:
    """The whole curator pool: five equal bonds. A panel draws 31 votes among them with replacement (one draw =
    one vote), so it seats some or all of them; the tests act through whoever is seated."""
    members = []
    for _ in range(POOL_SIZE):
        key, client = net.account(dsh=3_000, role="CURATOR", staked=2_000)
        consensus = DataConsensusClient(client, SaltStore(votes_dir))
        assert consensus.join_pool(1_500 * WEI_PER_DSH) == 1_500 * WEI_PER_DSH
        members.append(Member(key, consensus))
    return members


@pytest.fixture
def new_informant(net, votes_dir):
    def make() -> Member:
        key, client = net.account(dsh=2_000, role="INFORMANT", staked=1_000)
        return Member(key, DataConsensusClient(client, SaltStore(votes_dir)))

    return make


@pytest.fixture(scope="module")
def keeper(net) -> DataConsensusClient:
    """Draws and finalizes (anyone may)."""
    return DataConsensusClient(net.treasury)


# ---------------------------------------------------------------- without a chain


def test_cids_round_trip_between_strings_and_the_contract_form():
    cid = str(cid_of_bytes(b'{"records":1}'))
    raw = cid_to_chain(cid)
    assert raw[:4] == bytes.fromhex("01551220") and len(raw) == 36
    assert cid_from_chain(raw) == cid


# ---------------------------------------------------------------- the library and the curator worker


@pytest.mark.filterwarnings("ignore:The 'strict' parameter is no longer needed")  # ipfshttpclient's, not ours
def test_submit_sends_nothing_when_a_check_validation_or_pinning_fails(net, new_informant, store):
    informant = new_informant()
    nonce, count = informant.nonce(), informant.consensus.contract.functions.submissionCount().call()
    with pytest.raises(InvalidDataset):
        informant.consensus.submit(MALFORMED, BOND, store)
    unreachable = open_store(api=f"/ip4/127.0.0.1/tcp/{free_port()}/http", timeout=2)
    with pytest.raises(NodeUnreachable):
        informant.consensus.submit(GOOD, BOND, unreachable)
    with pytest.raises(InvalidRequest, match="below the minimum of 100 DSH"):
        informant.consensus.submit(GOOD, 50 * WEI_PER_DSH, store)
    with pytest.raises(InvalidRequest, match="exceeds the unlocked INFORMANT stake .* \\(1000 of 1000 DSH\\)"):
        informant.consensus.submit(GOOD, 1_500 * WEI_PER_DSH, store)
    assert informant.nonce() == nonce
    assert informant.consensus.contract.functions.submissionCount().call() == count


def test_good_is_accepted_and_junk_rejected_end_to_end(net, curators, new_informant, keeper, store, tmp_path):
    good_informant, junk_informant = new_informant(), new_informant()
    good = good_informant.consensus.submit(GOOD, BOND, store)
    junk = junk_informant.consensus.submit(JUNK, BOND, store)
    assert good.submission_id + 1 == junk.submission_id
    assert keeper.manifest_cid(good.submission_id) == good.pinned.manifest_cid
    nonce = good_informant.nonce()
    with pytest.raises(InvalidRequest, match=f"already submitted .* as #{good.submission_id}, still open"):
        good_informant.consensus.submit(GOOD, BOND, store)
    assert good_informant.nonce() == nonce

    with pytest.raises(InvalidRequest, match="can be drawn once block"):
        keeper.draw(junk.submission_id)
    assert keeper.status(good.submission_id).phase == "awaiting seed block"
    net.mine_to(junk.seed_block + 1)
    seated = {}  # submission -> the curators drawn, in seat order
    for submission_id in (good.submission_id, junk.submission_id):
        panel = keeper.draw(submission_id).panel
        assert set(panel) <= {c.address for c in curators}
        seated[submission_id] = [next(c for c in curators if c.address == m) for m in panel]
        assert sum(draws for _, draws in keeper.panel(submission_id)) == MAX_CURATORS  # one draw = one vote
    with pytest.raises(InvalidRequest, match="already has its panel"):
        keeper.draw(good.submission_id)

    # The curator worker's step: score with the policy, store the salt, commit (a curator not drawn is done).
    for submission_id, expected in (
        (good.submission_id, [100, 100, 100, 95, 100]),
        (junk.submission_id, [25, 13, 25, 23, 15]),
    ):
        for curator in curators:
            step = curate_once(curator.consensus, store, submission_id)
            if curator in seated[submission_id]:
                assert (step.action, step.data["scores"]) == ("committed", expected)
            else:
                assert step.action == "done" and "not on the panel" in step.detail
    # Two panels of 31 votes over 5 curators share a member unless one of them seats at most two (~1e-11).
    first = next(c for c in seated[good.submission_id] if c in seated[junk.submission_id])
    nonce = first.nonce()
    with pytest.raises(InvalidRequest, match="already committed its vote"):
        first.consensus.vote(good.submission_id, [1, 2, 3, 4, 5])
    assert curate_once(first.consensus, store, good.submission_id).action == "waiting"
    with pytest.raises(InvalidRequest, match="reveal window .* opens once block"):
        first.consensus.reveal(good.submission_id)
    assert first.nonce() == nonce

    net.mine_to(keeper.submission(junk.submission_id).commit_deadline + 1)
    forgetful = DataConsensusClient(first.consensus.chain, SaltStore(tmp_path / "empty"))
    with pytest.raises(SaltNotFound, match="no stored salt"):
        forgetful.reveal(good.submission_id)
    with pytest.raises(InvalidRequest, match="commit window .* closed"):
        first.consensus.vote(good.submission_id, [1, 2, 3, 4, 5])
    with pytest.raises(InvalidRequest, match="can be finalized once block"):
        keeper.finalize(good.submission_id)
    assert first.nonce() == nonce
    for submission_id in (good.submission_id, junk.submission_id):
        for curator in seated[submission_id]:
            assert curate_once(curator.consensus, store, submission_id).action == "revealed"
    with pytest.raises(InvalidRequest, match="already revealed"):
        first.consensus.reveal(good.submission_id)

    junk_stake = junk_informant.consensus.registry.functions.stakeOf(junk_informant.address, 0).call()
    accepted = keeper.finalize(good.submission_id)
    rejected = keeper.finalize(junk.submission_id)
    assert (accepted.status, accepted.consensus, accepted.value) == ("Accepted", [100, 100, 100, 95, 100], 9_900)
    assert (rejected.status, rejected.value) == ("Rejected", 2_120)
    assert rejected.threshold_before == accepted.threshold_after > accepted.threshold_before
    after = junk_informant.consensus.registry.functions.stakeOf(junk_informant.address, 0).call()
    assert junk_stake - after == BOND // 2  # half the bond slashed to the coherent curators
    with pytest.raises(InvalidRequest, match="cannot be finalized: phase accepted"):
        keeper.finalize(good.submission_id)

    token = keeper.chain.contract("DeepshardToken")
    wallets = [token.functions.balanceOf(c.address).call() for c in curators]
    for submission_id in (good.submission_id, junk.submission_id):
        for curator in seated[submission_id]:
            assert curate_once(curator.consensus, store, submission_id).action == "claimed"
            assert curate_once(curator.consensus, store, submission_id).action == "done"
    # Every seat is coherent: each gets its payout's share per vote it drew.
    draws = {sid: dict(keeper.panel(sid)) for sid in (good.submission_id, junk.submission_id)}
    payouts = {good.submission_id: keeper.submission(good.submission_id).curator_payout, junk.submission_id: BOND // 2}
    gains = [token.functions.balanceOf(c.address).call() - before for c, before in zip(curators, wallets, strict=True)]
    assert gains == [
        sum(payout * draws[sid].get(c.address, 0) // MAX_CURATORS for sid, payout in payouts.items()) for c in curators
    ]

    reward = good_informant.consensus.claim(good.submission_id)
    # 9,900 / 10,000 of the 1,000 DSH maximum reward, less the curators' 10%.
    assert (reward.informant_reward, reward.seat_reward) == (891 * WEI_PER_DSH, 0)
    assert keeper.submission(good.submission_id).informant_reward == 0
    with pytest.raises(InvalidRequest, match="nothing to claim .* already claimed"):
        good_informant.consensus.claim(good.submission_id)
    with pytest.raises(InvalidRequest, match="Rejected submission pays its informant no reward"):
        junk_informant.consensus.claim(junk.submission_id)

    status = keeper.status(junk.submission_id)
    assert status.phase == "rejected" and status.outcome.consensus == [25, 13, 25, 23, 15]
    assert all(seat.committed and seat.revealed and seat.settled for seat in status.panel)
    stored = json.loads(first.consensus.salts.path(first.consensus.salt_key("vote", junk.submission_id)).read_text())
    assert stored["value"] == [25, 13, 25, 23, 15] and len(bytes.fromhex(stored["salt"][2:])) == 32


def test_a_curator_off_the_panel_is_told_so(net, curators, new_informant, keeper, store):
    informant = new_informant()
    submitted = informant.consensus.submit(GOOD, BOND, store)
    outsider = new_informant()  # staked, but not in the curator pool
    assert curate_once(outsider.consensus, store, submitted.submission_id).action == "waiting"
    net.mine_to(submitted.seed_block + 1)
    keeper.draw(submitted.submission_id)
    assert curate_once(outsider.consensus, store, submitted.submission_id).action == "done"
    with pytest.raises(InvalidRequest, match="is not on the panel"):
        outsider.consensus.vote(submitted.submission_id, [50] * 5)
    with pytest.raises(InvalidRequest, match="there is no submission #999"):
        keeper.status(999)


# ---------------------------------------------------------------- the command line


def run_cli(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_error_line(err, fragment):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err


def test_command_line_flow(net, curators, new_informant, keeper, store, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(DEPLOYMENTS_DIR_ENV, str(net.deployments))
    monkeypatch.setenv(STORE_DIR_ENV, str(store.root))
    monkeypatch.setenv(VOTES_DIR_ENV, str(tmp_path / "votes"))
    informant = new_informant()

    def act_as(member: Member):
        monkeypatch.setenv(PRIVATE_KEY_ENV, member.key)

    act_as(informant)
    nonce = informant.nonce()
    status, out, err = run_cli(capsys, "data", "submit", str(MALFORMED), "--bond", "200", "--rpc", net.url)
    assert status == 1 and not out
    assert_one_error_line(err, "invalid dataset (9 problems): line ")
    assert "nothing was submitted" in err and informant.nonce() == nonce

    dataset = tmp_path / "facts.jsonl"
    dataset.write_text(
        "".join(
            json.dumps(
                {
                    "text": f"Fact number {i}: the year {1900 + i} came after {1899 + i}.",
                    "source": "https://example.org",
                }
            )
            + "\n"
            for i in range(20)
        )
    )
    status, out, err = run_cli(capsys, "data", "--rpc", net.url, "submit", str(dataset), "--bond", "200")
    assert status == 0, err
    submission_id = int(out.splitlines()[-1].split()[1].rstrip(":"))
    assert out.splitlines()[-1].startswith(f"submission {submission_id}: bond of 200 DSH locked")

    status, out, err = run_cli(capsys, "data", "draw", str(submission_id), "--rpc", net.url)
    assert status == 1
    assert_one_error_line(err, f"the panel of #{submission_id} can be drawn once block")
    net.mine_to(keeper.submission(submission_id).seed_block + 1)
    status, out, err = run_cli(capsys, "data", "draw", str(submission_id), "--rpc", net.url)
    seats = keeper.panel(submission_id)
    seated = [next(c for c in curators if c.address == member) for member, _ in seats]
    assert status == 0 and f"panel of #{submission_id}: {len(seated)} curators" in out, err

    for curator in seated:
        act_as(curator)
        status, out, err = run_cli(
            capsys, "data", "vote", str(submission_id), "--scores", "80,75,70,85,70", "--rpc", net.url
        )
        assert status == 0, err
        assert f"committed [80, 75, 70, 85, 70] on #{submission_id}; the salt is kept in {tmp_path / 'votes'}" in out
    nonce = seated[0].nonce()
    act_as(seated[0])
    for argv, fragment in (
        (["vote", str(submission_id), "--scores", "80,75,70,85,70"], "already committed its vote"),
        (["vote", str(submission_id), "--scores", "80,75,70"], "scores must be 5 integers from 0 to 100"),
        (["reveal", str(submission_id)], "opens once block"),
        (["finalize", str(submission_id)], "can be finalized once block"),
        (["claim", str(submission_id)], "is not finalized yet (phase: commit)"),
    ):
        status, out, err = run_cli(capsys, "data", *argv, "--rpc", net.url)
        assert status == 1 and not out
        assert_one_error_line(err, fragment)
    assert seated[0].nonce() == nonce

    net.mine_to(keeper.submission(submission_id).commit_deadline + 1)
    monkeypatch.setenv(VOTES_DIR_ENV, str(tmp_path / "empty"))
    status, out, err = run_cli(capsys, "data", "reveal", str(submission_id), "--rpc", net.url)
    assert status == 1
    assert_one_error_line(err, f"no stored salt for {seated[0].address}'s vote on #{submission_id}")
    monkeypatch.setenv(VOTES_DIR_ENV, str(tmp_path / "votes"))
    for curator in seated:
        act_as(curator)
        status, out, err = run_cli(capsys, "data", "reveal", str(submission_id), "--rpc", net.url)
        assert status == 0 and f"revealed [80, 75, 70, 85, 70] on #{submission_id}" in out, err

    status, out, err = run_cli(capsys, "data", "finalize", str(submission_id), "--rpc", net.url)
    assert status == 0, err
    assert f"#{submission_id} Accepted: consensus [80, 75, 70, 85, 70], value 7,700, threshold " in out
    for member in (*seated, informant):
        act_as(member)
        status, out, err = run_cli(capsys, "data", "claim", str(submission_id), "--rpc", net.url)
        assert status == 0 and out.startswith("tx 0x"), err
    assert "informant reward 693 DSH" in out  # 7,700 / 10,000 of 1,000 DSH, less the curators' 10%

    monkeypatch.delenv(PRIVATE_KEY_ENV)  # status reads only
    status, out, err = run_cli(capsys, "data", "status", str(submission_id), "--rpc", net.url)
    assert status == 0, err
    assert "phase        accepted" in out and "consensus    [80, 75, 70, 85, 70]" in out
    rows = re.findall(r"^\s+\d+\s+(0x[0-9a-fA-F]{40})\s+(\d+)\s+yes\s+yes\s+yes$", out, re.M)
    assert [(member, int(votes)) for member, votes in rows] == seats  # a seat's VOTES: its draws
