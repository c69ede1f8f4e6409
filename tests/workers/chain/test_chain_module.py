"""The module clients' base (`workers.chain.module`) on the session's anvil: bounded event scans, the shared names
of panel events, the wait for pending transactions, free-stake checks, the panel pool, phases and races."""

from __future__ import annotations

import threading

import pytest

from workers.chain import InvalidRequest, ReceiptTimeout, TransactionReverted, stake
from workers.chain import module as module_lib
from workers.chain.artifacts import load_artifact
from workers.chain.module import ModuleEvent, cid_from_chain, cid_to_chain, raced, window_phase
from workers.chain.units import WEI_PER_DSH
from workers.data.chain import DataConsensusClient
from workers.rounds.chain import TrainingRoundsClient
from workers.storage import cid_of_bytes


def test_window_phase_opens_a_window_only_when_it_is_open_now_and_next_block():
    commit, reveal = 10, 20  # deadlines: last blocks of the windows
    phases = {
        latest: window_phase(latest, commit, reveal, all_revealed=False, who="evaluator")
        for latest in (8, 9, 10, 11, 19, 20, 21)
    }
    assert phases == {
        8: "evaluator commit",
        9: "evaluator commit",
        10: "evaluator reveal opens next block",
        11: "evaluator reveal",
        19: "evaluator reveal",
        20: "finalize opens next block",
        21: "ready to finalize",
    }
    # Every seat revealed: finalize as soon as the commit window is over, not before.
    assert window_phase(10, commit, reveal, all_revealed=True) == "reveal opens next block"
    assert window_phase(11, commit, reveal, all_revealed=True) == "ready to finalize"


def test_both_clients_name_the_same_panel_events():
    # The panel events are declared once, in SortitionPanel.sol: both module clients read them by the same names,
    # and each name is one of the contract's events.
    panel = ("PANEL_DRAWN", "COMMITTED", "REVEALED", "SETTLED")
    for client in (DataConsensusClient, TrainingRoundsClient):
        abi_events = {entry["name"] for entry in load_artifact(client.CONTRACT).abi if entry["type"] == "event"}
        assert not hasattr(client, "PANEL_RESEEDED")  # an undrawn panel is never reseeded: nothing to watch
        assert [getattr(client, attribute).name for attribute in panel] == [
            "PanelDrawn",
            "Committed",
            "Revealed",
            "Settled",
        ]
        # Every event the client names is one of its contract's (DATA_FINALIZED is read from DataConsensus).
        named = {
            getattr(client, attribute).name
            for attribute in dir(client)
            if isinstance(getattr(client, attribute), ModuleEvent) and attribute != "DATA_FINALIZED"
        }
        assert named <= abi_events


def test_cids_round_trip_between_strings_and_the_contract_form():
    cid = str(cid_of_bytes(b'{"records":1}'))
    raw = cid_to_chain(cid)
    assert raw[:4] == bytes.fromhex("01551220") and len(raw) == 36
    assert cid_from_chain(raw) == cid
    with pytest.raises(InvalidRequest, match="'not-a-cid' is not a valid CID"):
        cid_to_chain("not-a-cid")


def test_event_scans_use_bounded_ranges(make_account, monkeypatch):
    curators = [DataConsensusClient(make_account().client) for _ in range(3)]
    joined = []
    for curator in curators:
        stake(curator.chain, "CURATOR", "1500")
        curator.join_pool(1_000 * WEI_PER_DSH)
        joined.append(curator.latest_block())
    reader = curators[0]
    requests: list[tuple[int, int]] = []
    real_get_logs = reader.chain.w3.eth.get_logs

    def counting_get_logs(params):
        requests.append((int(params["fromBlock"]), int(params["toBlock"])))
        return real_get_logs(params)

    monkeypatch.setattr(reader.chain.w3.eth, "get_logs", counting_get_logs)
    monkeypatch.setattr(module_lib, "LOG_RANGE", 2)
    start, end = joined[0] - 3, joined[-1]
    logs = reader.logs(reader.POOL_JOINED, {}, start, end)
    members = {curator.chain.address for curator in curators}
    assert [log.block for log in logs if log.args["member"] in members] == joined
    assert len(requests) == (end - start) // 2 + 1 and all(high - low <= 1 for low, high in requests)
    assert requests[0][0] == start and requests[-1][1] == end
    requests.clear()
    newest = reader.logs(
        reader.POOL_JOINED, {"member": curators[-1].chain.address}, start, end, first=True, newest_first=True
    )
    assert [log.block for log in newest] == [joined[-1]] and len(requests) == 1


def test_stake_and_pool_checks_refuse_before_sending(make_account):
    account = make_account(dsh=5_000)
    curator = DataConsensusClient(account.client)
    nonce = account.nonce()
    with pytest.raises(
        InvalidRequest,
        match=r"the pool bond of 1000 DSH exceeds the unlocked CURATOR stake .* "
        r"\(0 of 0 DSH\): stake more with `deepshard stake CURATOR AMOUNT`",
    ):
        curator.join_pool(1_000 * WEI_PER_DSH)
    with pytest.raises(InvalidRequest, match="below the minimum of 1000 DSH"):
        curator.join_pool(10 * WEI_PER_DSH)
    assert account.nonce() == nonce
    broke = make_account(dsh=0, eth=0)
    with pytest.raises(InvalidRequest, match="has no ETH to pay for gas"):
        DataConsensusClient(broke.client).require_free_stake("CURATOR", 0, "the pool bond")


def test_writes_wait_for_a_pending_transaction_first(make_account, treasury):
    account = make_account(dsh=1_000)
    client = DataConsensusClient(account.client)
    token = account.client.contract("DeepshardToken")
    treasury.w3.provider.make_request("evm_setAutomine", [False])
    try:
        account.client.transact(token.functions.transfer(treasury.address, 1), wait=False)
        assert client.inflight() == 1
        with pytest.raises(ReceiptTimeout, match="still pending"):
            client.settle_inflight(timeout=0.3)
        miner = threading.Timer(0.5, lambda: treasury.w3.provider.make_request("evm_mine", []))
        miner.start()
        client.settle_inflight(timeout=10)
        miner.join()
        assert client.inflight() == 0
    finally:
        treasury.w3.provider.make_request("evm_setAutomine", [True])


def test_raced_action_lost_to_someone_else_is_no_failure():
    def lost():
        raise TransactionReverted("reverted: AlreadySettled()", "AlreadySettled()")

    assert raced(lost, taken=lambda: True) is None
    with pytest.raises(TransactionReverted):
        raced(lost, taken=lambda: False)
    assert raced(lambda: "done", taken=lambda: False) == "done"
