"""The answer policy: the one place that decides whether a question is answered (relevance, the reader's
no-answer probability, the reader declining) and what the answer cites. `ask`, streaming, the HTTP service
and evaluation runs all build their Answers here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from index import Passage
from rag.grounding import cite, ground
from rag.prompt import NO_ANSWER
from rag.types import Answer, Reading


@dataclass(frozen=True)
class AnswerPolicy:
    min_dense_score: float
    no_answer_threshold: float  # abstain when the reading's no-answer probability exceeds this

    def relevant(self, passages: Sequence[Passage]) -> bool:
        """Whether anything retrieved is close enough to the question to answer from."""
        dense = [p.dense_score for p in passages if p.dense_score is not None]
        if dense:
            return max(dense) >= self.min_dense_score
        return bool(passages)

    def answer(
        self,
        question: str,
        passages: Sequence[Passage],
        context: Sequence[Passage],
        reading: Reading | None,
        timings: Mapping[str, float],
        extra: Mapping[str, Any] | None = None,
    ) -> Answer:
        """The Answer for one question: NO_ANSWER when nothing relevant was read (`reading` None), the reader
        abstained, or its no-answer probability is over the threshold; else its text with a citation."""
        extra = dict(extra or {})
        if reading is None or not reading.text.strip():
            score = 1.0 if reading is None else reading.no_answer
            return Answer(question, NO_ANSWER, [], list(passages), timings, True, score, extra)
        if reading.no_answer is not None and reading.no_answer > self.no_answer_threshold:
            extra["candidate"] = reading.text
            return Answer(question, NO_ANSWER, [], list(passages), timings, True, reading.no_answer, extra)
        if reading.passage is not None:
            citations = [cite(context[reading.passage], reading.passage + 1, reading.start, reading.end)]
        else:
            citations = ground(reading.text, context)
        return Answer(
            question, reading.text.strip(), citations, list(passages), timings, False, reading.no_answer, extra
        )
