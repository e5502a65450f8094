"""The Python QA API: `RAG.open(store).ask(question)` -> an Answer with citations, passages and timings.

One answer path: retriever -> contexts (the top passages) -> Reader -> AnswerPolicy -> Answer, shared by
`ask`, streaming, the HTTP service and evaluation runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from index import Passage, SentenceTransformerEmbedder, Store
from rag.config import DEFAULT_CONTEXT_K, AnswerStyle, RagSettings
from rag.policy import AnswerPolicy
from rag.readers import create_reader
from rag.rerank import CrossEncoderReranker
from rag.retriever import StoreRetriever
from rag.types import Answer, Generator, Reader

# Settings that say where the store lives, not how it answers.
LOCATION_SETTINGS = frozenset({"store", "database_url"})
# Settings only a reader reads: its to_dict reports those it uses (the extractive reader reads none of them).
READER_SETTINGS = frozenset(
    {"reader_model", "generator", "backend", "max_new_tokens", "span_answers", "focus_sentences"}
)


class RAG:
    """Retriever + reader + answer policy over one store. Models load once, on first use; share one instance."""

    def __init__(self, store: Store, reader: Reader, settings: RagSettings, policy: AnswerPolicy | None = None) -> None:
        self.store = store
        self.reader = reader
        self.settings = settings
        threshold = settings.no_answer_threshold
        self.policy = policy or AnswerPolicy(
            settings.min_dense_score, reader.no_answer_threshold if threshold is None else threshold
        )
        self.context_k = settings.context_k or DEFAULT_CONTEXT_K[settings.reader]
        reranker = CrossEncoderReranker(settings.reranker) if settings.reranker else None
        self.retriever = StoreRetriever(
            store,
            settings.retrieval,
            settings.candidates,
            settings.rrf_k,
            settings.fusion,
            settings.dense_weight,
            reranker,
            settings.rerank_candidates,
        )

    @classmethod
    def open(
        cls,
        store: str | Path | None = None,
        settings: RagSettings | None = None,
        generator: Generator | str | None = None,
        **overrides: Any,
    ) -> RAG:
        """Open a store folder; `overrides` are RagSettings fields (k=8, reader="generative", ...). `generator`
        (a Generator or a model name) selects the generative reader with that model."""
        if isinstance(generator, str):
            overrides["generator"], generator = generator, None
        if generator is not None or "generator" in overrides:
            overrides.setdefault("reader", "generative")
        base = settings or RagSettings()
        update = dict(overrides, **({"store": Path(store)} if store is not None else {}))
        settings = base.with_overrides(**update)
        embedder = SentenceTransformerEmbedder(settings.embedder) if settings.embedder else None
        opened = Store.open(settings.store, embedder=embedder, database_url=settings.database_url)
        try:
            reader = create_reader(settings, opened.embedder, generator)
        except BaseException:
            opened.close()
            raise
        return cls(opened, reader, settings)

    def close(self) -> None:
        self.store.close()

    def to_dict(self) -> dict[str, Any]:
        """Every setting that shapes an answer, as used: the settings with their defaults resolved (embedder,
        context_k, no-answer threshold) and the reader's own account of itself."""
        settings = self.settings.model_dump(mode="json", exclude=set(LOCATION_SETTINGS | READER_SETTINGS))
        return {
            **settings,
            "embedder": self.store.embedder.name,
            "context_k": self.context_k,
            "min_dense_score": self.policy.min_dense_score,
            "no_answer_threshold": self.policy.no_answer_threshold,
            "reader": self.reader.to_dict(),
        }

    def warm_up(self) -> None:
        """Load the embedder and the reader now rather than on the first question."""
        self.store.embedder.embed_queries(["warm up"])
        self.reader.load()

    def retrieve(
        self,
        query: str,
        k: int | None = None,
        collection: str | None = None,
        filters: Mapping[str, Any] | None = None,
        documents: bool = False,
    ) -> list[Passage]:
        """Top-k passages; `documents=True` returns one (the best) passage per document."""
        k = k or self.settings.k
        return self.retriever.retrieve(query, k, collection or self.settings.collection, filters, documents)

    def ask(
        self,
        question: str,
        k: int | None = None,
        collection: str | None = None,
        filters: Mapping[str, Any] | None = None,
        style: AnswerStyle | None = None,
    ) -> Answer:
        return self.ask_many([question], k, collection, filters, style)[0]

    def ask_many(
        self,
        questions: Sequence[str],
        k: int | None = None,
        collection: str | None = None,
        filters: Mapping[str, Any] | None = None,
        style: AnswerStyle | None = None,
    ) -> list[Answer]:
        """Answer a batch: one embedding call for all questions, one batched read."""
        started = time.perf_counter()
        k = k or self.settings.k
        retrieved = self.retriever.retrieve_many(questions, k, collection or self.settings.collection, filters)
        retrieve_s = (time.perf_counter() - started) / max(1, len(questions))
        return self.answer_from_passages(questions, retrieved, style, retrieve_s)

    def context(self, passages: Sequence[Passage]) -> list[Passage]:
        """What the reader reads of a question's passages: the top `context_k`."""
        return list(passages[: self.context_k])

    def answer_from_passages(
        self,
        questions: Sequence[str],
        passages: Sequence[Sequence[Passage]],
        style: AnswerStyle | None = None,
        retrieve_s: float = 0.0,
    ) -> list[Answer]:
        """Answers from given passages (retrieved, or gold ones for a reader's upper bound)."""
        style = style or self.settings.answer_style
        todo = [i for i, found in enumerate(passages) if self.policy.relevant(found)]
        contexts = {i: self.context(passages[i]) for i in todo}
        started = time.perf_counter()
        readings = self.reader.read([questions[i] for i in todo], [contexts[i] for i in todo], style) if todo else []
        read_s = (time.perf_counter() - started) / max(1, len(todo))
        by_index = dict(zip(todo, readings, strict=True))
        extra = {"reader": self.reader.name}
        answers = []
        for i, question in enumerate(questions):
            spent = read_s if i in by_index else 0.0
            timings = {"retrieve": retrieve_s, "read": spent, "total": retrieve_s + spent}
            context = contexts.get(i, [])
            answers.append(self.policy.answer(question, passages[i], context, by_index.get(i), timings, extra))
        return answers
