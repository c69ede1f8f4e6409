"""Proof that an answer came from the registered weights: a TOPLOC-style commitment to the model's activations.

Scheme (after TOPLOC, Ong et al. 2025, arXiv 2501.16007, implemented here from the paper's description): the
generated tokens are cut into chunks of `CHUNK_TOKENS`; for each chunk the final-norm outputs that produced its
tokens ([tokens, hidden], fp32) are flattened and their `TOPK` largest-magnitude entries taken. Each value is
rounded to bfloat16 and its 16-bit pattern y_i is tied to its flat index x_i by a polynomial over GF(65521): the
smallest modulus m >= k under which the indices stay distinct is found, and P of degree k-1 is interpolated with
P(x_i mod m) = y_i. The chunk's encoding is m (2 bytes) followed by P's k coefficients (2 bytes each): 258 bytes
for k = 128, whatever the hidden size. The indices themselves are not sent: a verifier recomputes the
activations by one prefill of prompt + tokens, takes its own top-k, and evaluates P at its own indices; where its
indices or values differ from the prover's, P gives a different (effectively random) 16-bit pattern there.

Thresholds are ours, calibrated for the fp32 CPU path (`benchmarks/serve`, tests/workers/serve): an honest
prefill reproduces the decode loop's activations to ~1e-6, so nearly every bf16 pattern matches exactly, while
the paper's GPU thresholds (tolerating bf16 arithmetic) also accept a neighbouring version. A chunk passes when
at most `MAX_MISMATCH_FRACTION` of its k values differ.

Every proof is bound to the weights hash, the request id, the prompt and generated token ids and the sampling
parameters by a sha256 `commitment` over its canonical JSON. `replay` offers the stricter check: with the
proof's seed and sampling parameters the verifier regenerates the tokens and requires them equal.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .engine import Engine, SamplingParams

SCHEME = "deepshard-toploc-1"
CHUNK_TOKENS = 32
TOPK = 128
#: The largest prime below 2**16: every finite bfloat16 bit pattern (< 0xFF80) is a field element.
PRIME = 65521
#: Calibrated on tiny and SmolLM2 fp32 CPU (1 vs 2 threads, decode loop vs prefill): honest chunks show at most a
#: couple of bf16 rounding flips out of 128 (0 measured), a 1e-3 rank-8 delta flips 9-13, bf16 weights 35-55.
MAX_MISMATCH_FRACTION = 0.03


class ProofError(ValueError):
    """A proof that cannot be read (malformed fields, bad encoding, wrong scheme)."""


# ---------------------------------------------------------------- polynomial over GF(PRIME)


def interpolate(xs: list[int], ys: list[int]) -> list[int]:
    """Coefficients (lowest degree first) of the polynomial of degree < len(xs) through (xs[i], ys[i]) over
    GF(PRIME), by Newton's divided differences; O(k^2). `xs` must be distinct mod PRIME."""
    k = len(xs)
    coef = [y % PRIME for y in ys]
    for j in range(1, k):
        for i in range(k - 1, j - 1, -1):
            coef[i] = (coef[i] - coef[i - 1]) * pow(xs[i] - xs[i - j], -1, PRIME) % PRIME
    # Newton form -> monomial form: P = c0 + (x - x0)(c1 + (x - x1)(c2 + ...)).
    poly = [coef[k - 1]]
    for i in range(k - 2, -1, -1):
        shifted = [0] + poly
        for j, value in enumerate(poly):
            shifted[j] = (shifted[j] - xs[i] * value) % PRIME
        shifted[0] = (shifted[0] + coef[i]) % PRIME
        poly = shifted
    return poly


def evaluate(poly: list[int], x: int) -> int:
    """P(x) over GF(PRIME), by Horner's rule."""
    value = 0
    for c in reversed(poly):
        value = (value * x + c) % PRIME
    return value


# ---------------------------------------------------------------- one chunk


def _topk(activations: torch.Tensor, k: int) -> tuple[list[int], list[int]]:
    """Flat indices of the k largest |values| (largest first) and their bfloat16 bit patterns."""
    flat = activations.reshape(-1).float()
    indices = torch.topk(flat.abs(), min(k, flat.numel())).indices
    bits = flat[indices].to(torch.bfloat16).view(torch.int16).to(torch.int32) & 0xFFFF
    return [int(i) for i in indices], [int(b) for b in bits]


def encode_chunk(activations: torch.Tensor, k: int = TOPK) -> bytes:
    """The 2 + 2k byte encoding of one chunk's activations ([tokens, hidden]): modulus m, then P's coefficients."""
    indices, bits = _topk(activations, k)
    modulus = len(indices)
    while len({i % modulus for i in indices}) < len(indices):
        modulus += 1
    if modulus >= PRIME:
        raise ProofError("no modulus below 65521 separates the top-k indices")
    poly = interpolate([i % modulus for i in indices], bits)
    return modulus.to_bytes(2, "big") + b"".join(c.to_bytes(2, "big") for c in poly)


@dataclass(frozen=True)
class ChunkCheck:
    """A chunk compared: how many of the verifier's top-k values the prover's polynomial does not reproduce."""

    topk: int
    mismatches: int

    @property
    def passed(self) -> bool:
        return self.mismatches <= MAX_MISMATCH_FRACTION * self.topk


def check_chunk(activations: torch.Tensor, encoded: bytes) -> ChunkCheck:
    """Compares recomputed activations ([tokens, hidden]) with a chunk's encoding. ProofError if malformed."""
    if len(encoded) < 4 or len(encoded) % 2:
        raise ProofError(f"a chunk encoding has {len(encoded)} bytes; expected 2 + 2k")
    modulus = int.from_bytes(encoded[:2], "big")
    poly = [int.from_bytes(encoded[i : i + 2], "big") for i in range(2, len(encoded), 2)]
    if modulus < 1:
        raise ProofError("a chunk's modulus is 0")
    indices, bits = _topk(activations, len(poly))
    if len(indices) != len(poly):
        raise ProofError(f"a chunk commits to {len(poly)} values but the activations hold {len(indices)}")
    mismatches = sum(evaluate(poly, i % modulus) != b for i, b in zip(indices, bits, strict=True))
    return ChunkCheck(len(poly), mismatches)


# ---------------------------------------------------------------- the proof of one answer


@dataclass
class Proof:
    """The proof attached to one choice of a response (`deepshard_proof`), as JSON-ready fields.

    `chunks` are base64 encodings (`encode_chunk`) of the activations behind tokens [32c, 32c + 32);
    `sampling` holds temperature, top_p and seed (the choice's own seed, for `replay`)."""

    weights_hash: str
    model: str
    request_id: str
    prompt_token_ids: list[int]
    token_ids: list[int]
    sampling: dict[str, Any]
    chunks: list[str]
    scheme: str = SCHEME
    chunk_tokens: int = CHUNK_TOKENS
    topk: int = TOPK
    commitment: str = field(default="")

    def body(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("commitment")
        return data

    def digest(self) -> str:
        """sha256 (0x-hex) of the canonical JSON (sorted keys, no spaces) of every field but `commitment`."""
        canonical = json.dumps(self.body(), sort_keys=True, separators=(",", ":")).encode()
        return "0x" + hashlib.sha256(canonical).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "commitment": self.digest()}

    @classmethod
    def from_json(cls, data: Any) -> Proof:
        """ProofError naming the field when `data` is not a proof of this scheme."""
        if not isinstance(data, dict):
            raise ProofError("a proof is a JSON object")
        if data.get("scheme") != SCHEME:
            raise ProofError(f"unknown proof scheme {data.get('scheme')!r}; expected {SCHEME}")
        expected = {"weights_hash": str, "model": str, "request_id": str, "commitment": str, "sampling": dict}
        for name, kind in expected.items():
            if not isinstance(data.get(name), kind):
                raise ProofError(f"proof field {name!r} is missing or not a {kind.__name__}")
        for name in ("prompt_token_ids", "token_ids", "chunks"):
            value = data.get(name)
            item = str if name == "chunks" else int
            if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
                raise ProofError(f"proof field {name!r} must be a list of {item.__name__}")
        if data.get("chunk_tokens") != CHUNK_TOKENS or data.get("topk") != TOPK:
            raise ProofError(f"this verifier checks chunks of {CHUNK_TOKENS} tokens with top-{TOPK}")
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def build_proof(
    engine: Engine,
    model_id: str,
    request_id: str,
    prompt_ids: list[int],
    token_ids: list[int],
    hidden: list[torch.Tensor],
    params: SamplingParams,
) -> Proof:
    """The proof of one generated sequence; `hidden` holds the final-norm output that produced each token."""
    stacked = torch.stack(hidden) if hidden else torch.zeros(0)
    chunks = [
        base64.b64encode(encode_chunk(stacked[start : start + CHUNK_TOKENS])).decode()
        for start in range(0, len(token_ids), CHUNK_TOKENS)
    ]
    sampling = {"temperature": params.temperature, "top_p": params.top_p, "seed": params.seed}
    proof = Proof(engine.weights_hash, model_id, request_id, list(prompt_ids), list(token_ids), sampling, chunks)
    proof.commitment = proof.digest()
    return proof


@dataclass
class Verdict:
    """The outcome of `verify`: accepted or not, why not, and each chunk's comparison."""

    accepted: bool
    reasons: list[str]
    chunks: list[ChunkCheck]

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "reasons": self.reasons,
            "chunks": [{"topk": c.topk, "mismatches": c.mismatches, "passed": c.passed} for c in self.chunks],
        }


def verify(engine: Engine, proof: Proof, prompt_ids: list[int] | None = None, *, replay: bool = False) -> Verdict:
    """Checks `proof` against `engine`'s weights by one prefill of prompt + generated tokens.

    Rejects, before any model work, token ids outside the vocabulary and prompt + tokens longer than the context;
    then when the commitment does not match the fields, the proof names other weights, `prompt_ids` (the
    client's own prompt, when given) differ from the proof's, a chunk count is wrong, or any chunk has more than
    `MAX_MISMATCH_FRACTION` mismatching values. With `replay`, also regenerates the tokens with the proof's
    seed and sampling parameters and requires them identical. ProofError if a chunk cannot be decoded."""
    reasons: list[str] = []
    if proof.commitment != proof.digest():
        reasons.append("the commitment does not match the proof's fields")
    if proof.weights_hash != engine.weights_hash:
        reasons.append(f"the proof names weights {proof.weights_hash}, the verifier holds {engine.weights_hash}")
    if prompt_ids is not None and list(prompt_ids) != proof.prompt_token_ids:
        reasons.append("the proof's prompt differs from the request's")
    tokens, prompt = proof.token_ids, proof.prompt_token_ids
    # Bounds first: a hostile proof's ids index the embedding table, and its length sets the prefill's time and
    # memory (20,000 tokens on a 512-token model took 25.8 s and 843 MB before this check).
    outside = [t for t in prompt + tokens if not 0 <= t < engine.vocab_size]
    if outside:
        reasons.append(f"token id {outside[0]} is outside the vocabulary (0 to {engine.vocab_size - 1})")
    if len(prompt) + len(tokens) > engine.context_length:
        reasons.append(
            f"{len(prompt)} prompt + {len(tokens)} generated tokens exceed the model's context of "
            f"{engine.context_length} tokens"
        )
    expected_chunks = -(-len(tokens) // CHUNK_TOKENS)
    if len(proof.chunks) != expected_chunks:
        reasons.append(f"{len(proof.chunks)} chunks for {len(tokens)} tokens; expected {expected_chunks}")
    if not prompt or reasons:
        return Verdict(False, reasons or ["the proof has no prompt"], [])
    checks: list[ChunkCheck] = []
    if tokens:
        hidden = engine.prefill_hidden(prompt + tokens[:-1])[len(prompt) - 1 :]
        for number, encoded in enumerate(proof.chunks):
            try:
                blob = base64.b64decode(encoded, validate=True)
            except ValueError:
                raise ProofError(f"chunk {number} is not base64") from None
            start = number * CHUNK_TOKENS
            checks.append(check_chunk(hidden[start : start + CHUNK_TOKENS], blob))
        failed = [n for n, check in enumerate(checks) if not check.passed]
        if failed:
            reasons.append(f"activations differ in chunks {failed}")
    if replay and not reasons:
        sampling = proof.sampling
        params = SamplingParams(
            max_tokens=len(tokens),
            temperature=float(sampling.get("temperature", 1.0)),
            top_p=float(sampling.get("top_p", 1.0)),
            seed=int(sampling.get("seed", 0)),
        )
        if engine.generate(prompt, params).token_ids != tokens:
            reasons.append("replay with the proof's seed gives other tokens")
    return Verdict(not reasons, reasons, checks)
