"""Answers as a stream: text pieces as the reader makes them, then one final Answer with citations.
The Answer comes from the same policy as `RAG.ask`, so a streamed question and an asked one agree."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from rag.api import RAG
from rag.config import AnswerStyle
from rag.errors import GenerationError
from rag.generators import count_tokens
from rag.types import Answer, Reading, StreamingReader


def stream_answer(
    qa: RAG,
    question: str,
    collection: str,
    k: int | None = None,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
    *,
    style: AnswerStyle = "sentence",
) -> Iterator[str | Answer]:
    """Retrieve, then yield the answer's text pieces and finally its Answer (with citations).

    A streaming reader (a generator writing free text) yields pieces as they are made; an extractive reader,
    or a span-constrained generator, yields its whole answer as one piece.
    """
    started = time.perf_counter()
    passages = qa.retrieve(question, k, collection)
    retrieved = time.perf_counter()
    extra: dict[str, Any] = {"reader": qa.reader.name, "prompt_tokens": 0, "completion_tokens": 0}
    reading: Reading | None = None
    context = qa.context(passages)
    first: float | None = None
    streamed: list[str] = []
    if qa.policy.relevant(passages):
        if isinstance(qa.reader, StreamingReader):
            for item in qa.reader.stream(question, context, style, max_new_tokens, temperature):
                if isinstance(item, Reading):
                    reading = item
                else:
                    first = first or time.perf_counter()
                    streamed.append(item)
                    yield item
        else:
            reading = qa.reader.read([question], [context], style)[0]
    finished = time.perf_counter()
    timings = {
        "retrieve": retrieved - started,
        "first_token": (first or finished) - started,
        "read": finished - retrieved,
        "total": finished - started,
    }
    extra["prompt_tokens"] = int((reading.extra if reading else {}).get("prompt_tokens", 0))
    answer = qa.policy.answer(question, passages, context, reading, timings, extra)
    if not streamed:
        yield answer.text
    completion = count_tokens(qa.reader, "".join(streamed) or answer.text)
    yield replace(answer, extra={**answer.extra, "completion_tokens": completion})


def final_answer(stream: Iterator[str | Answer]) -> Answer:
    """Drain a stream_answer iterator; its last item is the Answer."""
    answer = None
    for item in stream:
        if isinstance(item, Answer):
            answer = item
    if answer is None:
        raise GenerationError("stream_answer ended without an Answer")
    return answer
