"""Narrow a passage to the sentence that answers the question before a small reader sees it.

Small readers lose the answer in a long passage: on 200 seeded SQuAD v1.1 dev questions with the gold
paragraph, Gemma-3-270M scores EM 28.0 on the whole paragraph and 32.5 on its one best sentence, at a
sixth of the cost. A sentence is scored by the sum of two z-scores over the passage's sentences: its
cosine to the question (embedded under the passage title, as the index embeds it) and the number of
question words it shares. That picks a sentence holding the answer for 85.2% of the 10,570 questions
(lexical alone 81.2%, cosine alone 80.6%).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from index import Passage
from index.keyword import query_terms
from index.sentences import split_sentences, titled
from index.types import Embedder

_SUFFIXES = ("ing", "ed", "es", "s")


def _stem(word: str) -> str:
    """Strip one common inflection, so "opened" meets "opens"; a crude stem is enough to count overlap."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _terms(text: str) -> set[str]:
    return {_stem(term) for term in query_terms(text)}


def _zscore(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    return (values - values.mean()) / std if std > 0 else np.zeros_like(values)


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the passage's sentences, in order."""
    spans, cursor = [], 0
    for sentence in split_sentences(text):
        start = text.find(sentence, cursor)
        spans.append((start, start + len(sentence)))
        cursor = start + len(sentence)
    return spans


def focus_passages(
    questions: Sequence[str], contexts: Sequence[Sequence[Passage]], embedder: Embedder, keep: int = 1
) -> list[list[Passage]]:
    """Each passage cut down to its `keep` best sentences (kept in order, with the text between them).

    The returned passages keep their chunk ids, with `start`/`end` moved to the kept text, so offsets in
    them are still offsets in the source document. Passages of `keep` sentences or fewer come back whole.
    """
    plans: list[tuple[int, int, list[tuple[int, int]]]] = []  # (question, passage) -> sentence spans
    texts: list[str] = []
    for qi, context in enumerate(contexts):
        for pi, passage in enumerate(context):
            spans = _sentence_spans(passage.text)
            if len(spans) > keep:
                plans.append((qi, pi, spans))
                texts.extend(titled(passage.text[a:b], passage.title) for a, b in spans)
    focused = [list(context) for context in contexts]
    if not plans:
        return focused
    sentence_vectors = embedder.embed_documents(texts)
    question_vectors = embedder.embed_queries(list(questions))
    offset = 0
    for qi, pi, spans in plans:
        passage = contexts[qi][pi]
        question_terms = _terms(questions[qi])
        cosine = sentence_vectors[offset : offset + len(spans)] @ question_vectors[qi]
        offset += len(spans)
        overlap = np.array([len(question_terms & _terms(passage.text[a:b])) for a, b in spans], dtype=np.float64)
        best = sorted(np.argsort(-(_zscore(cosine.astype(np.float64)) + _zscore(overlap)), kind="stable")[:keep])
        start, end = spans[best[0]][0], spans[best[-1]][1]
        focused[qi][pi] = replace(
            passage, text=passage.text[start:end], start=passage.start + start, end=passage.start + end
        )
    return focused
