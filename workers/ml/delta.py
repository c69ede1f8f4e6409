"""LoRA deltas: the adapter file format, its manifest, and loading untrusted deltas safely.

A delta is one safetensors file holding only the LoRA tensors, named as peft saves them
(`base_model.model.<module>.lora_A.weight`, `(r, in_features)`, and `.lora_B.weight`,
`(out_features, r)`, float32), with one metadata entry, `deepshard.manifest`: the canonical JSON of the
DeltaManifest (spec hash, base model name and weights hash, round seed, data digest, tensor names and
shapes, final loss). One metadata key only, because safetensors keeps metadata in a hash map whose order
is not fixed; the tensor header itself is written in a fixed order.

Deltas arrive from untrusted trainers. `load_delta` never unpickles anything (safetensors only, no
`torch.load`) and checks, before returning anything: the size limit, the 8-byte header length, the header
JSON, the manifest (spec hash, base model, base weights hash), the exact tensor names, dtypes, shapes and
byte ranges expected from the spec and base model, and that every value is finite. Any failure raises
`DeltaRejected` naming the problem.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from workers.ml.spec import SpecError, TrainingSpec, canonical_json
from workers.safejson import FileTooLarge, JsonRejected, parse_json, read_limited

DELTA_FORMAT = "deepshard/lora-delta/v1"
MANIFEST_KEY = "deepshard.manifest"
PEFT_PREFIX = "base_model.model."
LORA_DTYPE = torch.float32
_SAFETENSORS_DTYPE = "F32"
# Generous for a 30-layer model with every projection targeted (~100 kB of header), small enough
# that a hostile header cannot make us parse megabytes of JSON.
MAX_HEADER_BYTES = 1 << 20
# Nesting (levels) a valid header needs: {name: {"shape": [dims]}} and {"__metadata__": {key: str}} are 3; the
# manifest inside its string is {"tensors": [[name, [dims]]]}, 4. Deeper JSON is refused before it is parsed.
HEADER_MAX_DEPTH = 3
MANIFEST_MAX_DEPTH = 4
_HEX32 = re.compile(r"0x[0-9a-f]{64}")


class DeltaRejected(ValueError):
    """An untrusted delta failed validation; the message says what is wrong with it."""


@dataclass(frozen=True)
class DeltaManifest:
    spec_hash: str
    base_model: str
    base_weights_hash: str
    round_seed: str
    data_digest: str
    tensors: tuple[tuple[str, tuple[int, ...]], ...]
    final_loss: float
    format: str = DELTA_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "spec_hash": self.spec_hash,
            "base_model": self.base_model,
            "base_weights_hash": self.base_weights_hash,
            "round_seed": self.round_seed,
            "data_digest": self.data_digest,
            "tensors": [[name, list(shape)] for name, shape in self.tensors],
            "final_loss": self.final_loss,
        }

    def canonical_json(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_json(cls, raw: str | bytes) -> DeltaManifest:
        """Parse and strictly validate a manifest; raises DeltaRejected."""
        try:
            data = parse_json(raw, what="delta manifest", max_depth=MANIFEST_MAX_DEPTH)
        except JsonRejected as error:
            raise DeltaRejected(str(error)) from None
        expected = {
            "format",
            "spec_hash",
            "base_model",
            "base_weights_hash",
            "round_seed",
            "data_digest",
            "tensors",
            "final_loss",
        }
        if not isinstance(data, dict) or set(data) != expected:
            raise DeltaRejected(f"delta manifest must be an object with exactly the fields {sorted(expected)}")
        if data["format"] != DELTA_FORMAT:
            raise DeltaRejected(f"delta manifest format {data['format']!r} is not {DELTA_FORMAT!r}")
        for key in ("spec_hash", "base_weights_hash", "round_seed", "data_digest"):
            if not isinstance(data[key], str) or not _HEX32.fullmatch(data[key]):
                raise DeltaRejected(f"delta manifest field {key} is not a 0x-prefixed lowercase bytes32")
        if not isinstance(data["base_model"], str):
            raise DeltaRejected("delta manifest field base_model is not a string")
        loss = data["final_loss"]
        if isinstance(loss, bool) or not isinstance(loss, (int, float)) or not math.isfinite(loss):
            raise DeltaRejected("delta manifest field final_loss is not a finite number")
        tensors = []
        for entry in data["tensors"] if isinstance(data["tensors"], list) else [None]:
            if not (
                isinstance(entry, list)
                and len(entry) == 2
                and isinstance(entry[0], str)
                and isinstance(entry[1], list)
                and all(_is_dim(d) for d in entry[1])
            ):
                raise DeltaRejected("delta manifest field tensors must be a list of [name, [dims...]]")
            tensors.append((entry[0], tuple(entry[1])))
        return cls(
            spec_hash=data["spec_hash"],
            base_model=data["base_model"],
            base_weights_hash=data["base_weights_hash"],
            round_seed=data["round_seed"],
            data_digest=data["data_digest"],
            tensors=tuple(tensors),
            final_loss=float(loss),
        )


@dataclass(frozen=True)
class LoraDelta:
    """A validated delta in memory: tensors on the CPU, keyed by their peft names."""

    spec: TrainingSpec
    manifest: DeltaManifest
    tensors: dict[str, torch.Tensor] = field(repr=False)

    def modules(self) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
        """(module path in the base model, A, B) for every adapted Linear, in sorted order."""
        for name in sorted(self.tensors):
            if name.endswith(".lora_A.weight"):
                module = name[len(PEFT_PREFIX) : -len(".lora_A.weight")]
                yield module, self.tensors[name], self.tensors[name.replace(".lora_A.", ".lora_B.")]

    def to_bytes(self) -> bytes:
        return serialize_delta(self.tensors, self.manifest)

    def with_tensors(self, tensors: dict[str, torch.Tensor]) -> LoraDelta:
        """The same manifest over other tensor values (used to build noised/scaled variants in studies)."""
        return LoraDelta(spec=self.spec, manifest=self.manifest, tensors=tensors)


def data_digest(texts: Sequence[str]) -> str:
    """0x-hex sha256 of the canonical JSON list of the training texts, in the order given."""
    return "0x" + hashlib.sha256(canonical_json(list(texts))).hexdigest()


def target_linear_modules(spec: TrainingSpec, model: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    """The Linear layers the spec's target_modules select, by peft's rule (exact name or `.name` suffix)."""
    selected: dict[str, torch.nn.Linear] = {}
    for path, module in model.named_modules():
        if not any(path == target or path.endswith("." + target) for target in spec.target_modules):
            continue
        if not isinstance(module, torch.nn.Linear):
            raise SpecError(f"target module {path} is a {type(module).__name__}, only Linear layers are supported")
        selected[path] = module
    missing = [t for t in spec.target_modules if not any(p == t or p.endswith("." + t) for p in selected)]
    if missing:
        raise SpecError(f"target modules {missing} match no layer of base model {spec.base_model}")
    return dict(sorted(selected.items()))


def expected_lora_shapes(spec: TrainingSpec, model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a valid delta for this spec on this base model."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path, linear in target_linear_modules(spec, model).items():
        shapes[f"{PEFT_PREFIX}{path}.lora_A.weight"] = (spec.lora_rank, linear.in_features)
        shapes[f"{PEFT_PREFIX}{path}.lora_B.weight"] = (linear.out_features, spec.lora_rank)
    return dict(sorted(shapes.items()))


def serialize_delta(tensors: dict[str, torch.Tensor], manifest: DeltaManifest) -> bytes:
    ordered = {name: tensors[name].detach().to("cpu", LORA_DTYPE).contiguous() for name in sorted(tensors)}
    return safetensors_save(ordered, metadata={MANIFEST_KEY: manifest.canonical_json().decode()})


def load_delta(source: bytes | str | os.PathLike, spec: TrainingSpec, base, max_bytes: int | None = None) -> LoraDelta:
    """Validate an untrusted delta (bytes or a file path) against the spec and base model; see module doc.

    `base` is a workers.ml.models.BaseModel (its name, weights hash and layer shapes are checked).
    `max_bytes` defaults to the exact tensor size of a valid delta plus the header allowance.
    """
    shapes = expected_lora_shapes(spec, base.model)
    payload_bytes = sum(math.prod(shape) * 4 for shape in shapes.values())
    limit = max_bytes if max_bytes is not None else payload_bytes + 8 + MAX_HEADER_BYTES
    data = _read_limited(source, limit)

    if len(data) < 8:
        raise DeltaRejected("not a safetensors file: shorter than its 8-byte header length")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > MAX_HEADER_BYTES:
        raise DeltaRejected(
            f"not a safetensors file: header length {header_len} is over the {MAX_HEADER_BYTES}-byte limit"
        )
    if 8 + header_len > len(data):
        raise DeltaRejected("not a safetensors file: header length runs past the end of the file")
    header = _parse_header(data[8 : 8 + header_len])

    metadata = header.pop("__metadata__", None)
    if not isinstance(metadata, dict) or MANIFEST_KEY not in metadata or not isinstance(metadata[MANIFEST_KEY], str):
        raise DeltaRejected(f"delta has no {MANIFEST_KEY} entry in its safetensors metadata")
    manifest = DeltaManifest.from_json(metadata[MANIFEST_KEY])
    _check_manifest(manifest, spec, base)

    unknown = sorted(set(header) - set(shapes))
    if unknown:
        raise DeltaRejected(f"delta has {len(unknown)} unknown tensor name(s), e.g. {unknown[0]!r}")
    missing = sorted(set(shapes) - set(header))
    if missing:
        raise DeltaRejected(f"delta lacks {len(missing)} expected tensor(s), e.g. {missing[0]!r}")
    _check_entries(header, shapes, len(data) - 8 - header_len)
    if dict(manifest.tensors) != shapes or [n for n, _ in manifest.tensors] != sorted(shapes):
        raise DeltaRejected("delta manifest's tensor list does not match the tensors in the file")

    try:
        tensors = safetensors_load(data)
    except Exception as error:  # the library's own checks; its message names the problem
        raise DeltaRejected(f"safetensors could not read the delta: {error}") from None
    for name in sorted(tensors):
        if not bool(torch.isfinite(tensors[name]).all()):
            raise DeltaRejected(f"delta tensor {name} contains NaN or Inf values")
    return LoraDelta(spec=spec, manifest=manifest, tensors=dict(sorted(tensors.items())))


def _is_dim(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _read_limited(source: bytes | str | os.PathLike, limit: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > limit:
            raise DeltaRejected(f"delta is {len(data)} bytes, over the limit of {limit} bytes")
        return data
    path = Path(source)
    size = path.stat().st_size
    if size > limit:
        raise DeltaRejected(f"delta file {path.name} is {size} bytes, over the limit of {limit} bytes")
    try:  # the file may grow between stat and read
        return read_limited(path, what="delta file", max_bytes=limit)
    except FileTooLarge:
        raise DeltaRejected(f"delta file {path.name} is over the limit of {limit} bytes") from None


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        header = parse_json(raw, what="safetensors header", max_depth=HEADER_MAX_DEPTH, max_bytes=MAX_HEADER_BYTES)
    except JsonRejected as error:
        raise DeltaRejected(f"not a safetensors file: {error}") from None
    if not isinstance(header, dict):
        raise DeltaRejected("not a safetensors file: header is not a JSON object")
    return header


def _check_manifest(manifest: DeltaManifest, spec: TrainingSpec, base) -> None:
    if manifest.spec_hash != spec.spec_hash_hex():
        raise DeltaRejected(f"delta was trained for spec {manifest.spec_hash}, expected {spec.spec_hash_hex()}")
    if manifest.base_model != spec.base_model or manifest.base_model != base.name:
        raise DeltaRejected(f"delta is for base model {manifest.base_model!r}, expected {base.name!r}")
    if manifest.base_weights_hash != base.weights_hash:
        raise DeltaRejected(
            f"delta was trained on base weights {manifest.base_weights_hash}, expected {base.weights_hash}"
        )


def _check_entries(header: dict[str, Any], shapes: dict[str, tuple[int, ...]], buffer_len: int) -> None:
    spans = []
    for name in sorted(header):
        entry = header[name]
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise DeltaRejected(f"delta tensor {name} has a malformed header entry")
        if entry["dtype"] != _SAFETENSORS_DTYPE:
            raise DeltaRejected(f"delta tensor {name} has dtype {entry['dtype']}, expected {_SAFETENSORS_DTYPE}")
        shape = entry["shape"]
        if not isinstance(shape, list) or tuple(shape) != shapes[name]:
            raise DeltaRejected(f"delta tensor {name} has shape {shape}, expected {list(shapes[name])}")
        offsets = entry["data_offsets"]
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_dim(o) for o in offsets)):
            raise DeltaRejected(f"delta tensor {name} has malformed data_offsets")
        if offsets[1] - offsets[0] != math.prod(shapes[name]) * 4:
            raise DeltaRejected(f"delta tensor {name}'s byte range does not match its shape")
        spans.append((offsets[0], offsets[1], name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise DeltaRejected(f"delta tensor {name}'s byte range overlaps or leaves a gap")
        position = end
    if position != buffer_len:
        raise DeltaRejected(f"delta's tensor data is {buffer_len} bytes, the header describes {position}")
