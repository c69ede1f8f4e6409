"""`deepshard serve --stages S`: the HTTP server generates through a pipeline of S processes (workers.serve.pipeline's
layer split, over `torch.distributed` with gloo on 127.0.0.1).

The server process is stage 0: it keeps the tokenizer, the embedding and the first layer range, samples every
token itself (the request's own generator, as in one process) and holds stage 0's KV cache in each `Sequence`.
Stages 1..S-1 are child processes, each loading the model and keeping only its layer range and, per sequence, its
own `DynamicCache` (keyed by a number the server gives each sequence). Per step the server sends a header
`(FORWARD, key, new tokens)` and the hidden states to stage 1, which passes them on; the last stage holds the final
norm and LM head, so it computes the proof's final-norm output and the logits and sends both back to the server.
When a sequence is garbage-collected (finished, or its client gone) the server sends `(RELEASE, key, 0)` before
its next step, and each stage drops that cache. `close` sends `(STOP, 0, 0)` and joins the children.

Only built-in base models (`--dev`) are split this way; `prefill_hidden` (the verifier's prefill) is not offered
by a pipelined engine: verify with `deepshard verify-response`, in one process.
"""

from __future__ import annotations

import itertools
import os
import weakref
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from transformers import DynamicCache

from ..ml.models import load_base_model
from .engine import Engine, SamplingParams, Sequence
from .pipeline import split_stage

FORWARD, RELEASE, STOP = 0, 1, 2
#: How long the stages wait for each other to join (loading the model included) before giving up, instead of
#: torch's default of 30 minutes when a stage process died while loading.
JOIN_TIMEOUT = timedelta(minutes=5)
#: A process group's timeout also bounds every `recv` (gloo): an idle node's stages wait on the next request, so
#: the serving group they talk in has none to speak of.
IDLE_TIMEOUT = timedelta(days=3650)


def _serving_group(rank: int, stages: int, port: int) -> Any:
    """Joins the stages (within JOIN_TIMEOUT) and returns the group they serve in (IDLE_TIMEOUT)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=stages, timeout=JOIN_TIMEOUT)
    return dist.new_group(ranks=list(range(stages)), timeout=IDLE_TIMEOUT)


def _send_header(op: int, key: int, length: int, to: int, group: Any) -> None:
    dist.send(torch.tensor([op, key, length], dtype=torch.long), to, group=group)


def _receive_header(source: int, group: Any) -> tuple[int, int, int]:
    header = torch.zeros(3, dtype=torch.long)
    dist.recv(header, source, group=group)
    op, key, length = (int(v) for v in header)
    return op, key, length


class PipelineEngine(Engine):
    """An `Engine` whose forward passes run through `stages` processes. `port`: the process group's on
    127.0.0.1. Raises ValueError if the model has fewer layers than `stages`."""

    def __init__(self, model_name: str, stages: int, port: int, threads: int | None = None):
        base = load_base_model(model_name, "cpu")  # weights_hash: of the whole model, before the split
        super().__init__(base)
        split_stage(self.model, 0, stages)
        self.hidden_size = int(self.model.config.hidden_size)
        self.stages = stages
        self._keys = itertools.count(1)
        self._released: list[int] = []
        context = mp.get_context("spawn")
        self._children = [
            context.Process(target=_stage_main, args=(rank, stages, model_name, port, threads), daemon=True)
            for rank in range(1, stages)
        ]
        for child in self._children:
            child.start()
        self._group = _serving_group(0, stages, port)

    def start(self, prompt_ids: list[int], params: SamplingParams) -> Sequence:
        sequence = super().start(prompt_ids, params)
        key = next(self._keys)
        sequence.cache.deepshard_key = key
        weakref.finalize(sequence.cache, self._released.append, key)  # list.append: safe from any thread
        return sequence

    @torch.inference_mode()
    def forward(self, token_ids: list[int], cache: DynamicCache) -> tuple[torch.Tensor, torch.Tensor]:
        """As `Engine.forward`: the last position's logits (fp32, [vocab]) and final-norm output (fp32,
        [hidden]), computed by the last stage."""
        while self._released:
            _send_header(RELEASE, self._released.pop(), 0, 1, self._group)
        ids = torch.tensor([token_ids], dtype=torch.long)
        hidden = self.model.model(input_ids=ids, cache=cache, use_cache=True).last_hidden_state
        _send_header(FORWARD, cache.deepshard_key, hidden.shape[1], 1, self._group)
        dist.send(hidden.contiguous(), 1, group=self._group)
        logits = torch.zeros(self.vocab_size)
        final = torch.zeros(self.hidden_size)
        dist.recv(logits, self.stages - 1, group=self._group)
        dist.recv(final, self.stages - 1, group=self._group)
        return logits, final

    def prefill_hidden(self, token_ids: list[int]) -> torch.Tensor:
        raise NotImplementedError("a pipelined engine serves; verify answers with a single-process engine")

    def close(self) -> None:
        """Stops the stage processes and leaves the process group."""
        super().close()
        if dist.is_initialized():
            _send_header(STOP, 0, 0, 1, self._group)
            for child in self._children:
                child.join()
            dist.destroy_process_group()


@torch.inference_mode()
def _stage_main(rank: int, stages: int, model_name: str, port: int, threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
    group = _serving_group(rank, stages, port)
    try:
        model: Any = split_stage(load_base_model(model_name, "cpu").model, rank, stages)
        inner = model.model
        hidden_size = int(inner.config.hidden_size)
        last = rank == stages - 1
        caches: dict[int, DynamicCache] = {}
        while True:
            op, key, length = _receive_header(rank - 1, group)
            if not last:
                _send_header(op, key, length, rank + 1, group)
            if op == STOP:
                break
            if op == RELEASE:
                caches.pop(key, None)
                continue
            hidden = torch.zeros(1, length, hidden_size)
            dist.recv(hidden, rank - 1, group=group)
            cache = caches.setdefault(key, DynamicCache(config=inner.config))
            hidden = inner(inputs_embeds=hidden, cache=cache, use_cache=True).last_hidden_state
            if not last:
                dist.send(hidden.contiguous(), rank + 1, group=group)
                continue
            final = hidden[:, -1:]  # the last stage's output is the final norm's (model.norm ends the stack)
            logits = model.lm_head(final)[0, -1].float().contiguous()
            dist.send(logits, 0, group=group)
            dist.send(final[0, -1].float().contiguous(), 0, group=group)
    finally:
        dist.destroy_process_group()
