"""Deterministic LoRA training: (base model, texts, TrainingSpec, round seed) -> adapter file + manifest.

Everything that decides the result comes from the spec and the round seed, so honest trainers with the
same instruction set and torch thread count produce byte-identical adapters (another thread count or
CPU changes float rounding: bytes differ, at ~1e-5 relative on `tiny`, the fingerprint hardly moves):
- LoRA init: A ~ U(-1/sqrt(in), 1/sqrt(in)) (peft's kaiming-uniform default), B = 0, drawn on the CPU
  from a torch.Generator seeded with sub-seed "lora-init", module by module in sorted name order. Drawing
  on the CPU makes the init independent of the device and of peft's internal init code.
- Data: the texts are shuffled (sub-seed "text-order"), tokenised without special tokens, each followed
  by EOS, and packed into one token stream cut into blocks of `sequence_length` tokens (the last block
  wraps to the start of the stream). Each epoch visits the blocks in a fresh order (sub-seed
  "batch-order", epoch); a step takes the next `batch_size` blocks of that schedule.
- LoRA dropout, when the spec asks for it, draws from torch's RNG seeded with sub-seed "dropout" inside a
  forked RNG state (the caller's RNG is left untouched).
- AdamW with fixed betas/eps and the per-parameter (non-foreach) implementation, plain fp32 loop.
Sub-seeds are sha256 derivations of the round seed (workers.ml.seeds), never Python's `hash`.

The frozen base weights are cast to `spec.dtype` for training; the LoRA parameters (and the saved
adapter) stay float32.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

from workers.ml.delta import (
    DeltaManifest,
    LoraDelta,
    data_digest,
    expected_lora_shapes,
    serialize_delta,
)
from workers.ml.models import BaseModel, configure_determinism
from workers.ml.progress import progress
from workers.ml.seeds import HashRng, derive_int_seed, derive_seed, seed_hex
from workers.ml.spec import SpecError, TrainingSpec

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class TrainingError(ValueError):
    """Training cannot start: spec and base model disagree, or there is no data."""


@dataclass
class TrainingResult:
    adapter: bytes  # the safetensors file, manifest embedded
    manifest: DeltaManifest
    delta: LoraDelta
    losses: list[float]
    seconds: float
    tokens: int

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("inf")

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.adapter)
        return path


def training_blocks(tokenizer, texts: Sequence[str], spec: TrainingSpec, round_seed) -> torch.Tensor:
    """The packed (n_blocks, sequence_length) token blocks, in the seeded text order."""
    if not texts:
        raise TrainingError("no training texts")
    order = HashRng(derive_seed(round_seed, "text-order")).permutation(len(texts))
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for index in order:
        stream.extend(tokenizer(texts[index], add_special_tokens=False)["input_ids"])
        stream.append(eos)
    length = spec.sequence_length
    n_blocks = math.ceil(len(stream) / length)
    # Wrap around so no token is dropped and a corpus shorter than one block still fills it.
    flat = [stream[i % len(stream)] for i in range(n_blocks * length)]
    return torch.tensor(flat, dtype=torch.long).view(n_blocks, length)


def batch_schedule(n_blocks: int, spec: TrainingSpec, round_seed) -> list[list[int]]:
    """Block indices of every step: epochs of seeded permutations, consumed batch_size at a time."""
    needed = spec.steps * spec.batch_size
    order: list[int] = []
    epoch = 0
    while len(order) < needed:
        order.extend(HashRng(derive_seed(round_seed, "batch-order", epoch)).permutation(n_blocks))
        epoch += 1
    return [order[s * spec.batch_size : (s + 1) * spec.batch_size] for s in range(spec.steps)]


def train_lora(base: BaseModel, texts: Sequence[str], spec: TrainingSpec, round_seed) -> TrainingResult:
    """Fine-tune a LoRA on `texts` under `spec` and the round seed (int, bytes32 or 0x-hex)."""
    configure_determinism()
    if spec.base_model != base.name:
        raise TrainingError(f"spec is for base model {spec.base_model!r}, got {base.name!r}")
    seed = seed_hex(round_seed)
    try:
        shapes = expected_lora_shapes(spec, base.model)
    except SpecError as error:
        raise TrainingError(str(error)) from None
    device = base.device
    blocks = training_blocks(base.tokenizer, texts, spec, seed)
    schedule = batch_schedule(len(blocks), spec, seed)

    rng_devices = [device.index or 0] if device.type == "cuda" else []
    # Everything random below (peft's own init, dropout) runs on a forked RNG: the caller's is untouched.
    with torch.random.fork_rng(devices=rng_devices):
        peft_model = peft_model_for(base.model, spec)
        _seeded_lora_init(peft_model, derive_int_seed(seed, "lora-init"))
        trainable = [p for _, p in peft_model.named_parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            trainable,
            lr=spec.learning_rate,
            betas=ADAM_BETAS,
            eps=ADAM_EPS,
            weight_decay=spec.weight_decay,
            foreach=False,
        )
        losses: list[float] = []
        started = time.perf_counter()
        # Seeded right before the loop, so dropout masks don't depend on how much RNG peft's init drew.
        torch.manual_seed(derive_int_seed(seed, "dropout"))
        peft_model.train()
        for step_blocks in progress(schedule, len(schedule), f"training {spec.base_model}", unit="step"):
            batch = blocks[step_blocks].to(device)
            logits = peft_model(input_ids=batch, use_cache=False).logits
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    seconds = time.perf_counter() - started

    state = get_peft_model_state_dict(peft_model)
    tensors = {name: t.detach().to("cpu", torch.float32).contiguous().clone() for name, t in sorted(state.items())}
    if {n: tuple(t.shape) for n, t in tensors.items()} != shapes:
        raise RuntimeError("peft produced LoRA tensors that differ from the expected names/shapes")
    manifest = DeltaManifest(
        spec_hash=spec.spec_hash_hex(),
        base_model=base.name,
        base_weights_hash=base.weights_hash,
        round_seed=seed,
        data_digest=data_digest(texts),
        tensors=tuple((name, tuple(t.shape)) for name, t in tensors.items()),
        final_loss=losses[-1],
    )
    return TrainingResult(
        adapter=serialize_delta(tensors, manifest),
        manifest=manifest,
        delta=LoraDelta(spec=spec, manifest=manifest, tensors=tensors),
        losses=losses,
        seconds=seconds,
        tokens=spec.steps * spec.batch_size * spec.sequence_length,
    )


def lora_config(spec: TrainingSpec) -> LoraConfig:
    """The peft configuration a spec stands for (plain LoRA, no bias, no rsLoRA)."""
    return LoraConfig(
        r=spec.lora_rank,
        lora_alpha=spec.lora_alpha,
        lora_dropout=spec.lora_dropout,
        target_modules=list(spec.target_modules),
        bias="none",
    )


def peft_model_for(model: torch.nn.Module, spec: TrainingSpec) -> torch.nn.Module:
    """A peft LoRA model wrapping a copy of `model` (get_peft_model rewires in place; the input stays usable)."""
    model_copy = copy.deepcopy(model).to(dtype=getattr(torch, spec.dtype))
    with warnings.catch_warnings():
        # peft 0.21 calls a transformers 5 property that is deprecated; nothing for us to act on.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model_copy, lora_config(spec))


def _seeded_lora_init(peft_model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator(device="cpu").manual_seed(seed)
    modules = sorted(
        ((name, m) for name, m in peft_model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A),
        key=lambda item: item[0],
    )
    with torch.no_grad():
        for _, module in modules:
            a = module.lora_A["default"].weight
            bound = 1.0 / math.sqrt(a.shape[1])
            a.copy_(torch.empty(a.shape, dtype=torch.float32).uniform_(-bound, bound, generator=generator))
            module.lora_B["default"].weight.zero_()
