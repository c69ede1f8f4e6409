"""The TrainingSpec: every hyperparameter that decides a round's LoRA result, and its on-chain hash.

The canonical form is compact JSON with sorted keys, UTF-8, no whitespace, with a `format` tag so a later
version of the schema can never collide with this one. Floats are written as Python's `repr` (the
shortest decimal that round-trips to the same IEEE double), ints as ints; float fields are coerced to
float first, so `lora_alpha=16` and `lora_alpha=16.0` are one spec. Target modules are a set: they are
sorted and deduplicated. `spec_hash` is keccak256 of the canonical bytes, the bytes32 a contract can
recompute with `keccak256(bytes(json))`.

This module does not import torch: the chain side can hash specs without loading ML libraries.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from eth_hash.auto import keccak

from ..safejson import JsonRejected, parse_json

SPEC_FORMAT = "deepshard/training-spec/v1"
SUPPORTED_DTYPES = ("float32", "bfloat16", "float16")

_FLOAT_FIELDS = ("lora_alpha", "lora_dropout", "learning_rate", "weight_decay")
_INT_FIELDS = ("lora_rank", "steps", "batch_size", "sequence_length")


class SpecError(ValueError):
    """A TrainingSpec with a missing, mistyped or out-of-range field."""


@dataclass(frozen=True)
class TrainingSpec:
    base_model: str
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("k_proj", "o_proj", "q_proj", "v_proj")
    learning_rate: float = 1e-3
    steps: int = 20
    batch_size: int = 4
    sequence_length: int = 64
    dtype: str = "float32"
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.base_model, str) or not self.base_model:
            raise SpecError("base_model must be a non-empty model name")
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SpecError(f"{name} must be a positive int, got {value!r}")
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SpecError(f"{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.lora_alpha <= 0 or self.learning_rate <= 0:
            raise SpecError("lora_alpha and learning_rate must be positive")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise SpecError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.weight_decay < 0:
            raise SpecError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.dtype not in SUPPORTED_DTYPES:
            raise SpecError(f"dtype must be one of {', '.join(SUPPORTED_DTYPES)}, got {self.dtype!r}")
        targets = self.target_modules
        if isinstance(targets, str) or not targets or not all(isinstance(t, str) and t for t in targets):
            raise SpecError("target_modules must be a non-empty list of module names")
        object.__setattr__(self, "target_modules", tuple(sorted(set(targets))))

    @property
    def scaling(self) -> float:
        """The LoRA update is W + (alpha / r) * B @ A."""
        return self.lora_alpha / self.lora_rank

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        data["format"] = SPEC_FORMAT
        return data

    def canonical_json(self) -> bytes:
        return canonical_json(self.to_dict())

    def spec_hash(self) -> bytes:
        """keccak256 of the canonical JSON: the bytes32 recorded on-chain."""
        return keccak(self.canonical_json())

    def spec_hash_hex(self) -> str:
        return "0x" + self.spec_hash().hex()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingSpec:
        data = dict(data)
        tag = data.pop("format", SPEC_FORMAT)
        if tag != SPEC_FORMAT:
            raise SpecError(f"unsupported spec format {tag!r}, expected {SPEC_FORMAT!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown spec fields: {', '.join(unknown)}")
        if "target_modules" in data and isinstance(data["target_modules"], list):
            data["target_modules"] = tuple(data["target_modules"])
        return cls(**data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> TrainingSpec:
        try:
            # A spec is one flat object with one list (target_modules): 2 levels.
            data = parse_json(raw, what="spec", max_depth=2)
        except JsonRejected as error:
            raise SpecError(str(error)) from None
        if not isinstance(data, dict):
            raise SpecError("spec JSON must be an object")
        return cls.from_dict(data)


def canonical_json(data: Any) -> bytes:
    """The project's canonical JSON bytes (sorted keys, no whitespace, UTF-8, floats as repr)."""
    # json.dumps writes floats with repr (shortest round-trip) and ints as ints; NaN/Inf are refused.
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
