"""The OpenAI request bodies we accept (pydantic models), and errors in OpenAI's shape.

Unknown fields are ignored, as OpenAI-compatible servers do (clients send `user`, `metadata`, ...); a field of the
wrong type is a 422, a value out of range a 400, each naming the field in `param`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

#: Most choices one request may ask for (`n`): each is generated in turn.
MAX_CHOICES = 8
#: Most stop strings, as OpenAI allows.
MAX_STOP = 4
#: Longest stop string, characters (400 above it). OpenAI states no bound; ours keeps the per-token stop search
#: small (workers.serve.engine.StopText looks at most this far back) while any realistic stop sequence fits.
MAX_STOP_CHARS = 256
#: Request fields this node does not implement: naming one with a non-default value is a 400, never silently
#: ignored (other unknown fields, such as `user` or `metadata`, do not change the answer and are ignored).
UNSUPPORTED = {
    "echo": False,
    "best_of": 1,
    "suffix": None,
    "logit_bias": None,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "tools": None,
    "tool_choice": None,
    "response_format": None,
}
#: Pydantic error types that mean "wrong type or missing", answered with 422; the rest (ranges) with 400.
TYPE_ERRORS = ("missing", "_type", "_parsing", "literal_error", "union_tag", "model_attributes_type")


class ApiError(Exception):
    """An error answered in OpenAI's shape: `{"error": {message, type, param, code}}` with `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)
    stop: list[str] = Field(default_factory=list)
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _stops(cls, value):
        # OpenAI takes one string, a list of strings or null
        stops = [value] if isinstance(value, str) else [] if value is None else value
        if isinstance(stops, list) and len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop strings")
        if isinstance(stops, list) and any(isinstance(s, str) and len(s) > MAX_STOP_CHARS for s in stops):
            raise ValueError(f"each stop string must be at most {MAX_STOP_CHARS} characters")
        return stops


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]]

    def text(self) -> str:
        """The message's text; a list of content parts must hold only text parts."""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, "only text content parts are supported", param="messages")
            parts.append(part["text"])
        return "".join(parts)


class ChatRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)


class CompletionRequest(_Common):
    #: Token ids must be JSON integers: strict, so neither `true` nor `1e2` passes as one.
    prompt: str | list[StrictInt] | list[str]
    logprobs: int | None = Field(default=None, ge=0, le=5)


def parse_request(kind: type[_Common], data: Any) -> Any:
    """`data` (parsed JSON) as a `kind` request; ApiError 422 (wrong type, missing) or 400 (out of range)."""
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    for name, default in UNSUPPORTED.items():
        if data.get(name, default) not in (default, None):
            raise ApiError(400, f"{name} is not supported by this node", param=name, code="unsupported_parameter")
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        status = 422 if any(t in first["type"] for t in TYPE_ERRORS) else 400
        raise ApiError(status, f"{param}: {first['msg']}", param=param, code="invalid_value") from None
