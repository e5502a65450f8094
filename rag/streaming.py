"""Answers as a stream: text pieces as the generator makes them, then one final Answer with citations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

from rag.api import RAG
from rag.config import AnswerStyle
from rag.errors import GenerationError
from rag.grounding import cite, declines, ground
from rag.prompt import NO_ANSWER
from rag.types import Answer, Generator


def count_tokens(generator: Generator, text: str) -> int:
    """Tokens of `text` in the generator's own vocabulary; whitespace words for backends that cannot count."""
    counter = getattr(generator, "count_tokens", None)
    if callable(counter):
        return int(counter(text))
    return len(text.split())


def stream_answer(
    qa: RAG,
    question: str,
    collection: str,
    k: int | None = None,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
    *,
    style: AnswerStyle = "sentence",
    span: bool = False,
) -> Iterator[str | Answer]:
    """Retrieve, then yield the answer's text pieces and finally its Answer (the pieces joined, with citations).

    With `span` the generator must copy a span out of the passages, which only a whole generation can do:
    the answer then arrives as one piece.
    """
    started = time.perf_counter()
    passages = qa.retrieve(question, k, collection)
    retrieved = time.perf_counter()
    extra = {"generator": qa.generator.name, "prompt_tokens": 0, "completion_tokens": 0}
    if not qa.relevant(passages):  # the same rule as RAG.ask: nothing related was found
        yield NO_ANSWER
        timings = {"retrieve": retrieved - started, "first_token": retrieved - started, "generate": 0.0}
        yield Answer(question, NO_ANSWER, [], passages, {**timings, "total": timings["retrieve"]}, True, extra=extra)
        return
    context = qa.contexts([question], [passages], style)[0]
    request = qa.request(question, context, style, span)
    if max_new_tokens is not None:
        request = replace(request, max_new_tokens=max_new_tokens)
    if temperature is not None:
        request = replace(request, temperature=temperature)
    extra["prompt_tokens"] = count_tokens(qa.generator, request.prompt)
    pieces: list[str] = []
    first: float | None = None
    location = None
    if request.spans is None:
        for piece in qa.generator.stream(request):
            first = first or time.perf_counter()
            pieces.append(piece)
            yield piece
    else:
        generation = qa.generator.generate([request])[0]
        first, location = time.perf_counter(), generation.span
        pieces.append(generation.text)
        yield generation.text
    finished = time.perf_counter()
    text = "".join(pieces).strip()
    extra["completion_tokens"] = count_tokens(qa.generator, text) if text else 0
    timings = {
        "retrieve": retrieved - started,
        "first_token": (first or finished) - started,
        "generate": finished - retrieved,
        "total": finished - started,
    }
    if declines(text):
        yield Answer(question, NO_ANSWER, [], passages, timings, abstained=True, extra=extra)
        return
    if location is not None:
        citations = [cite(context[location.index], location.index + 1, location.start, location.end)]
    else:
        citations = ground(text, context)
    yield Answer(question, text, citations, passages, timings, extra=extra)


def final_answer(stream: Iterator[str | Answer]) -> Answer:
    """Drain a stream_answer iterator; its last item is the Answer."""
    answer = None
    for item in stream:
        if isinstance(item, Answer):
            answer = item
    if answer is None:
        raise GenerationError("stream_answer ended without an Answer")
    return answer
