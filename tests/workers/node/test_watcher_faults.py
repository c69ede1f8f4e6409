"""The watcher against a node that misbehaves, on a real anvil (with a real HTTP proxy in front of it where the
node must refuse something) and real Redis (database 14):

  * a node that refuses a log range as too large ("query exceeds max block range 500"): the range shrinks and every
    event is still dispatched;
  * any other error of eth_getLogs: one line, backoff, and the loop goes on;
  * a reorg (`anvil_reorg`) that replaces scanned blocks: seen, and the new blocks scanned;
  * cursors of another chain under the same chain id: refused with one line, until `--reset-cursor`;
  * a keeper worker whose watcher thread died says so in its health.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from eth_account import Account
from netkit import TEST_REDIS_URL, deploy_net, wait_for
from test_watcher import Recorder

from workers.chain import ChainClient
from workers.chain.deployments import DEPLOYMENTS_DIR_ENV
from workers.chain.localnode import start_anvil
from workers.chain.module import cid_to_chain
from workers.node.registry import worker_health
from workers.node.watcher import ForeignCursor, Watcher, cursor_key, identity_key
from workers.storage import cid_of_bytes
from workers.tasks.delivery import FAILED_JOBS_KEY


class Proxy:
    """A JSON-RPC proxy in front of a node: forwards every request, except that `refuse(request)` may return a
    JSON-RPC error to answer instead."""

    def __init__(self, upstream: str, refuse):
        proxy = self
        self.refused: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = json.loads(body)
                error = refuse(request)
                if error is not None:
                    proxy.refused.append(request)
                    answer = json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error}).encode()
                else:
                    forward = urllib.request.Request(upstream, body, {"Content-Type": "application/json"})
                    with urllib.request.urlopen(forward, timeout=30) as response:
                        answer = response.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def span(request: dict) -> int:
    query = request["params"][0]
    return int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1


def test_a_node_refusing_large_log_ranges_makes_the_range_shrink_and_no_event_is_lost(net, redis_clean):
    (dataset,) = net.accept_datasets(1)  # six DataConsensus events in the last blocks
    first = net.block() - 1_200
    net.mine(700)  # more than 1,000 blocks between the start and the head

    def refuse(request):
        if request["method"] == "eth_getLogs" and span(request) > 500:
            return {"code": -32602, "message": "query exceeds max block range 500"}
        return None

    proxy = Proxy(net.url, refuse)
    try:
        chain = ChainClient(proxy.url, deployments_dir=net.deployments)
        record = Recorder()
        watcher = Watcher(chain, redis_clean, send=record, accounts=lambda role: [], start_block=max(first, 0))
        assert watcher.poll_once() >= 6
    finally:
        proxy.close()
    assert proxy.refused and watcher.max_range == 500
    names = [event.name for event, _ in watcher.history if event.args.get("id") == dataset]
    assert names[0] == "Submitted" and names[-1] == "Finalized"


def test_any_error_of_the_node_is_reported_and_retried_and_the_loop_goes_on(net, redis_clean):
    failures = {"left": 3}

    def refuse(request):
        if request["method"] == "eth_getLogs" and failures["left"] > 0:
            failures["left"] -= 1
            return {"code": -32603, "message": "internal error: upstream timed out"}
        return None

    proxy = Proxy(net.url, refuse)
    stop = threading.Event()
    errors: list[str] = []
    chain = ChainClient(proxy.url, deployments_dir=net.deployments)
    watcher = Watcher(chain, redis_clean, send=Recorder(), accounts=lambda role: [], start_block=net.block() + 1)
    loop = threading.Thread(
        target=watcher.run, args=(stop, 0.05), kwargs={"on_error": lambda m, w: errors.append(m), "backoff": 0.05}
    )
    try:
        loop.start()
        (dataset,) = net.accept_datasets(1)
        wait_for(lambda: any(e.name == "Finalized" and e.args["id"] == dataset for e, _ in watcher.history), "events")
        assert loop.is_alive()
    finally:
        stop.set()
        loop.join(timeout=60)
        proxy.close()
    assert len(errors) == 3
    assert (
        errors[0].startswith("the chain node at http://127.0.0.1:")
        and "internal error: upstream timed out" in errors[0]
    )


def test_a_reorg_of_scanned_blocks_is_seen_and_the_new_blocks_are_scanned(net, redis_clean, caplog):
    chain = ChainClient(net.url, deployments_dir=net.deployments)
    informant_client = net.account(dsh=20_000, role="INFORMANT", staked=10_000)
    consensus = chain.contract("DataConsensus")
    record = Recorder()
    watcher = Watcher(chain, redis_clean, send=record, accounts=lambda role: [], start_block=net.block() + 1)
    for _ in range(2):  # two scanned ranges: their ends' hashes are kept
        net.mine(3)
        watcher.poll_once()
    head = net.block()
    assert int(redis_clean.get(cursor_key(chain.chain_id, consensus.address))) == head + 1

    # The last two scanned blocks are replaced by two others, the first holding a dataset submission.
    cid = cid_to_chain(str(cid_of_bytes(f"reorg test {Account.create().address}".encode())))
    informant = Account.from_key(net.keys[informant_client.address])
    tx = consensus.functions.submit(cid, 200 * 10**18).build_transaction(
        {
            "from": informant.address,
            "nonce": chain.w3.eth.get_transaction_count(informant.address),
            "gas": 1_000_000,
            "chainId": chain.chain_id,
            **chain.fee_fields(),
        }
    )
    raw = informant.sign_transaction(tx).raw_transaction
    chain.w3.provider.make_request("anvil_reorg", [2, [["0x" + raw.hex(), 0]]])
    assert net.block() == head

    with caplog.at_level(logging.WARNING, logger="workers.node.watcher"):
        assert watcher.poll_once() == 1
    (event, queued), *_ = watcher.history
    assert event.name == "Submitted" and event.block == head - 1
    # Rescanned from just after the newest scanned block the chain still has (the first range's end).
    assert "reorg on chain" in caplog.text and f"from block {head - 2}" in caplog.text
    assert watcher.poll_once() == 0  # and the new blocks are now the ones recorded


def test_cursors_of_another_chain_are_refused_until_reset(net, redis_clean, tmp_path):
    chain = ChainClient(net.url, deployments_dir=net.deployments)
    Watcher(chain, redis_clean, send=Recorder(), accounts=lambda role: []).poll_once()  # this chain's cursors

    with start_anvil() as other_node:  # a restarted dev chain: the same chain id, another genesis
        other = deploy_net(other_node.url, tmp_path)
        other_chain = ChainClient(other_node.url, deployments_dir=other.deployments)
        assert other_chain.chain_id == chain.chain_id
        watcher = Watcher(other_chain, redis_clean, send=Recorder(), accounts=lambda role: [])
        with pytest.raises(ForeignCursor, match="made on another chain .*genesis"):
            watcher.poll_once()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DEEPSHARD_")},
            DEPLOYMENTS_DIR_ENV: str(other.deployments),
            "DEEPSHARD_REDIS_URL": TEST_REDIS_URL,
        }
        refused = subprocess.run(
            [sys.executable, "-m", "workers.cli", "watch", "--rpc", other_node.url],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.returncode == 1, refused.stderr
        assert "error: the watcher cursors stored in Redis for chain 31337 were made on another chain" in refused.stderr
        assert "deepshard watch --reset-cursor" in refused.stderr and "Traceback" not in refused.stderr

        # The old chain's job state under the same chain id and addresses; another contract's stays.
        rounds_address = other_chain.contract("TrainingRounds").address
        old_job = f"train_delta:{chain.chain_id}:{rounds_address}:1:0x{'ab' * 20}"
        unrelated = f"train_delta:{chain.chain_id}:0x{'cd' * 20}:1:0x{'ab' * 20}"
        for job in (old_job, unrelated):
            redis_clean.set(f"celery-task-meta-{job}", '{"status": "SUCCESS"}')
            redis_clean.set(f"deepshard:job:{job}", "1")
            redis_clean.hset(FAILED_JOBS_KEY, job, "{}")
        watcher.reset_cursors()
        assert not redis_clean.exists(f"celery-task-meta-{old_job}", f"deepshard:job:{old_job}")
        assert not redis_clean.hexists(FAILED_JOBS_KEY, old_job)
        assert redis_clean.exists(f"celery-task-meta-{unrelated}", f"deepshard:job:{unrelated}") == 2
        assert redis_clean.hexists(FAILED_JOBS_KEY, unrelated)
        watcher.poll_once()
        # A cursor stored before identities were, past the chain's head, is refused too.
        redis_clean.delete(identity_key(chain.chain_id))
        redis_clean.set(cursor_key(chain.chain_id, other_chain.contract("DataConsensus").address), 1_400)
        with pytest.raises(ForeignCursor, match="cursor is at block 1400, past this chain's head"):
            Watcher(other_chain, redis_clean, send=Recorder(), accounts=lambda role: []).poll_once()


def test_a_dead_watcher_thread_shows_in_the_keeper_workers_health(net, spawn, redis_clean, tmp_path):
    chain = ChainClient(net.url, deployments_dir=net.deployments)
    # A cursor the watcher must refuse: its thread dies.
    redis_clean.set(identity_key(chain.chain_id), json.dumps({"chain_id": chain.chain_id, "genesis": "0x" + "00" * 32}))
    keeper = net.account(dsh=0)
    worker = spawn(
        [sys.executable, "-m", "workers.cli", "worker", "--role", "keeper", "--rpc", net.url],
        {DEPLOYMENTS_DIR_ENV: str(net.deployments), "DEEPSHARD_PRIVATE_KEY": net.keys[keeper.address]},
        ready=" ready.",
        name="keeper",
    )
    field = f"keeper:{keeper.address}"
    wait_for(
        lambda: worker_health(redis_clean, chain.chain_id).get(field, {}).get("watcher", "").startswith("dead: "),
        "the worker's health to show its watcher dead",
        logs=[worker],
    )
    assert "made on another chain" in worker_health(redis_clean, chain.chain_id)[field]["watcher"]
    assert "the watcher thread died" in worker.log()
