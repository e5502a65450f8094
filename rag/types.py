"""What crosses the rag package's seams: generation requests, answers with citations, and the protocols."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from index.types import Passage


@dataclass(frozen=True)
class GenerationRequest:
    """One completion. With `spans` set, decoding may only copy word-aligned text out of those strings, and
    the copy may only end once it holds a word outside `known_words` (see `SpanConstraint`)."""

    prompt: str
    max_new_tokens: int = 32
    stop: Sequence[str] = ("\n",)
    spans: Sequence[str] | None = None
    temperature: float = 0.0
    known_words: frozenset[str] = frozenset()
    # Free text from a small model can loop ("I'm not sure ... I'm not sure ..."): penalise repeats and
    # forbid any n-gram from occurring twice (0: off).
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0


@dataclass(frozen=True)
class SpanLocation:
    """Where a span-constrained answer sits: `spans[index][start:end] == text`."""

    index: int
    start: int
    end: int


@dataclass(frozen=True)
class Generation:
    text: str
    tokens: int
    span: SpanLocation | None = None
    # Mean log-probability of the generated tokens under the unconstrained model: a confidence signal.
    mean_logprob: float | None = None


@dataclass(frozen=True)
class Citation:
    """A passage the answer rests on; `start`/`end` are character offsets in the document's text."""

    number: int
    chunk_id: int
    document_id: int
    source: str
    title: str
    start: int
    end: int
    quote: str


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    citations: list[Citation]
    passages: list[Passage]
    timings: Mapping[str, float]
    abstained: bool = False
    no_answer_score: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class Reading:
    """What a reader made of one question's context. With `passage` set, `text` is
    `context[passage].text[start:end]`; with None it is free text (grounded afterwards); "" means no answer.
    `no_answer` is the reader's calibrated probability that the context does not answer the question."""

    text: str
    passage: int | None = None
    start: int = 0
    end: int = 0
    score: float = 0.0
    no_answer: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Reader(Protocol):
    """Turns (question, passages) into a Reading; loads once, on first use."""

    name: str
    no_answer_threshold: float  # its own abstention threshold, chosen on validation data (1.0: none)

    def load(self) -> None: ...

    def read(
        self, questions: Sequence[str], contexts: Sequence[Sequence[Passage]], style: str = "short"
    ) -> list[Reading]: ...

    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class StreamingReader(Reader, Protocol):
    """A reader whose answers can arrive in pieces: `stream` yields text pieces, then one Reading."""

    def stream(
        self,
        question: str,
        context: Sequence[Passage],
        style: str,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Iterator[str | Reading]: ...


@runtime_checkable
class Generator(Protocol):
    """A causal LM behind one of the backends; loads once, on first use."""

    name: str

    def load(self) -> None: ...

    def format_chat(self, messages: Sequence[Mapping[str, str]]) -> str: ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]: ...

    def stream(self, request: GenerationRequest) -> Iterator[str]: ...


@runtime_checkable
class Retriever(Protocol):
    def retrieve(
        self, query: str, k: int, collection: str, filters: Mapping[str, Any] | None = None
    ) -> list[Passage]: ...
