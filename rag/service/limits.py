"""Limits that keep one busy model server answering: request body size, concurrent model work, time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.service.openai_schema import ApiError, error_body

T = TypeVar("T")


class BodyTooLargeError(HTTPException):
    """Raised while the body is read; an HTTPException so that FastAPI passes it on instead of wrapping it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit} bytes")


class BodySizeLimit:
    """ASGI middleware: 413 for a declared Content-Length over the limit, or once a streamed body passes it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        problem = None
        if declared is not None:
            if not declared.isdigit():
                problem = (400, "invalid Content-Length header")
            elif int(declared) > self.max_bytes:
                problem = (413, f"request body is larger than the limit of {self.max_bytes} bytes")
        if problem is not None:
            await JSONResponse(error_body(problem[0], problem[1]), status_code=problem[0])(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        await self.app(scope, limited, send)


class ConcurrencyLimiter:
    """At most `limit` model calls at once, each on its own worker thread.

    A request waits at most `wait_s` for a slot, then gets 429 with Retry-After: a burst is refused early
    instead of queueing without bound. A slot is given back when the work ends, not when the client stops
    waiting, so work that timed out still counts until it has really finished.
    """

    def __init__(self, limit: int, wait_s: float = 0.25, retry_after_s: int = 1) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit, self.wait_s, self.retry_after_s = limit, wait_s, retry_after_s
        self._slots = threading.BoundedSemaphore(limit)
        self._count_lock = threading.Lock()
        self._active = 0
        self._executor: ThreadPoolExecutor | None = None

    @property
    def active(self) -> int:
        return self._active

    async def acquire(self) -> None:
        """Take a slot, waiting up to `wait_s`; ApiError 429 otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while not self._slots.acquire(blocking=False):
            if loop.time() >= deadline:
                raise ApiError(
                    429,
                    f"the server is busy ({self.limit} requests in progress); retry after {self.retry_after_s} s",
                    code="rate_limit_exceeded",
                    headers={"Retry-After": str(self.retry_after_s)},
                )
            await asyncio.sleep(0.01)
        with self._count_lock:
            self._active += 1

    def release(self) -> None:
        with self._count_lock:
            self._active -= 1
        self._slots.release()

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `fn` on a worker thread under a slot already taken with `acquire`; the slot is freed when it ends."""

        def work() -> T:
            try:
                return fn(*args)
            finally:
                self.release()

        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.limit, thread_name_prefix="rag-model")
        try:
            return asyncio.get_running_loop().run_in_executor(self._executor, work)
        except BaseException:
            self.release()
            raise

    async def run(self, fn: Callable[..., T], *args: Any, timeout: float) -> T:
        """Take a slot, run `fn` off the event loop, and answer 504 if it takes longer than `timeout` seconds."""
        await self.acquire()
        future = self.submit(fn, *args)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError as exc:
            raise ApiError(504, f"the request took longer than {timeout:g} s", code="timeout") from exc

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
