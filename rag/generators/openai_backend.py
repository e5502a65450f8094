"""A generator behind any OpenAI-compatible chat endpoint (vLLM, llama.cpp's server, Ollama, or `rag serve`).

Requests carry a fully formatted prompt, so each one is sent as a single user message; the remote server
applies its own chat template. Span-constrained decoding needs the logits, so `spans` is not honoured here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from rag.errors import GenerationError, RagError
from rag.generators.chat import plain_chat
from rag.types import Generation, GenerationRequest


class OpenAIGenerator:
    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 120.0) -> None:
        if not base_url:
            raise RagError("the openai backend needs a base URL (RAG_OPENAI_BASE_URL), e.g. http://127.0.0.1:8000/v1")
        self.base_url = base_url
        self.name = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self._client: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._client is not None:
                return
            try:
                import openai
            except ImportError as exc:
                raise RagError("the openai backend needs the openai package: pip install openai") from exc
            # Local servers often need no key, but the client insists on one.
            self._client = openai.OpenAI(base_url=self.base_url, api_key=self.api_key or "none", timeout=self.timeout_s)

    def format_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        return plain_chat(messages)

    def _arguments(self, request: GenerationRequest) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self.name,
            "messages": [{"role": "user", "content": request.prompt}],
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
        }
        stops = [stop for stop in request.stop if stop][:4]  # the API takes at most four
        if stops:
            args["stop"] = stops
        return args

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.load()
        generations = []
        for request in requests:
            try:
                response = self._client.chat.completions.create(**self._arguments(request))
            except Exception as exc:  # noqa: BLE001 - any client error becomes our GenerationError
                raise GenerationError(f"{self.base_url} failed: {type(exc).__name__}: {exc}") from exc
            text = response.choices[0].message.content or "" if response.choices else ""
            tokens = response.usage.completion_tokens if response.usage else len(text.split())
            generations.append(Generation(text=text, tokens=int(tokens)))
        return generations

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        self.load()
        try:
            chunks = self._client.chat.completions.create(**self._arguments(request), stream=True)
            for chunk in chunks:
                piece = chunk.choices[0].delta.content if chunk.choices else None
                if piece:
                    yield piece
        except Exception as exc:  # noqa: BLE001 - any client error becomes our GenerationError
            raise GenerationError(f"{self.base_url} failed: {type(exc).__name__}: {exc}") from exc
