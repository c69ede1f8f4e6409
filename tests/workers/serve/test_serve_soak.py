"""A bounded soak of the inference node: 50 streaming clients at once against one `deepshard serve --dev --model
tiny` on 127.0.0.1 (the default queue of 16). Every client gets either a complete stream (a finish_reason, then
the end of the stream) or a 429, and the server's resident memory once they are done stays within a generous
multiple of its memory after a warm-up: each admitted request's KV cache is freed with it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from servekit import API_KEY, MODEL_ID, Server, start_node

from workers.chain.localnode import free_port

CLIENTS = 50
MAX_TOKENS = 8
#: Generous, so that allocator noise never fails it: it catches requests whose state outlives them at the scale of
#: the queue's worth of streams per pass (the bound must hold after each of the passes), not a few KiB.
RSS_BOUND = 1.5
PASSES = 3


@pytest.fixture(scope="module")
def soak_server(tmp_path_factory):
    port = free_port()
    child = start_node(
        "soak inference node", port, ["--api-key", API_KEY, "--threads", "1"], tmp_path_factory.mktemp("soak")
    )
    try:
        yield Server(f"http://127.0.0.1:{port}", port, child)
    finally:
        child.stop()


def stream_once(server: Server, number: int) -> str:
    """'complete' when the stream ended after a finish_reason, '429' when refused; anything else fails."""
    client = server.client()
    try:
        stream = client.chat.completions.create(
            model=MODEL_ID,
            messages=[{"role": "user", "content": f"client {number}"}],
            max_tokens=MAX_TOKENS,
            seed=number,
            stream=True,
        )
        finish = [choice.finish_reason for chunk in stream for choice in chunk.choices if choice.finish_reason]
    except openai.RateLimitError:
        return "429"
    assert finish in (["length"], ["stop"]), finish
    return "complete"


def rss(server: Server) -> int:
    """The server's resident set, bytes (VmRSS in /proc: Linux, where the suite runs)."""
    status = Path(f"/proc/{server.child.process.pid}/status").read_text()
    (line,) = [row for row in status.splitlines() if row.startswith("VmRSS:")]
    return int(line.split()[1]) * 1024


def test_fifty_streaming_clients_get_a_stream_or_a_429_and_memory_stays_bounded(soak_server):
    for number in range(4):  # warm-up: every code path the soak takes has run once
        assert stream_once(soak_server, number) == "complete"
    soak_server.wait_idle()
    warm = rss(soak_server)
    for _ in range(PASSES):
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            outcomes = list(pool.map(lambda n: stream_once(soak_server, n), range(CLIENTS)))
        assert set(outcomes) <= {"complete", "429"} and "complete" in outcomes
        soak_server.wait_idle()
        after = rss(soak_server)
        print(
            f"RSS {warm / 2**20:.1f} MiB after warm-up, {after / 2**20:.1f} MiB after a pass "
            f"({outcomes.count('429')} of {CLIENTS} refused with 429)"
        )
        assert after <= RSS_BOUND * warm, f"RSS grew from {warm} to {after} bytes"
