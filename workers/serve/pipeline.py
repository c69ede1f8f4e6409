"""Pipeline-parallel generation: one version split by layers over several processes with `torch.distributed`.

Each stage process loads the model and keeps only its layer range (its layers re-indexed from 0, so its own
`DynamicCache` holds just those layers' keys and values); the first stage also keeps the token embedding, the
last the final norm and LM head. Per token, stage s receives the hidden states [1, new tokens, hidden] from
stage s-1 (a shape message, then the tensor; `dist.send`/`dist.recv`), runs its layers on its own cache and
sends on; the last stage picks the token (workers.serve.engine.choose_token, the server's own sampling) and
sends its id back to the first. The `torch.distributed.pipelining` schedules run whole microbatches and do not
decode with a cache, hence plain send/recv. gloo on CPU (NCCL would do on GPUs); stages on several hosts join
the same process group through `master_addr:master_port`, and each token then pays one network round trip per
stage boundary.

`generate_pipelined` runs the stages as local processes for one request (a test and a benchmark use it);
`deepshard serve --stages S` serves through the same split (workers.serve.stages).
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import DynamicCache

from ..ml.models import load_base_model
from .engine import SamplingParams, choose_token

STOP = -1


@dataclass
class PipelineResult:
    """What the last stage produced: the token ids, each step's logits (fp32, [vocab]) and the parameters (count
    of elements) each stage held."""

    token_ids: list[int]
    logits: list[torch.Tensor]
    stage_parameters: list[int]
    #: Seconds of the generation loop on the last stage, from the first prefill to the last token (process start,
    #: model loading and the process group's setup excluded).
    loop_seconds: float


def layer_ranges(layers: int, stages: int) -> list[range]:
    """Contiguous, near-equal layer ranges, one per stage; ValueError if there are more stages than layers."""
    if not 1 <= stages <= layers:
        raise ValueError(f"cannot split {layers} layers into {stages} stages")
    bounds = [round(i * layers / stages) for i in range(stages + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(stages)]


def stage_model(model_name: str, stage: int, stages: int) -> Any:
    """The model (a transformers causal LM) reduced to stage `stage`'s layers (and embedding / norm + head at the
    ends)."""
    return split_stage(load_base_model(model_name, "cpu").model, stage, stages)


def split_stage(full: Any, stage: int, stages: int) -> Any:
    """Reduces the loaded causal LM `full`, in place, to stage `stage`'s layers (and embedding / norm + head at
    the ends); returns it. ValueError if it has fewer layers than `stages`."""
    inner = full.model
    keep = layer_ranges(len(inner.layers), stages)[stage]
    inner.layers = torch.nn.ModuleList(inner.layers[i] for i in keep)
    for index, layer in enumerate(inner.layers):
        layer.self_attn.layer_idx = index  # the stage's own cache counts its layers from 0
    config = copy.deepcopy(inner.config)
    config.num_hidden_layers = len(keep)
    if getattr(config, "layer_types", None):
        config.layer_types = [config.layer_types[i] for i in keep]
    inner.config = full.config = config
    for layer in inner.layers:
        layer.self_attn.config = config
    if stage != 0:
        inner.embed_tokens = torch.nn.Identity()  # later stages receive hidden states, never token ids
    if stage != stages - 1:
        inner.norm = torch.nn.Identity()
        full.lm_head = torch.nn.Identity()
    return full


def _send(tensor: torch.Tensor, to: int) -> None:
    dist.send(torch.tensor([tensor.shape[1]], dtype=torch.long), to)
    dist.send(tensor.contiguous(), to)


def _receive(hidden_size: int, source: int) -> torch.Tensor:
    length = torch.zeros(1, dtype=torch.long)
    dist.recv(length, source)
    tensor = torch.zeros(1, int(length), hidden_size)
    dist.recv(tensor, source)
    return tensor


@torch.inference_mode()
def _stage_main(
    rank: int, stages: int, model_name: str, port: int, prompt_ids: list[int], params: SamplingParams, out: str
) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=stages)
    try:
        model = stage_model(model_name, rank, stages)
        inner = model.model
        cache_config = inner.config
        cache = DynamicCache(config=cache_config)
        hidden_size = int(cache_config.hidden_size)
        eos = cache_config.eos_token_id
        eos_ids = {int(i) for i in (eos if isinstance(eos, list) else [eos]) if i is not None}
        parameters = sum(p.numel() for p in model.parameters())
        last = stages - 1
        generator = torch.Generator().manual_seed(params.seed)
        token_ids: list[int] = []
        logits_seen: list[torch.Tensor] = []
        feed = list(prompt_ids)
        dist.barrier()  # every stage loaded: the loop's clock starts together
        started = time.perf_counter()
        while True:
            if rank == 0:
                hidden = inner(input_ids=torch.tensor([feed]), cache=cache, use_cache=True).last_hidden_state
            else:
                hidden = _receive(hidden_size, rank - 1)
                if hidden.shape[1] == 0:  # the stop message, passed along
                    if rank != last:
                        _send(hidden, rank + 1)
                    break
                if rank != last:
                    hidden = inner(inputs_embeds=hidden, cache=cache, use_cache=True).last_hidden_state
            if rank != last:
                _send(hidden, rank + 1)
                token = torch.zeros(1, dtype=torch.long)
                if rank == 0:
                    dist.recv(token, last)
                    if int(token) == STOP:
                        _send(torch.zeros(1, 0, hidden_size), 1)
                        break
                    feed = [int(token)]
                continue
            logits = model(inputs_embeds=hidden, cache=cache, use_cache=True, logits_to_keep=1).logits[0, -1].float()
            token_id, _, _ = choose_token(logits, params, generator)
            token_ids.append(token_id)
            logits_seen.append(logits.clone())
            done = token_id in eos_ids or len(token_ids) >= params.max_tokens
            dist.send(torch.tensor([STOP if done else token_id], dtype=torch.long), 0)
        loop_seconds = time.perf_counter() - started
        counts = torch.tensor([parameters], dtype=torch.long)
        gathered = [torch.zeros(1, dtype=torch.long) for _ in range(stages)]
        dist.all_gather(gathered, counts)
        if rank == last:
            # safetensors plus JSON metadata, never pickle: the parent reads this file back.
            facts = {"token_ids": token_ids, "parameters": [int(g) for g in gathered], "loop_seconds": loop_seconds}
            logits_table = torch.stack(logits_seen) if logits_seen else torch.zeros(0)
            save_file({"logits": logits_table.contiguous()}, out, metadata={"result": json.dumps(facts)})
    finally:
        dist.destroy_process_group()


def generate_pipelined(
    model_name: str, prompt_ids: list[int], params: SamplingParams, *, stages: int = 2, port: int
) -> PipelineResult:
    """Generates with the model split into `stages` local processes (gloo on 127.0.0.1:`port`)."""
    if stages < 2:
        raise ValueError("a pipeline needs at least 2 stages")
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "result.safetensors")
        mp.spawn(_stage_main, args=(stages, model_name, port, list(prompt_ids), params, out), nprocs=stages, join=True)
        with safe_open(out, framework="pt") as handle:
            facts = json.loads(handle.metadata()["result"])
            logits = list(handle.get_tensor("logits"))
    return PipelineResult(facts["token_ids"], logits, facts["parameters"], facts["loop_seconds"])
