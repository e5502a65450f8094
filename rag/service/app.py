"""The HTTP service: OpenAI-compatible chat over the store's collections, the QA API, documents, health, metrics.

`create_app(qa, settings)` builds the app; nothing happens at import. Model work runs on the limiter's worker
threads, so the event loop (and /healthz) stays responsive while answers are generated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel

from rag.api import RAG
from rag.conversation import condense_query
from rag.service.auth import ApiKeys
from rag.service.config import READER_LIMITS, ServiceSettings
from rag.service.limits import BodySizeLimit, ConcurrencyLimiter
from rag.service.metrics import Metrics, MetricsMiddleware
from rag.service.openai_schema import (
    ApiError,
    AskRequest,
    ChatCompletionRequest,
    CompletionIds,
    documented_openapi,
    error_body,
    error_responses,
    install_error_handlers,
    sources_of,
)
from rag.service.uploads import COLLECTION_PATTERN, check_collection, delete_document_by_id, ingest_uploads
from rag.streaming import count_tokens, final_answer, stream_answer
from rag.types import Answer

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent.parent / "static"
_END = object()


class Service:
    """What the routes share: the QA facade, settings, keys, the limiter and the metrics."""

    def __init__(self, qa: RAG, settings: ServiceSettings) -> None:
        self.keys = ApiKeys(key.get_secret_value() for key in settings.api_keys)
        self.qa, self.settings = qa, settings.model_copy(update={"api_keys": []})  # keep only the digests
        qa.store.lock_timeout_s = settings.write_wait_s  # an upload waits this long for a CLI ingest, then 503
        slots, wait_s = READER_LIMITS.get(qa.settings.reader, READER_LIMITS["generative"])
        self.limiter = ConcurrencyLimiter(
            settings.max_concurrency or slots,
            wait_s if settings.queue_wait_s is None else settings.queue_wait_s,
            settings.retry_after_s,
        )
        self.metrics = Metrics()
        self.metrics.in_flight.set_function(lambda: self.limiter.active)
        self.ready = False
        self.load_error: str | None = None

    async def warm_up(self) -> None:
        try:
            await run_in_threadpool(self.qa.store.heal)  # finish what a killed CLI write left, if nobody is writing
            await run_in_threadpool(self.qa.warm_up)
            self.ready = True
        except Exception as exc:  # noqa: BLE001 - reported by /readyz instead of killing the server
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("loading the models failed")

    def collection_for(self, model: str) -> str:
        name = self.settings.model_aliases.get(model, model)
        collections = self.qa.store.collections()
        if name not in collections:
            raise ApiError(
                404, f"The model {model!r} does not exist; models: {collections}", code="model_not_found", param="model"
            )
        return name

    def check_prompt(self, messages: Sequence[dict[str, str]]) -> None:
        """400 for a conversation longer than max_prompt_tokens (counted in the generator's tokens)."""
        text = "\n".join(m["content"] for m in messages)
        limit = self.settings.max_prompt_tokens
        tokens = len(text) if len(text) > limit * 16 else count_tokens(self.qa.reader, text)
        if tokens > limit:
            raise ApiError(
                400,
                f"the messages hold about {tokens} tokens, over this server's limit of {limit}",
                code="context_length_exceeded",
                param="messages",
            )

    def answer_stream(
        self,
        messages: Sequence[dict[str, str]],
        question: str,
        collection: str,
        k: int | None,
        max_new_tokens: int | None,
        temperature: float | None,
    ) -> Iterator[str | Answer]:
        """Runs on a worker thread: check the prompt's size, then stream the answer."""
        self.check_prompt(messages)
        style = self.settings.chat_style
        return stream_answer(self.qa, question, collection, k, max_new_tokens, temperature, style=style)

    def record(self, answer: Answer) -> None:
        self.metrics.first_token.observe(answer.timings.get("first_token", answer.timings.get("total", 0.0)))
        self.metrics.generated_tokens.inc(int(answer.extra.get("completion_tokens", 0)))
        self.metrics.prompt_tokens.inc(int(answer.extra.get("prompt_tokens", 0)))


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _next_item(queue: asyncio.Queue[Any], deadline: float, timeout: float) -> Any:
    remaining = deadline - asyncio.get_running_loop().time()
    try:
        return await asyncio.wait_for(queue.get(), max(remaining, 0.001))
    except TimeoutError as exc:
        raise ApiError(504, f"the request took longer than {timeout:g} s", code="timeout") from exc


async def _stream_chat(service: Service, body: ChatCompletionRequest, work: Any) -> StreamingResponse:
    """Run `work` (an iterator factory) on a worker thread and relay its items as chat.completion.chunk events."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancelled = threading.Event()

    def produce() -> None:
        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop has closed: nobody is listening any more
                cancelled.set()

        try:
            for item in work():
                if cancelled.is_set():
                    break
                put(item)
        except Exception as exc:  # noqa: BLE001 - handed to the event loop, which answers it
            put(exc)
        finally:
            put(_END)

    timeout = service.settings.request_timeout_s
    deadline = loop.time() + timeout
    await service.limiter.acquire()
    service.limiter.submit(produce)
    try:
        first = await _next_item(queue, deadline, timeout)  # errors before the first piece get a proper status
    except BaseException:
        cancelled.set()
        raise
    if isinstance(first, BaseException):
        cancelled.set()
        raise first
    ids = CompletionIds(body.model)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    async def events() -> AsyncIterator[str]:
        item = first
        try:
            yield _sse(ids.chunk({"role": "assistant", "content": ""}))
            while item is not _END:
                if isinstance(item, str):
                    yield _sse(ids.chunk({"content": item}))
                elif isinstance(item, Answer):
                    service.record(item)
                    yield _sse(ids.chunk({}, "stop", sources=sources_of(item)))
                    if include_usage:
                        yield _sse(ids.usage_chunk(item))
                elif isinstance(item, BaseException):
                    raise item
                item = await _next_item(queue, deadline, timeout)
        except ApiError as exc:
            service.metrics.errors.labels(exc.code or str(exc.status)).inc()
            yield _sse(exc.body())
        except Exception as exc:  # noqa: BLE001 - the response has started: report in-band
            log.exception("streaming failed")
            service.metrics.errors.labels("stream_failed").inc()
            yield _sse(error_body(500, f"generation failed: {type(exc).__name__}", code="stream_failed"))
        finally:
            cancelled.set()
        yield "data: [DONE]\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def _v1_routes(service: Service) -> APIRouter:
    router = APIRouter(prefix="/v1", dependencies=[Depends(service.keys)], responses=error_responses(401, 503))
    qa, settings, limiter = service.qa, service.settings, service.limiter

    @router.get("/models")
    async def models() -> dict[str, Any]:
        names = await run_in_threadpool(qa.store.collections)
        names += [alias for alias, target in settings.model_aliases.items() if target in names]
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "ragkit"} for name in names]
        return {"object": "list", "data": data}

    @router.post("/chat/completions", responses=error_responses(400, 404, 413, 429, 502, 504))
    async def chat(body: ChatCompletionRequest) -> Any:
        messages = body.plain_messages()
        question = condense_query(messages)
        if not question:
            raise ApiError(400, "the messages hold no user question", code="invalid_messages", param="messages")
        collection = await run_in_threadpool(service.collection_for, body.model)
        requested = body.max_completion_tokens or body.max_tokens
        max_new = min(requested or settings.default_max_tokens, settings.max_output_tokens)

        work = partial(service.answer_stream, messages, question, collection, body.k, max_new, body.temperature)

        if body.stream:
            return await _stream_chat(service, body, work)
        answer = await limiter.run(lambda: final_answer(work()), timeout=settings.request_timeout_s)
        service.record(answer)
        return CompletionIds(body.model).completion(answer)

    @router.post("/ask", responses=error_responses(400, 404, 413, 429, 502, 504))
    async def ask(body: AskRequest) -> JSONResponse:
        collection = await run_in_threadpool(service.collection_for, body.collection) if body.collection else None
        await run_in_threadpool(service.check_prompt, [{"content": body.question}])
        ask = partial(qa.ask, body.question, body.k, collection, body.filters, body.style)
        answer = await limiter.run(ask, timeout=settings.request_timeout_s)
        return JSONResponse(jsonable_encoder(answer.to_dict()))

    @router.post("/documents", responses=error_responses(400, 413, 429, 504))
    async def upload(
        files: Annotated[list[UploadFile], File(min_length=1)],
        collection: Annotated[str | None, Form(json_schema_extra={"pattern": COLLECTION_PATTERN})] = None,
    ) -> dict[str, Any]:
        name = check_collection(collection or qa.settings.collection)
        pairs = [(f.filename or "upload", f.file) for f in files]
        s = qa.settings
        results = await limiter.run(
            ingest_uploads, qa.store, name, pairs, s.chunk_tokens, s.overlap_tokens, timeout=settings.request_timeout_s
        )
        return {"object": "list", "collection": name, "data": [r.to_dict() for r in results]}

    @router.get("/documents", responses=error_responses(400))
    async def documents(collection: str | None = None) -> dict[str, Any]:
        docs = await run_in_threadpool(qa.store.documents, collection)
        return {"object": "list", "data": [asdict(d) for d in docs]}

    @router.delete("/documents/{document_id}", responses=error_responses(400, 404, 429, 504))
    async def delete_document(document_id: int) -> dict[str, Any]:
        return await limiter.run(delete_document_by_id, qa.store, document_id, timeout=settings.request_timeout_s)

    return router


class Readiness(BaseModel):
    status: str
    reason: str | None = None
    reader: str | None = None


def create_app(qa: RAG, settings: ServiceSettings | None = None) -> FastAPI:
    """The service over one opened RAG; models load in the background at start-up (see /readyz)."""
    service = Service(qa, settings or ServiceSettings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(service.warm_up())
        try:
            yield
        finally:
            loading.cancel()
            service.ready = False
            service.limiter.close()

    # /docs and /redoc from assets installed with fastapi-offline: no CDN, so they work on a closed network.
    app = FastAPIOffline(
        title="ragkit", version="0.1.0", summary="Cited answers from your documents", lifespan=lifespan
    )
    app.state.service = service
    app.openapi = documented_openapi(app)  # type: ignore[method-assign]
    install_error_handlers(app, lambda code: service.metrics.errors.labels(code).inc())
    app.include_router(_v1_routes(service))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    not_ready = {503: {"model": Readiness, "description": "The models are loading or failed, or the store failed"}}

    @app.get("/readyz", response_model=Readiness, responses=not_ready)
    async def readyz() -> JSONResponse:
        if not service.ready:
            reason = service.load_error or "models are loading"
            return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
        try:
            await run_in_threadpool(qa.store.collections)
        except Exception as exc:  # noqa: BLE001 - any store failure means not ready
            return JSONResponse({"status": "not ready", "reason": f"store: {exc}"}, status_code=503)
        return JSONResponse({"status": "ready", "reader": qa.reader.name})

    metrics_guard = [Depends(service.keys)] if service.settings.metrics_require_key else []

    @app.get("/metrics", include_in_schema=False, dependencies=metrics_guard)
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodySizeLimit, max_bytes=service.settings.max_body_bytes)
    if service.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=service.settings.cors_origins, allow_methods=["*"], allow_headers=["*"]
        )
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    return app
