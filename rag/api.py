"""The Python QA API: `RAG.open(store).ask(question)` -> an Answer with citations, passages and timings."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from index import Passage, SentenceTransformerEmbedder, Store
from index.keyword import STOPWORDS, query_terms
from rag.config import AnswerStyle, RagSettings
from rag.focus import focus_passages
from rag.generators import create_generator
from rag.grounding import cite, declines, ground
from rag.prompt import NO_ANSWER, sentence_messages, short_prompt
from rag.rerank import CrossEncoderReranker
from rag.retriever import StoreRetriever
from rag.types import Answer, Generation, GenerationRequest, Generator


class RAG:
    """Retriever + generator over one store. Models load once, on first use; share one instance."""

    def __init__(self, store: Store, generator: Generator, settings: RagSettings) -> None:
        self.store = store
        self.generator = generator
        self.settings = settings
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
        """Open a store folder; `generator` is a Generator or a model name (generator="gemma-3-270m");
        `overrides` are other RagSettings fields (k=8, retrieval="dense", ...)."""
        if isinstance(generator, str):
            overrides["generator"], generator = generator, None
        base = settings or RagSettings()
        update = dict(overrides, **({"store": Path(store)} if store is not None else {}))
        settings = base.model_copy(update=update) if update else base
        embedder = SentenceTransformerEmbedder(settings.embedder) if settings.embedder else None
        opened = Store.open(settings.store, embedder=embedder, database_url=settings.database_url)
        return cls(opened, generator or create_generator(settings.generator, settings.backend), settings)

    def close(self) -> None:
        self.store.close()

    def warm_up(self) -> None:
        """Load the embedder and the generator now rather than on the first question."""
        self.store.embedder.embed_queries(["warm up"])
        self.generator.load()

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
        span: bool | None = None,
    ) -> Answer:
        return self.ask_many([question], k, collection, filters, style, span)[0]

    def ask_many(
        self,
        questions: Sequence[str],
        k: int | None = None,
        collection: str | None = None,
        filters: Mapping[str, Any] | None = None,
        style: AnswerStyle | None = None,
        span: bool | None = None,
    ) -> list[Answer]:
        """Answer a batch: one embedding call for all questions, one batched generation where the backend allows."""
        started = time.perf_counter()
        k = k or self.settings.k
        retrieved = self.retriever.retrieve_many(questions, k, collection or self.settings.collection, filters)
        retrieve_s = (time.perf_counter() - started) / max(1, len(questions))
        return self.answer_from_passages(questions, retrieved, style, span, retrieve_s)

    def answer_from_passages(
        self,
        questions: Sequence[str],
        passages: Sequence[Sequence[Passage]],
        style: AnswerStyle | None = None,
        span: bool | None = None,
        retrieve_s: float = 0.0,
    ) -> list[Answer]:
        """Generate answers from given passages (retrieved, or gold ones for a reader's upper bound)."""
        style = style or self.settings.answer_style
        span = self.settings.span_answers if span is None else span
        todo = [i for i, retrieved in enumerate(passages) if self.relevant(retrieved)]
        # Only questions that will be answered need their passages cut down (that embeds their sentences).
        focused = self.contexts([questions[i] for i in todo], [passages[i] for i in todo], style)
        contexts: dict[int, list[Passage]] = dict(zip(todo, focused, strict=True))
        started = time.perf_counter()
        generations = self.generator.generate([self.request(questions[i], contexts[i], style, span) for i in todo])
        generate_s = (time.perf_counter() - started) / max(1, len(todo))
        by_index: dict[int, Generation] = dict(zip(todo, generations, strict=True))
        answers = []
        for i, question in enumerate(questions):
            generation = by_index.get(i)
            timings = {
                "retrieve": retrieve_s,
                "generate": generate_s if generation else 0.0,
                "total": retrieve_s + (generate_s if generation else 0.0),
            }
            answers.append(self._answer(question, list(passages[i]), contexts.get(i, []), generation, timings))
        return answers

    def contexts(
        self, questions: Sequence[str], passages: Sequence[Sequence[Passage]], style: AnswerStyle
    ) -> list[list[Passage]]:
        """What the generator reads: the top `context_k` passages; for short answers, each cut to its best
        `focus_sentences` sentences (offsets stay document offsets, so citations still point home)."""
        contexts = [list(p[: self.settings.context_k]) for p in passages]
        if style == "short" and self.settings.focus_sentences:
            contexts = focus_passages(questions, contexts, self.store.embedder, self.settings.focus_sentences)
        return contexts

    def request(self, question: str, context: Sequence[Passage], style: AnswerStyle, span: bool) -> GenerationRequest:
        spans = [p.text for p in context] if span else None
        if style == "short":
            # A short answer that only repeats the question's words (or stopwords) answers nothing.
            known = STOPWORDS | set(query_terms(question))
            return GenerationRequest(
                short_prompt(question, context), self.settings.max_new_tokens, ("\n",), spans, known_words=known
            )
        prompt = self.generator.format_chat(sentence_messages(question, context))
        return GenerationRequest(prompt, max(self.settings.max_new_tokens, 96), ("\n\n",), spans)

    def relevant(self, passages: Sequence[Passage]) -> bool:
        """Whether anything retrieved is close enough to the question to answer from."""
        dense = [p.dense_score for p in passages if p.dense_score is not None]
        if dense:
            return max(dense) >= self.settings.min_dense_score
        return bool(passages)

    def _answer(
        self,
        question: str,
        passages: list[Passage],
        context: list[Passage],
        generation: Generation | None,
        timings: Mapping[str, float],
    ) -> Answer:
        extra = {"generator": self.generator.name}
        if generation is None or declines(generation.text):
            return Answer(question, NO_ANSWER, [], passages, timings, abstained=True, no_answer_score=1.0, extra=extra)
        text = generation.text.strip()
        score = no_answer_score(generation)
        if score is not None and score > self.settings.no_answer_threshold:
            extra["candidate"] = text
            return Answer(
                question, NO_ANSWER, [], passages, timings, abstained=True, no_answer_score=score, extra=extra
            )
        if generation.span is not None:
            where = generation.span
            citations = [cite(context[where.index], where.index + 1, where.start, where.end)]
        else:
            citations = ground(text, context)
        return Answer(question, text, citations, passages, timings, no_answer_score=score, extra=extra)


def no_answer_score(generation: Generation) -> float | None:
    """1 - the model's own mean token probability for its answer: high when the evidence is weak."""
    if generation.mean_logprob is None:
        return None
    return 1.0 - math.exp(generation.mean_logprob)
