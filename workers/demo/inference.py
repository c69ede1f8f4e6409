"""The demo's last step: the inference node serves the version the round registered.

It serves the folder the inference account bought and assembled (workers.demo.weights), as `deepshard serve
--weights` does (workers.serve.cli: the registry check of the folder's lineage and weights hash, then the OpenAI API
on uvicorn, in a thread of this process on a free port of 127.0.0.1), asks it
one chat question through the `openai` client, checks the answer's proof as `deepshard verify-response` does (one
prefill with the folder's weights) and stops the server.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TextIO

from ..chain import ChainClient
from ..chain.localnode import free_port
from ..serve.cli import load_engine, node_app
from ..serve.proof import Proof, verify
from ..serve.registry import shard_manifest_files
from ..storage import ContentStore
from .local import DemoFailed

QUESTION = "What does the network train?"
#: One proof chunk (32 tokens): the answer stays short and the step adds seconds, not minutes.
MAX_TOKENS = 32
SEED = 1
#: Bound on the server's start and stop (a loaded 2-core machine), never a speed target.
WAIT_SECONDS = 120


def serve_new_version(chain: ChainClient, version: int, model: str, folder: Path, out: TextIO, store: ContentStore):
    """Serves `version` (trained from the base model `model`) from `folder` (its loader files checked against the
    shard manifest in `store`), asks it `QUESTION` and verifies the
    answer's proof; prints each step to `out`. Returns the summary `{"version", "answer", "proof_verified"}`.
    DemoFailed if the server does not start or stop within `WAIT_SECONDS`; the registry check's VersionRefused (a
    ChainError) if the folder is not the registered version."""
    import openai
    import uvicorn

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    say(f"\nInference node: serving the bought version {version} from {folder.name}/")

    app, served = node_app(
        load_engine(model, folder),
        chain,
        version,
        model,
        folder,
        published_files=lambda version, cid: shard_manifest_files(store, version, cid),
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="deepshard-demo-serve", daemon=True)
    thread.start()
    try:
        _wait(lambda: server.started or not thread.is_alive(), "the inference node to start")
        if not server.started:
            raise DemoFailed("the inference node did not start")
        say(f"  serving {served.model_id} (weights {served.weights_hash[:18]}…) on http://127.0.0.1:{port}/v1")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="demo", max_retries=0)
        messages = [{"role": "user", "content": QUESTION}]
        response = client.chat.completions.create(
            model=served.model_id,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=MAX_TOKENS,
            seed=SEED,
        )
    finally:
        server.should_exit = True
        _wait(lambda: not thread.is_alive(), "the inference node to stop")
    answer = response.choices[0].message.content or ""
    proof = Proof.from_json((response.choices[0].model_extra or {}).get("deepshard_proof"))
    checker = load_engine(model, folder)  # what `deepshard verify-response --weights` loads
    verdict = verify(checker, proof, checker.chat_prompt(messages))
    say(f"  user: {QUESTION}")
    say(f"  {served.model_id}: {answer!r}")
    say("  proof verified" if verdict.accepted else "  proof REJECTED: " + "; ".join(verdict.reasons))
    say("  inference node stopped")
    if not verdict.accepted:
        raise DemoFailed(f"the answer's proof was rejected: {'; '.join(verdict.reasons)}")
    return {"version": version, "answer": answer, "proof_verified": verdict.accepted}


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise DemoFailed(f"gave up waiting for {what} after {WAIT_SECONDS} s")
        time.sleep(0.05)
