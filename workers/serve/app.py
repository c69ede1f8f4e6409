"""The OpenAI-compatible HTTP API of an inference node (FastAPI; streaming through sse-starlette; run by uvicorn).

    GET  /v1/models                 the served version: `deepshard-v<N>` with its weights hash
    POST /v1/chat/completions       chat, in the model's chat template
    POST /v1/completions            plain text completion
    GET  /health                    {"status", "active", "queue_size"}: requests admitted now and the bound

Load: a request is admitted on arrival into a bounded queue (`queue_size` requests uploading, waiting or
generating) or answered 429 with `retry-after`. All model work runs on one executor thread, one token of one
sequence at a time, so concurrent requests interleave token by token; a streaming client that goes away stops
its sequence between two tokens and frees its slot at once. Prompts are tokenized on a thread of their own (a
long one takes seconds: the event loop keeps serving /health and the streams meanwhile), after a prompt too long
to fit the context by its characters alone was refused without tokenizing it. Each choice carries
`deepshard_proof` (workers.serve.proof).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect

from ..safejson import JsonRejected, parse_json
from .engine import Engine, SamplingParams, StopText
from .proof import build_proof
from .schema import ApiError, ChatRequest, CompletionRequest, parse_request

#: Largest request body, bytes (413 above it).
DEFAULT_MAX_BODY_BYTES = 1 << 20
#: Requests generating or waiting at once (429 above it).
DEFAULT_QUEUE_SIZE = 16
#: Seconds a client told 429 is asked to wait.
RETRY_AFTER_SECONDS = 1
#: Seconds a client may take to send its body (408 after; its queue slot is held meanwhile).
BODY_TIMEOUT_SECONDS = 30
#: Most tokens generated when a request names no max_tokens.
DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class ServedVersion:
    """What the node serves: the registry's version number, the model id clients name, the weights' identity."""

    version: int
    weights_hash: str
    base_model: str

    @property
    def model_id(self) -> str:
        return f"deepshard-v{self.version}"


class Admission:
    """The bounded request queue: `admit` takes a slot or raises 429; `release` gives it back (idempotent per
    slot). Only touched from the event loop thread."""

    def __init__(self, size: int):
        self.size = size
        self.active = 0

    def admit(self) -> Callable[[], None]:
        if self.active >= self.size:
            raise ApiError(
                429,
                f"the server is busy ({self.size} requests queued); retry later",
                type="rate_limit_error",
                code="queue_full",
                headers={"retry-after": str(RETRY_AFTER_SECONDS)},
            )
        self.active += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.active -= 1

        return release


@dataclass
class Choice:
    """One choice being generated: its sequence, stop-string filter and, at the end, the finish reason."""

    index: int
    params: SamplingParams
    stop: StopText
    text: str = ""
    finish_reason: str | None = None
    logprobs: list[tuple[int, float, list[tuple[int, float]]]] | None = None


def completion_top_logprobs(engine: Engine, top: list[tuple[int, float]]) -> dict[str, float]:
    """One step's `top_logprobs` in OpenAI's completions format: a JSON object {token text: logprob}. The format
    forces one key per text, so alternatives that decode alike (bytes of a split UTF-8 character all read as
    U+FFFD) share a key; it keeps the most likely of them (`top` is most likely first). Chat's `top_logprobs`
    is a list and keeps every alternative."""
    alternatives: dict[str, float] = {}
    for token_id, logprob in top:
        alternatives.setdefault(engine.token_text(token_id), logprob)
    return alternatives


def create_app(
    engine: Engine,
    served: ServedVersion,
    *,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    api_keys: tuple[str, ...] = (),
) -> FastAPI:
    """The API serving `engine` as `served`. With `api_keys`, every /v1 request needs `Authorization: Bearer
    <one of them>` (401 otherwise)."""
    admission = Admission(queue_size)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepshard-model")
    # Not the model's thread: a long prompt's tokenization would stall every sequence's next token.
    tokenizer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepshard-tokenizer")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        executor.shutdown(wait=False, cancel_futures=True)
        tokenizer.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="Deepshard inference node", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    created = int(time.time())

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _server_error(request: Request, exc: Exception) -> JSONResponse:
        error = ApiError(500, f"internal error: {type(exc).__name__}", type="server_error", code="internal_error")
        return JSONResponse(error.body(), status_code=500)

    @app.exception_handler(404)
    async def _not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(ApiError(404, f"no route {request.url.path}", code="not_found").body(), status_code=404)

    @app.exception_handler(405)
    async def _bad_method(request: Request, exc: Exception) -> JSONResponse:
        error = ApiError(405, f"{request.method} is not allowed on {request.url.path}", code="method_not_allowed")
        return JSONResponse(error.body(), status_code=405)

    def authorise(request: Request) -> None:
        if not api_keys:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not any(hmac.compare_digest(token.encode(), k.encode()) for k in api_keys):
            raise ApiError(401, "missing or invalid API key", code="invalid_api_key")

    async def read_body(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise ApiError(413, f"the request body is over {max_body_bytes} bytes", code="request_too_large")
        body = bytearray()
        try:
            async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
                async for piece in request.stream():
                    body += piece
                    if len(body) > max_body_bytes:
                        raise ApiError(
                            413, f"the request body is over {max_body_bytes} bytes", code="request_too_large"
                        )
        except TimeoutError:
            raise ApiError(408, f"the request body took over {BODY_TIMEOUT_SECONDS} s", code="timeout") from None
        except ClientDisconnect:
            raise ApiError(400, "the client went away before sending its body", code="client_disconnected") from None
        try:
            return parse_json(bytes(body), what="the request body", max_bytes=max_body_bytes)
        except JsonRejected as exc:
            raise ApiError(400, str(exc), code="invalid_json") from None

    def check_model(name: str) -> None:
        if name != served.model_id:
            raise ApiError(
                404, f"the model {name!r} does not exist; this node serves {served.model_id}", param="model",
                code="model_not_found",
            )  # fmt: skip

    async def tokenize(work: Callable[[Any], list[int]], prompt: Any, chars: int, param: str) -> list[int]:
        """`work(prompt)` (a tokenization) on the tokenizer thread, once the prompt's `chars` characters could fit
        the context (400 otherwise, without tokenizing)."""
        if chars > engine.context_length * engine.max_token_chars:
            raise ApiError(
                400,
                f"the prompt has {chars} characters, more than this model's context length "
                f"({engine.context_length} tokens of at most {engine.max_token_chars} characters) can hold",
                param=param,
                code="context_length_exceeded",
            )
        return await asyncio.get_running_loop().run_in_executor(tokenizer, work, prompt)

    def sampling(req, prompt_len: int, logprobs: bool, top_logprobs: int) -> list[SamplingParams]:
        room = engine.context_length - prompt_len
        if room < 1:
            raise ApiError(
                400,
                f"the prompt has {prompt_len} tokens; this model's context length is {engine.context_length}",
                param="messages" if isinstance(req, ChatRequest) else "prompt",
                code="context_length_exceeded",
            )
        limit = getattr(req, "max_completion_tokens", None) or req.max_tokens
        if limit is not None and limit > room:
            raise ApiError(
                400,
                f"the prompt ({prompt_len} tokens) plus max_tokens ({limit}) exceed the context length "
                f"({engine.context_length})",
                param="max_tokens",
                code="context_length_exceeded",
            )
        seed = req.seed if req.seed is not None else secrets.randbits(63)
        return [
            SamplingParams(
                max_tokens=limit or min(room, DEFAULT_MAX_TOKENS),
                temperature=req.temperature,
                top_p=req.top_p,
                # each choice its own generator: choice i replays from seed + i alone
                seed=(seed + i) % (1 << 63),
                logprobs=logprobs,
                top_logprobs=top_logprobs,
            )
            for i in range(req.n)
        ]

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "active": admission.active, "queue_size": admission.size}

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        authorise(request)
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model}")
    async def get_model(model: str, request: Request) -> dict[str, Any]:
        authorise(request)
        check_model(model)
        return model_card()

    def model_card() -> dict[str, Any]:
        return {
            "id": served.model_id,
            "object": "model",
            "created": created,
            "owned_by": "deepshard",
            "version": served.version,
            "weights_hash": served.weights_hash,
            "base_model": served.base_model,
            "context_length": engine.context_length,
        }

    async def admitted(request: Request, handler):
        """Runs `handler(request, release)` holding a queue slot from the request's arrival (its upload counts:
        a client still sending its body holds its place). The slot is released here on any failure, else by the
        handler (a stream, when it ends or its client goes away)."""
        authorise(request)
        release = admission.admit()
        try:
            return await handler(request, release)
        except BaseException:
            release()
            raise

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await admitted(request, chat_admitted)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await admitted(request, completions_admitted)

    async def chat_admitted(request: Request, release: Callable[[], None]):
        req = parse_request(ChatRequest, await read_body(request))
        check_model(req.model)
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        chars = sum(len(m["content"]) for m in messages)
        prompt_ids = await tokenize(engine.chat_prompt, messages, chars, "messages")
        top = req.top_logprobs or 0
        params = sampling(req, len(prompt_ids), req.logprobs, top)
        return await respond(request, release, req, "chat.completion", "chatcmpl", prompt_ids, params)

    async def completions_admitted(request: Request, release: Callable[[], None]):
        req = parse_request(CompletionRequest, await read_body(request))
        check_model(req.model)
        prompt = req.prompt
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
            if len(prompt) != 1:
                raise ApiError(400, "one prompt per request", param="prompt")
            prompt = prompt[0]
        if isinstance(prompt, list):
            if not prompt or any(t < 0 or t >= engine.vocab_size for t in prompt):
                raise ApiError(400, f"token ids must lie in [0, {engine.vocab_size})", param="prompt")
            prompt_ids = list(prompt)
        else:
            prompt_ids = await tokenize(engine.encode, prompt, len(prompt), "prompt")
            if not prompt_ids:
                raise ApiError(400, "the prompt is empty", param="prompt")
        wanted = req.logprobs is not None
        params = sampling(req, len(prompt_ids), wanted, req.logprobs or 0)
        return await respond(request, release, req, "text_completion", "cmpl", prompt_ids, params)

    async def respond(
        request: Request, release: Callable[[], None], req, kind: str, prefix: str, prompt_ids: list[int], params
    ):
        request_id = f"{prefix}-{secrets.token_hex(12)}"
        chat = kind == "chat.completion"
        choices = [Choice(i, p, StopText(engine, req.stop)) for i, p in enumerate(params)]
        include_usage = bool(req.stream and req.stream_options and req.stream_options.include_usage)
        counts = {"completion": 0}
        proofs: dict[int, dict[str, Any]] = {}

        async def run_choice(choice: Choice) -> AsyncIterator[tuple[str, list]]:
            """Yields (text released, logprob entries) per token; sets the finish reason and the proof."""
            loop = asyncio.get_running_loop()
            sequence = await loop.run_in_executor(executor, engine.start, prompt_ids, choice.params)
            while True:
                step = await loop.run_in_executor(executor, sequence.step)
                if step is None:
                    piece = choice.stop.push(None)
                    choice.finish_reason = "length" if len(sequence.token_ids) >= choice.params.max_tokens else "stop"
                    if piece:
                        yield piece, []
                    break
                counts["completion"] += 1
                entry = [(step.token_id, step.logprob, step.top)] if choice.params.logprobs else []
                piece = choice.stop.push(step.token_id)
                if choice.stop.stopped:
                    choice.finish_reason = "stop"
                    yield piece, entry
                    break
                if step.is_eos:
                    choice.finish_reason = "stop"
                    yield piece + choice.stop.push(None), entry
                    break
                if piece or entry:
                    yield piece, entry
            proof = build_proof(
                engine, served.model_id, request_id, prompt_ids, sequence.token_ids, sequence.hidden, choice.params
            )
            proofs[choice.index] = proof.to_json()

        def usage() -> dict[str, int]:
            prompt_tokens = len(prompt_ids) * len(choices)
            return {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": counts["completion"],
                "total_tokens": prompt_tokens + counts["completion"],
            }

        def envelope(object_name: str, payload: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                "id": request_id,
                "object": object_name,
                "created": int(time.time()),
                "model": served.model_id,
                "system_fingerprint": served.weights_hash[:18],
                "choices": payload,
            }

        if not req.stream:
            try:
                for choice in choices:
                    texts, entries = [], []
                    async for piece, entry in run_choice(choice):
                        texts.append(piece)
                        entries.extend(entry)
                        if await request.is_disconnected():
                            return JSONResponse({}, status_code=499)
                    choice.text, choice.logprobs = "".join(texts), entries
            finally:
                release()
            body = envelope(kind, [choice_json(c, chat, proofs[c.index]) for c in choices])
            body["usage"] = usage()
            return JSONResponse(body)

        chunk_kind = "chat.completion.chunk" if chat else "text_completion"

        async def events() -> AsyncIterator[str]:
            try:
                for choice in choices:
                    if chat:
                        yield json.dumps(chunk(choice, {"role": "assistant", "content": ""}, []))
                    async for piece, entry in run_choice(choice):
                        yield json.dumps(chunk(choice, piece, entry))
                    final = chunk(choice, "", [])
                    final["choices"][0]["finish_reason"] = choice.finish_reason
                    final["choices"][0]["deepshard_proof"] = proofs[choice.index]
                    yield json.dumps(final)
                if include_usage:
                    tail = envelope(chunk_kind, [])
                    tail["usage"] = usage()
                    yield json.dumps(tail)
                yield "[DONE]"
            finally:
                release()

        def chunk(choice: Choice, piece: str | dict, entries: list) -> dict[str, Any]:
            item: dict[str, Any] = {"index": choice.index, "finish_reason": None}
            if chat:
                item["delta"] = piece if isinstance(piece, dict) else {"content": piece}
                item["logprobs"] = chat_logprobs(entries) if choice.params.logprobs else None
            else:
                item["text"] = piece
                item["logprobs"] = completion_logprobs(entries) if choice.params.logprobs else None
            body = envelope(chunk_kind, [item])
            if include_usage:
                body["usage"] = None
            return body

        try:
            # release also as the response's background task: it runs even if the body was never iterated
            return EventSourceResponse(events(), background=BackgroundTask(release))
        except BaseException:
            release()
            raise

    def token_json(token_id: int, logprob: float) -> dict[str, Any]:
        text = engine.token_text(token_id)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    def chat_logprobs(entries: list) -> dict[str, Any]:
        return {
            "content": [
                {**token_json(t, lp), "top_logprobs": [token_json(i, v) for i, v in top]} for t, lp, top in entries
            ]
        }

    def completion_logprobs(entries: list) -> dict[str, Any]:
        return {
            "tokens": [engine.token_text(t) for t, _, _ in entries],
            "token_logprobs": [lp for _, lp, _ in entries],
            "top_logprobs": [completion_top_logprobs(engine, top) for _, _, top in entries],
        }

    def choice_json(choice: Choice, chat: bool, proof: dict[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"index": choice.index, "finish_reason": choice.finish_reason}
        if chat:
            item["message"] = {"role": "assistant", "content": choice.text}
            item["logprobs"] = chat_logprobs(choice.logprobs or []) if choice.params.logprobs else None
        else:
            item["text"] = choice.text
            item["logprobs"] = completion_logprobs(choice.logprobs or []) if choice.params.logprobs else None
        item["deepshard_proof"] = proof
        return item

    app.state.admission = admission
    return app
