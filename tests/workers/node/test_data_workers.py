"""The data consensus run by real `deepshard worker` processes, on a local anvil and real Redis (database 14): a
keeper worker (no stake; the watcher in its process) and a curator worker, while two other curators vote in this
process. Both catch up on start with what happened before they ran; the keeper draws each panel once its seed
block is mined, finalizes a vote as soon as every seat revealed or after the reveal window, and settles the seat
that stayed silent; the curator worker scores, commits, reveals and claims its seats on its own."""

from __future__ import annotations

import sys

import pytest
from netkit import GOOD_VOTE, Net, deploy_net, sample_datasets, wait_for

from workers.chain import DataConsensusParams
from workers.chain.deployments import DEPLOYMENTS_DIR_ENV
from workers.storage import open_store

#: A reveal window that the reveals and the workers' own transactions (each mines a block) cannot use up before
#: the keeper sees that every seat revealed.
PARAMS = DataConsensusParams(commit_window=12, reveal_window=40)


@pytest.fixture(scope="module")
def net(net_anvil, tmp_path_factory) -> Net:
    return deploy_net(net_anvil.url, tmp_path_factory.mktemp("net"), data_params=PARAMS)


def test_keeper_and_curator_workers_run_the_data_consensus(net, spawn, redis_clean, tmp_path):
    accepted = net.accept_datasets(1)[0]  # the curator pool, an informant, and a seat the worker never claimed
    informant, consensus = net.informant, net.consensus()
    store = open_store(store_dir=net.store_dir)
    datasets = sample_datasets(4)
    # Submitted before any worker runs: the keeper finds them when it starts.
    silent = informant.submit(datasets[1], 200 * 10**18, store).submission_id  # one seat will stay silent
    unanimous = informant.submit(datasets[2], 200 * 10**18, store).submission_id  # every seat will reveal
    env = {
        DEPLOYMENTS_DIR_ENV: str(net.deployments),
        "DEEPSHARD_STORE_DIR": str(net.store_dir),
        "DEEPSHARD_VOTES_DIR": str(tmp_path / "votes"),
        "DEEPSHARD_MAX_WAIT": "1",
    }

    def worker(role: str, address: str):
        return spawn(
            [sys.executable, "-m", "workers.cli", "worker", "--role", role, "--rpc", net.url],
            {**env, "DEEPSHARD_PRIVATE_KEY": net.keys[address]},
            ready=" ready.",
            name=role,
        )

    keeper_account = net.account(dsh=0)  # ETH for gas, no DSH, no stake
    keeper = worker("keeper", keeper_account.address)
    assert (
        f"queued rounds.keeper_step(current), consensus.keeper_step({silent}), consensus.keeper_step({unanimous})"
    ) in keeper.log()
    net.mine_to(max(consensus.submission(i).seed_block for i in (silent, unanimous)) + 1)
    wait_for(
        lambda: all(consensus.submission(i).status == "Voting" for i in (silent, unanimous)),
        "the keeper to draw both panels",
        logs=[keeper],
    )

    # A panel's 31 votes fall on some or all of the three curators (one draw = one vote): the roles follow the
    # draw. `quiet`, the seat of `silent` with the fewest votes (under half of them, so the rest make quorum),
    # never votes there; the worker's curator is another seated on both panels; the others vote everywhere.
    seat = {i: {c: consensus.seat_of(i, c.chain.address) for c in net.curators} for i in (accepted, silent, unanimous)}
    votes = dict(consensus.panel(silent))
    quiet = min((c for c in net.curators if seat[silent][c] is not None), key=lambda c: votes[c.chain.address])
    assert 2 * votes[quiet.chain.address] < sum(votes.values())
    on_worker = next(
        c for c in net.curators if c is not quiet and None not in (seat[silent][c], seat[unanimous][c])
    )  # fails only if two panels of 31 votes over three curators share no member but `quiet` (below 1e-4)
    others = [c for c in net.curators if c is not on_worker]

    # Drawn before the curator worker ran: it catches up on both panels, then on the seat it never claimed (votes
    # have deadlines, claims do not).
    curator = worker("curator", on_worker.chain.address)
    mine = [i for i in (silent, unanimous, accepted) if seat[i][on_worker] is not None]
    assert f"queued {', '.join(f'consensus.curate({i})' for i in mine)}" in curator.log()
    address = on_worker.chain.address
    wait_for(
        lambda: all(consensus.committed(consensus.submission(i), address) for i in (silent, unanimous)),
        "the curator worker to commit on both",
        logs=[curator],
    )
    voting = {i: [c for c in others if seat[i][c] is not None and not (i == silent and c is quiet)] for i in seat}
    for submission_id in (silent, unanimous):
        for member in voting[submission_id]:
            member.vote(submission_id, GOOD_VOTE)

    net.mine_to(max(consensus.submission(i).commit_deadline for i in (silent, unanimous)) + 1)
    for submission_id in (silent, unanimous):
        for member in voting[submission_id]:
            member.reveal(submission_id)
    wait_for(
        lambda: consensus.submission(unanimous).finalized,
        "the keeper to finalize the unanimous vote",
        logs=[keeper, curator],
    )
    (finalized,) = consensus.logs(consensus.FINALIZED, {"id": unanimous}, consensus.deploy_block(), net.block())
    assert finalized.block <= consensus.submission(unanimous).reveal_deadline  # without waiting for the deadline
    assert not consensus.submission(silent).finalized

    net.mine_to(consensus.submission(silent).reveal_deadline + 1)
    wait_for(
        lambda: consensus.submission(silent).settled(seat[silent][quiet]),
        "the keeper to finalize and settle the silent seat",
        logs=[keeper, curator],
    )
    wait_for(
        lambda: all(consensus.submission(i).settled(seat[i][on_worker]) for i in mine),
        "the curator worker to claim its seats",
        logs=[keeper, curator],
    )
    for submission_id in (silent, unanimous):
        submission = consensus.submission(submission_id)
        assert submission.status == "Accepted"
        for member in voting[submission_id]:
            assert not submission.settled(seat[submission_id][member])  # a revealed seat is its curator's to claim
    settled = consensus.logs(
        consensus.SETTLED, {"id": silent, "member": quiet.chain.address}, consensus.deploy_block(), net.block()
    )
    assert len(settled) == 1 and settled[0].args["penalty"] > 0 and settled[0].args["reward"] == 0
    for action in ("'drawn'", "'settled'"):
        wait_for(
            lambda action=action: f"'action': {action}" in keeper.log(), f"the keeper to log {action}", logs=[keeper]
        )
    # Finalizing is open to anyone and the curator worker, once revealed, races the keeper for it: who lands first
    # depends on scheduling, so only the outcome (both Accepted, above) is asserted here; the keeper finalizing on
    # its own is tests/workers/data/test_data_steps.py's.
    for action in ("'committed'", "'revealed'", "'claimed'"):
        wait_for(
            lambda action=action: f"'action': {action}" in curator.log(), f"the curator to log {action}", logs=[curator]
        )
    assert "Traceback" not in keeper.log() + curator.log()
