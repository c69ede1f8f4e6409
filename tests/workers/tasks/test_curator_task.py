"""The curator worker through Celery: a real worker holding one curator's key commits, reveals and settles
its seat on its own, while two other curators vote in this process. Junk is rejected and slashed."""

from __future__ import annotations

import stat
import time

from eth_account import Account

from workers.chain import ChainClient, DataConsensusParams, DeployParams, LocalSigner, deploy_network, stake
from workers.chain.units import WEI_PER_DSH
from workers.data import SAMPLES_DIR
from workers.data.chain import DataConsensusClient, VoteStore
from workers.storage import open_store
from workers.tasks.curator import curate, curate_once

ETH = 10**18
POLL_TIMEOUT = 60


def wait_for(condition, what: str, worker) -> None:
    deadline = time.monotonic() + POLL_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"the curator worker never {what}:\n{worker.log()[-3000:]}"
        time.sleep(0.2)


def test_curator_worker_votes_reveals_and_settles(anvil, start_worker, tmp_path):
    deployments, store_dir, votes_dir = tmp_path / "deployments", tmp_path / "store", tmp_path / "votes"
    admin = Account.create()
    ChainClient(anvil.url).w3.provider.make_request("anvil_setBalance", [admin.address, hex(100 * ETH)])
    treasury = ChainClient(anvil.url, LocalSigner(admin), deployments_dir=deployments)
    deploy_network(treasury, DeployParams(data_consensus=DataConsensusParams(commit_window=20, reveal_window=20)))
    token = treasury.contract("DeepshardToken")

    def member(role: str, staked: str) -> tuple[str, DataConsensusClient]:
        account = Account.create()
        treasury.w3.provider.make_request("anvil_setBalance", [account.address, hex(10 * ETH)])
        treasury.transact(token.functions.transfer(account.address, 3_000 * WEI_PER_DSH))
        client = ChainClient(anvil.url, LocalSigner(account), deployments_dir=deployments)
        stake(client, role, staked)
        return account.key.hex(), DataConsensusClient(client, VoteStore(votes_dir))

    curators = [member("CURATOR", "2000") for _ in range(3)]
    for _, consensus in curators:
        consensus.join_pool(1_000 * WEI_PER_DSH)
    (worker_key, on_worker), in_process = curators[0], [consensus for _, consensus in curators[1:]]
    _, informant = member("INFORMANT", "1000")
    store = open_store(store_dir=store_dir)
    submission_id = informant.submit(SAMPLES_DIR / "junk.jsonl", 200 * WEI_PER_DSH, store).submission_id
    submission = informant.submission(submission_id)
    treasury.w3.provider.make_request("anvil_mine", [hex(submission.seed_block + 1 - treasury.w3.eth.block_number)])
    DataConsensusClient(treasury).draw(submission_id)

    worker = start_worker("curator", {
        "DEEPSHARD_PRIVATE_KEY": worker_key,
        "DEEPSHARD_RPC_URL": anvil.url,
        "DEEPSHARD_DEPLOYMENTS_DIR": str(deployments),
        "DEEPSHARD_STORE_DIR": str(store_dir),
        "DEEPSHARD_VOTES_DIR": str(votes_dir),
        "DEEPSHARD_CURATOR_MAX_WAIT": "2",  # anvil mines on demand: poll instead of waiting for blocks
    })
    first_step = curate.delay(submission_id).get(timeout=POLL_TIMEOUT)
    assert first_step["action"] == "committed" and first_step["scores"] == [25, 13, 25, 23, 15]
    for consensus in in_process:
        assert curate_once(consensus, store, submission_id).action == "committed"

    commit_deadline = informant.submission(submission_id).commit_deadline
    treasury.w3.provider.make_request("anvil_mine", [hex(commit_deadline + 1 - treasury.w3.eth.block_number)])
    seat = on_worker.seat_of(submission_id)
    wait_for(lambda: informant.submission(submission_id).revealed(seat), "revealed", worker)
    for consensus in in_process:
        assert curate_once(consensus, store, submission_id).action == "revealed"

    # Every seat revealed: the worker's next step finalizes and settles its seat.
    wait_for(lambda: informant.submission(submission_id).settled(seat), "settled its seat", worker)
    final = informant.submission(submission_id)
    assert final.status == "Rejected"
    # The task logs its result after the transaction lands: wait for each line rather than read the log once.
    for action in ("'committed'", "'revealed'", "'claimed'"):
        wait_for(lambda: f"'action': {action}" in worker.log(), f"logged {action}", worker)
    assert "Traceback" not in worker.log()
    vote_file = on_worker.votes.path(treasury.chain_id, on_worker.contract.address, submission_id,
                                     on_worker.chain.address)
    assert stat.S_IMODE(vote_file.stat().st_mode) == 0o600
    worker.stop()
