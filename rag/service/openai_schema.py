"""OpenAI-compatible request and response shapes, our extensions (`sources`), and the error format."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.exceptions import HTTPException

from index import EmbedderMismatchError, NotFoundError, StoreBusyError, StoreIntegrityError
from index.json_safe import clean_text
from rag.config import AnswerStyle
from rag.errors import GenerationError, RagError
from rag.types import Answer

# ---- errors ------------------------------------------------------------------------------------------

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
    504: "timeout",
}


class ApiError(RagError):
    """An error answered in OpenAI's format: {"error": {"message", "type", "code", "param"}}."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.code, self.param)


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str | None = None
    param: str | None = None


class ErrorBody(BaseModel):
    """What every error answers: OpenAI's {"error": {...}}."""

    error: ErrorDetail


ERROR_MEANINGS = {
    400: "Invalid request: malformed JSON, a wrong field, or a prompt over the server's limit",
    401: "Missing or invalid API key (only when keys are configured)",
    404: "No such model, collection or document",
    413: "Request body over the server's limit",
    429: "Every worker is busy; see Retry-After",
    502: "The model failed to generate an answer",
    503: "The store is busy, damaged or does not match the embedder",
    504: "The request took longer than the server's limit",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer these errors, each with the error body."""
    return {status: {"model": ErrorBody, "description": ERROR_MEANINGS[status]} for status in statuses}


def documented_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """`app.openapi` without FastAPI's default 422: validation errors are answered as 400s (see below)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            for operation in (op for path in schema.get("paths", {}).values() for op in path.values()):
                operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
        return app.openapi_schema

    return openapi


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}


def install_error_handlers(app: FastAPI, on_error: Callable[[str], None]) -> None:
    """Every error leaves as {"error": {...}}: bad JSON and wrong types are 400s, never 500s."""

    def answer(status: int, message: str, code: str | None, headers: dict[str, str] | None = None) -> JSONResponse:
        on_error(code or str(status))
        return JSONResponse(error_body(status, message, code), status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return answer(exc.status, exc.message, exc.code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        return answer(400, f"invalid request: {problems}", "invalid_request")

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return answer(exc.status_code, str(exc.detail), None, dict(exc.headers or {}))

    @app.exception_handler(NotFoundError)
    async def not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return answer(404, str(exc), "not_found")

    @app.exception_handler(StoreBusyError)
    async def busy(_request: Request, exc: StoreBusyError) -> JSONResponse:
        return answer(503, str(exc), "store_busy", {"Retry-After": "5"})

    @app.exception_handler(StoreIntegrityError)
    async def damaged(_request: Request, exc: StoreIntegrityError) -> JSONResponse:
        return answer(503, str(exc), "store_integrity")

    @app.exception_handler(EmbedderMismatchError)
    async def mismatched(_request: Request, exc: EmbedderMismatchError) -> JSONResponse:
        return answer(503, str(exc), "store_unavailable")

    # The model behind this server failed, not the request: 502, as a gateway whose upstream failed.
    @app.exception_handler(GenerationError)
    async def generation_failed(_request: Request, exc: GenerationError) -> JSONResponse:
        logging.getLogger(__name__).error("generation failed", exc_info=exc)
        return answer(502, str(exc), "generation_failed")

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logging.getLogger(__name__).error("unhandled error", exc_info=exc)
        return answer(500, f"internal error: {type(exc).__name__}", "internal_error")


# ---- requests ----------------------------------------------------------------------------------------

# Text as the tokenizers and the database can take it: JSON may carry lone surrogates ("\ud800") and NUL.
CleanStr = Annotated[str, BeforeValidator(lambda value: clean_text(value) if isinstance(value, str) else value)]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"] = "text"
    text: CleanStr


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: CleanStr | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


# Some character besides white space and NUL. JSON Schema's \s lacks what Python's str.isspace() also counts
# (U+001C-U+001F, U+0085), which the service strips from a question: the pattern names them too.
_TEXT = {"type": "string", "pattern": "[^\\s\\x00\\x1c-\\x1f\\x85]"}
USER_TURN = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"const": "user"},
        "content": {
            "anyOf": [
                _TEXT,
                {"type": "array", "contains": {"type": "object", "required": ["text"], "properties": {"text": _TEXT}}},
            ]
        },
    },
}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """Fields we do not use (n, top_p, tools, ...) are accepted and ignored, as clients send them freely."""

    model_config = ConfigDict(extra="allow")
    model: CleanStr = Field(min_length=1, max_length=200, description="a collection name or a configured alias")
    messages: list[ChatMessage] = Field(
        min_length=1,
        description="answered when at least one user turn holds text; otherwise 400 invalid_messages",
        json_schema_extra={"contains": USER_TURN},
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    k: int | None = Field(default=None, ge=1, le=200, description="extension: passages to retrieve")

    def plain_messages(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.text()} for m in self.messages]


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: CleanStr = Field(min_length=1, max_length=20_000)
    k: int | None = Field(default=None, ge=1, le=200)
    collection: CleanStr | None = None
    filters: dict[CleanStr, CleanStr | int | float | bool] | None = None
    style: AnswerStyle | None = None


# ---- responses ---------------------------------------------------------------------------------------


class Highlight(BaseModel):
    """The cited span, as offsets into this source's `text`."""

    start: int
    end: int


class Source(BaseModel):
    number: int
    document_id: int
    chunk_id: int
    source: str
    title: str
    start: int = Field(description="the passage's first character in the document")
    end: int
    text: str
    score: float
    highlight: Highlight | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def sources_of(answer: Answer) -> list[dict[str, Any]]:
    """The retrieved passages, numbered as in the prompt, each with the cited span (if any) marked."""
    cited = {c.number: c for c in answer.citations}
    sources = []
    for number, p in enumerate(answer.passages, start=1):
        citation = cited.get(number)
        highlight = None
        if citation is not None and citation.chunk_id == p.chunk_id:
            highlight = Highlight(start=citation.start - p.start, end=citation.end - p.start)
        source = Source(
            number=number,
            document_id=p.document_id,
            chunk_id=p.chunk_id,
            source=p.source,
            title=p.title,
            start=p.start,
            end=p.end,
            text=p.text,
            score=round(float(p.score), 6),
            highlight=highlight,
        )
        sources.append(source.model_dump())
    return sources


def usage_of(answer: Answer) -> dict[str, int]:
    prompt, completion = int(answer.extra.get("prompt_tokens", 0)), int(answer.extra.get("completion_tokens", 0))
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion).model_dump()


class CompletionIds:
    """One id and timestamp shared by every chunk of a completion."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def completion(self, answer: Answer) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": "stop"}
            ],
            "usage": usage_of(answer),
            "sources": sources_of(answer),
        }

    def chunk(self, delta: Mapping[str, str], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
        choice = {"index": 0, "delta": dict(delta), "finish_reason": finish_reason}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            **extra,
        }

    def usage_chunk(self, answer: Answer) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage_of(answer),
        }
