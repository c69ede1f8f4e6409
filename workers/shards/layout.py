"""Cutting a version's full weights into shards by layer ranges, and putting them back together.

A version's state dict (what `model.state_dict()` returns: base + merged deltas, the dict `weights_hash` hashes)
is cut, in this order, into: shard 0 `embed` (every tensor outside the decoder layers whose name contains
"embed"), then one `layers` shard per `layers_per_shard` consecutive decoder layers (names `...layers.<i>.`),
then `head` (every other tensor: the final norm, lm_head). Empty parts are left out. Tied weights (several names
on one storage, such as SmolLM2's lm_head and embed_tokens) are stored once, under the name of the earliest
shard; the others are listed as aliases and restored on assembly, so `weights_hash` sees the same dict.

Each shard's plaintext is a safetensors file (no pickle anywhere) of its tensors. The public files a loader
needs besides the weights (config, generation config, tokenizer) travel with the manifest, unencrypted:
they are the base model's, not the version's secret.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from workers.ml.models import state_dict_hash

from .crypto import MAX_PLAINTEXT_BYTES
from .errors import ShardError, ShardRejected
from .manifest import EMBED, HEAD, LAYERS, PARTS, PUBLIC_FILE, TensorInfo

DEFAULT_LAYERS_PER_SHARD = 4
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
# torch dtype <-> the safetensors header's dtype code.
DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


@dataclass(frozen=True)
class Shard:
    """Shard `index` of a version: its part (embed, layers, head), its decoder layer range (first, last inclusive;
    None outside `layers`), its tensors and its plaintext (safetensors bytes)."""

    index: int
    part: str
    layers: tuple[int, int] | None
    tensors: tuple[TensorInfo, ...]
    plaintext: bytes = field(repr=False)

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.plaintext).digest()


@dataclass(frozen=True)
class ShardedVersion:
    """A version cut into shards: the registry's weights hash, the shards in index order, the tied-weight aliases
    (alias, stored name) and the public files (name -> bytes)."""

    weights_hash: str
    shards: tuple[Shard, ...]
    aliases: tuple[tuple[str, str], ...]
    files: Mapping[str, bytes]


def _position(name: str, layers_per_shard: int) -> tuple[str, int]:
    """(part, layer group) of a tensor name."""
    match = _LAYER.search(name)
    if match:
        return LAYERS, int(match.group(1)) // layers_per_shard
    return (EMBED if "embed" in name else HEAD), 0


def _order(part: str, group: int) -> tuple[int, int]:
    return PARTS.index(part), group


def shard_state_dict(
    state: Mapping[str, torch.Tensor], files: Mapping[str, bytes], *, layers_per_shard: int = DEFAULT_LAYERS_PER_SHARD
) -> ShardedVersion:
    """Cut a state dict (as `model.state_dict()` returns it) into shards, see the module docstring.

    Args: `files`: the public loader files (name -> bytes), names matching PUBLIC_FILE; `layers_per_shard` >= 1.
    Raises ShardError for a bad file name, an unsupported dtype or a shard of 2^31 bytes or more."""
    if layers_per_shard < 1:
        raise ShardError(f"layers_per_shard must be >= 1, got {layers_per_shard}")
    for name in files:
        if not PUBLIC_FILE.fullmatch(name):
            raise ShardError(f"{name!r} is not a loader file a version may carry (config, tokenizer files)")
    for name, tensor in state.items():
        if tensor.dtype not in DTYPES:
            raise ShardError(f"tensor {name} has dtype {tensor.dtype}, which shards do not carry")
    weights = state_dict_hash(state)
    # Tied weights: one entry per storage view, kept under the name of the earliest (part, group, name).
    ranked = sorted(state, key=lambda name: (_order(*_position(name, layers_per_shard)), name))
    kept: dict[tuple, str] = {}
    aliases = []
    for name in ranked:
        tensor = state[name]
        view = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.shape,
                tensor.stride(), tensor.dtype)  # fmt: skip
        if view in kept:
            aliases.append((name, kept[view]))
        else:
            kept[view] = name
    groups: dict[tuple[str, int], list[str]] = {}
    for name in kept.values():
        groups.setdefault(_position(name, layers_per_shard), []).append(name)
    shards = []
    for index, (part, group) in enumerate(sorted(groups, key=lambda key: _order(*key))):
        names = sorted(groups[part, group])
        tensors = {name: state[name].detach().to("cpu").contiguous() for name in names}
        plaintext = safetensors_save(tensors)
        if len(plaintext) > MAX_PLAINTEXT_BYTES:
            raise ShardError(f"shard {index} is {len(plaintext):,} bytes: use fewer layers per shard")
        layers = None
        if part == LAYERS:
            numbers = [int(_LAYER.search(name).group(1)) for name in names]  # type: ignore[union-attr]
            layers = (min(numbers), max(numbers))
        infos = tuple(TensorInfo(name, DTYPES[tensors[name].dtype], tuple(tensors[name].shape)) for name in names)
        shards.append(Shard(index, part, layers, infos, plaintext))
    return ShardedVersion(weights, tuple(shards), tuple(sorted(aliases)), dict(files))


def loader_files(folder: str | Path) -> dict[str, bytes]:
    """The public loader files (config, tokenizer) found in a saved model folder, name -> bytes."""
    return {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir()) if PUBLIC_FILE.fullmatch(path.name)}


#: The weights files of a saved model folder `shard_version` reads (a single file, or an index of several).
SAFETENSORS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def shard_version(
    source: torch.nn.Module | str | Path, tokenizer=None, *, layers_per_shard: int = DEFAULT_LAYERS_PER_SHARD
) -> ShardedVersion:
    """Cut a version into shards, with its loader files.

    `source`: a transformers model (with its `tokenizer`), or a saved model folder (loaded in fp32, the precision
    of the registry's weights hash, with its config and tokenizer files). A folder's weights are read from
    safetensors only: a pickle checkpoint (pytorch_model.bin) runs code when loaded, so a folder without
    safetensors weights is refused. Raises ShardError as `shard_state_dict`, and naming the folder when it holds
    no safetensors weights or does not load.
    """
    with tempfile.TemporaryDirectory(prefix="deepshard-shard-") as scratch:
        if isinstance(source, (str, Path)):
            from transformers import AutoModelForCausalLM

            folder = Path(source)
            if not any((folder / name).is_file() for name in SAFETENSORS_WEIGHTS):
                raise ShardError(
                    f"{folder} holds no safetensors weights ({' or '.join(SAFETENSORS_WEIGHTS)}); pickle checkpoints "
                    "such as pytorch_model.bin are refused"
                )
            try:
                model: Any = AutoModelForCausalLM.from_pretrained(
                    folder, dtype=torch.float32, local_files_only=True, use_safetensors=True
                )
            except (OSError, ValueError) as exc:  # transformers' refusals: a malformed config, missing files
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ShardError(f"cannot load the model folder {folder}: {first}") from None
        else:
            model, folder = source, Path(scratch)
            model.config.save_pretrained(folder)
            if getattr(model, "generation_config", None) is not None:
                model.generation_config.save_pretrained(folder)
            if tokenizer is not None:
                tokenizer.save_pretrained(folder)
        files = loader_files(folder)
    return shard_state_dict(model.state_dict(), files, layers_per_shard=layers_per_shard)


def load_shard(shard: int, plaintext: bytes, expected: tuple[TensorInfo, ...]) -> dict[str, torch.Tensor]:
    """The tensors of a shard's plaintext, checked to be exactly `expected` (names, dtypes, shapes).

    Raises ShardRejected naming the shard when the bytes are not safetensors or hold other tensors."""
    try:
        tensors = safetensors_load(plaintext)
    except Exception as exc:  # safetensors raises its own SafetensorError (and ValueError) on bad headers
        raise ShardRejected(f"shard {shard}: the plaintext is not a safetensors file ({exc})") from None
    found = tuple(
        sorted(
            (name, DTYPES.get(tensor.dtype, str(tensor.dtype)), tuple(tensor.shape)) for name, tensor in tensors.items()
        )
    )
    wanted = tuple(sorted((info.name, info.dtype, info.shape) for info in expected))
    if found != wanted:
        raise ShardRejected(f"shard {shard}: its tensors are not the ones the manifest lists")
    return tensors
