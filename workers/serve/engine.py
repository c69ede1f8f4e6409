"""Token generation on our own forward loop: one prefill, then one decode step per token on a per-sequence KV cache
(`transformers.DynamicCache`), sampling from a per-request `torch.Generator`, the final norm's output of every
step kept for the proof (`workers.serve.proof`).

Why not `model.generate`: the proof needs the hidden state that produced each token, the server must be able to
drop a sequence between two tokens (a client gone), and the stop strings are held back as text, not tokens.
`benchmarks/serve` measures this loop against `model.generate` on the same weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from transformers import DynamicCache

from ..ml.models import BaseModel

#: The chat template used when a tokenizer has none (the `tiny` model): ChatML, SmolLM2's own format.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens. `temperature` 0 is greedy; `top_p` keeps the smallest set of tokens whose probability
    reaches it (nucleus sampling, Holtzman et al. 2019); `seed` seeds the request's own generator, so the same
    seed, prompt and weights give the same tokens; `top_logprobs` (0-20) alternatives are reported per token when
    `logprobs` is set."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass
class TokenStep:
    """One generated token: its id, its log-probability under the model (natural log, before temperature) and,
    when asked, the `top_logprobs` most likely (id, logprob) pairs."""

    token_id: int
    logprob: float
    top: list[tuple[int, float]]
    is_eos: bool


@dataclass
class Sequence:
    """A sequence being generated: its cache, generator and what it produced so far. Not thread-safe: the server
    runs every step of every sequence on one executor thread."""

    engine: Engine
    prompt_ids: list[int]
    params: SamplingParams
    generator: torch.Generator
    cache: DynamicCache
    token_ids: list[int] = field(default_factory=list)
    #: The final norm's output at the position that produced each generated token, fp32, one row per token.
    hidden: list[torch.Tensor] = field(default_factory=list)
    finished: bool = False

    def step(self) -> TokenStep | None:
        """Generates the next token (the first call runs the prefill); None once `max_tokens` or an end-of-text
        token was reached."""
        if self.finished or len(self.token_ids) >= self.params.max_tokens:
            self.finished = True
            return None
        feed = self.prompt_ids if not self.token_ids else self.token_ids[-1:]
        logits, hidden = self.engine.forward(feed, self.cache)
        self.hidden.append(hidden)
        step = self.engine.pick(logits, self.params, self.generator)
        self.token_ids.append(step.token_id)
        if step.is_eos or len(self.token_ids) >= self.params.max_tokens:
            self.finished = True
        return step


class FinalNormCapture:
    """A forward hook on the model's final norm that keeps its last output: the hidden states TOPLOC commits to."""

    def __init__(self, model: torch.nn.Module):
        self.output: torch.Tensor | None = None
        self._handle = final_norm(model).register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        self.output = output

    def close(self) -> None:
        self._handle.remove()


def final_norm(model: torch.nn.Module) -> torch.nn.Module:
    """The norm applied before the LM head (`model.model.norm` in Llama-style models); ValueError otherwise."""
    inner = getattr(model, "model", None)
    norm = getattr(inner, "norm", None)
    if not isinstance(norm, torch.nn.Module):
        raise ValueError(f"{type(model).__name__} has no final norm at model.norm")
    return norm


class Engine:
    """A loaded version ready to generate: the model (eval, frozen), its tokenizer, chat template and limits."""

    def __init__(self, base: BaseModel):
        self.base = base
        # transformers' model and tokenizer classes are read as untyped (pyproject's mypy overrides)
        self.model: Any = cast(Any, base.model)
        self.tokenizer: Any = cast(Any, base.tokenizer)
        self.weights_hash = base.weights_hash
        self.context_length = int(self.model.config.max_position_embeddings)
        self.vocab_size = int(self.model.config.vocab_size)
        eos = self.model.config.eos_token_id
        ids = {int(i) for i in (eos if isinstance(eos, list) else [eos]) if i is not None}
        if getattr(self.tokenizer, "eos_token_id", None) is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        self.eos_ids = frozenset(ids)
        #: Most characters one token stands for: its longest vocabulary entry (a byte-level entry counts bytes, at
        #: least the characters it decodes to). A text over `context_length` times this cannot fit the context.
        self.max_token_chars = max((len(t) for t in self.tokenizer.get_vocab()), default=1)
        self._capture = FinalNormCapture(self.model)

    def close(self) -> None:
        self._capture.close()

    # ------------------------------------------------------------ text

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def chat_prompt(self, messages: list[dict[str, str]]) -> list[int]:
        """The token ids of `messages` in the model's chat template (ChatML when the tokenizer has none), with the
        assistant's turn opened."""
        template = getattr(self.tokenizer, "chat_template", None) or CHATML_TEMPLATE
        text = self.tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=True
        )
        return self.encode(text)

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])

    # ------------------------------------------------------------ generation

    def start(self, prompt_ids: list[int], params: SamplingParams) -> Sequence:
        generator = torch.Generator(device=self.base.device)
        generator.manual_seed(params.seed)
        return Sequence(self, list(prompt_ids), params, generator, DynamicCache(config=self.model.config))

    @torch.inference_mode()
    def forward(self, token_ids: list[int], cache: DynamicCache) -> tuple[torch.Tensor, torch.Tensor]:
        """Feeds `token_ids` after what `cache` holds: the last position's logits (fp32, [vocab]) and final-norm
        output (fp32, [hidden])."""
        ids = torch.tensor([token_ids], dtype=torch.long, device=self.base.device)
        out = self.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        assert self._capture.output is not None
        hidden = self._capture.output[0, -1].float().cpu().clone()
        return out.logits[0, -1].float(), hidden

    @torch.inference_mode()
    def prefill_hidden(self, token_ids: list[int]) -> torch.Tensor:
        """The final norm's output at every position of `token_ids` in one forward pass (fp32, [len, hidden]):
        what a verifier recomputes."""
        ids = torch.tensor([token_ids], dtype=torch.long, device=self.base.device)
        self.model(input_ids=ids, use_cache=False, logits_to_keep=1)
        assert self._capture.output is not None
        return self._capture.output[0].float().cpu().clone()

    def pick(self, logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> TokenStep:
        token, logprob, top = choose_token(logits, params, generator)
        return TokenStep(token, logprob, top, token in self.eos_ids)

    def generate(self, prompt_ids: list[int], params: SamplingParams) -> Sequence:
        """Runs a sequence to its end (no stop strings): for the verifier's replay and the benchmark."""
        sequence = self.start(prompt_ids, params)
        while sequence.step() is not None:
            pass
        return sequence


def choose_token(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator
) -> tuple[int, float, list[tuple[int, float]]]:
    """The next token from `logits` ([vocab], fp32): argmax at temperature 0, else a draw from `generator` of the
    tempered, nucleus-restricted distribution. Returns (token id, its log-probability under the untempered
    model, the `top_logprobs` most likely (id, logprob) pairs when `params.logprobs`)."""
    logprobs = torch.log_softmax(logits, dim=-1)
    if params.temperature == 0.0:
        token = int(torch.argmax(logits))
    else:
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1.0:
            probs = nucleus(probs, params.top_p)
        token = int(torch.multinomial(probs, 1, generator=generator))
    top: list[tuple[int, float]] = []
    if params.logprobs and params.top_logprobs:
        values, indices = torch.topk(logprobs, params.top_logprobs)
        top = [(int(i), float(v)) for i, v in zip(indices, values, strict=True)]
    return token, float(logprobs[token]), top


def nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """`probs` restricted to the smallest most-likely set whose mass reaches `top_p`, renormalised."""
    ordered, order = torch.sort(probs, descending=True)
    # Keep a token while the mass before it is below top_p: the first token is always kept.
    keep = (torch.cumsum(ordered, dim=-1) - ordered) < top_p
    kept = torch.zeros_like(probs).scatter(0, order[keep], ordered[keep])
    return kept / kept.sum()


class StopText:
    """Incremental detokenisation with stop strings: text is released only once no stop string can still begin in
    it, and an incomplete UTF-8 character is held back until its last byte arrives.

    Each token costs work bounded by the stop strings' length (at most `workers.serve.schema.MAX_STOP_CHARS`
    characters each), not by the text so far: only the tokens since the last complete character are decoded
    (with one earlier token before them, so a tokenizer that drops a leading space at the start of a decode keeps
    it), and a stop string is looked for only where it could end in the new text."""

    def __init__(self, engine: Engine, stop: list[str]):
        self.engine = engine
        self.stop = [s for s in stop if s]
        self.token_ids: list[int] = []
        #: The decoded text not yet released (complete characters only): what the stop search needs, since no stop
        #: string can begin in released text. Keeping only this bounds each token's work and memory by the stop
        #: strings' length, not the text's (appending to the whole text was quadratic).
        self.held = ""
        #: token_ids[prefix:read] were decoded into the text's tail `self._prefix_text`; later ones are pending.
        self._prefix = 0
        self._read = 0
        self._prefix_text = ""
        self.stopped = False

    def push(self, token_id: int | None) -> str:
        """Adds a token (None: the end, release everything) and returns the newly releasable text ("" when held
        back). After a stop string is found, `stopped` is set and nothing more is released."""
        if self.stopped:
            return ""
        if token_id is not None and token_id not in self.engine.eos_ids:
            self.token_ids.append(token_id)
        searched = len(self.held)
        window = self.engine.decode(self.token_ids[self._prefix :])
        complete = not window.endswith("\ufffd")
        if len(window) > len(self._prefix_text) and (complete or token_id is None):
            self.held += window[len(self._prefix_text) :]
            self._prefix, self._read = self._read, len(self.token_ids)
            self._prefix_text = self.engine.decode(self.token_ids[self._prefix : self._read])
        held = self.held
        found = (held.find(s, max(searched - len(s) + 1, 0)) for s in self.stop)
        cut = min((i for i in found if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            return self._release(cut)
        if token_id is None:
            return self._release(len(held))
        return self._release(len(held) - max((_overlap(held, s) for s in self.stop), default=0))

    def _release(self, end: int) -> str:
        piece, self.held = self.held[:end], self.held[end:]
        return piece


def _overlap(text: str, stop: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `stop`: only the last len(stop) - 1
    characters are looked at, each candidate start found by `str.find` of the stop's first character."""
    tail = text[-(len(stop) - 1) :] if len(stop) > 1 else ""
    start = tail.find(stop[0])
    while start >= 0:
        if stop.startswith(tail[start:]):
            return len(tail) - start
        start = tail.find(stop[0], start + 1)
    return 0


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Runs the block with `count` intra-op threads (None: unchanged), restoring the previous setting."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
