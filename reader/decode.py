"""From start/end logits to character spans: n-best spans per window, compared across windows and passages
on one scale, the margin of the best span over its window's null ([CLS]) score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from reader.features import Window


@dataclass(frozen=True)
class SpanCandidate:
    """A span of passage `item`'s text; `margin` = span score - null score of the window it came from,
    the one number that is comparable across windows and passages."""

    item: int
    start: int
    end: int
    score: float
    margin: float


def window_spans(
    window: Window, start_logits: np.ndarray, end_logits: np.ndarray, n_best: int, max_answer_tokens: int
) -> list[SpanCandidate]:
    """The `n_best` highest-scoring spans (start <= end, at most `max_answer_tokens` tokens, passage tokens only)."""
    valid = np.array([span is not None for span in window.offsets])
    length = len(window.offsets)
    start_logits, end_logits = start_logits[:length], end_logits[:length]
    null = float(start_logits[window.null_index] + end_logits[window.null_index])
    if not valid.any():
        return []
    scores = start_logits[:, None] + end_logits[None, :]
    allowed = _band(length, max_answer_tokens) & valid[:, None] & valid[None, :]
    scores = np.where(allowed, scores, -np.inf)
    flat = scores.ravel()
    count = min(n_best, int(allowed.sum()))
    top = np.argpartition(-flat, count - 1)[:count]
    spans = []
    for index in top[np.argsort(-flat[top])]:
        s, e = divmod(int(index), length)
        begin, end = window.offsets[s][0], window.offsets[e][1]  # type: ignore[index]
        if end > begin:
            score = float(flat[index])
            spans.append(SpanCandidate(window.item, begin, end, score, score - null))
    return spans


@lru_cache(maxsize=64)
def _band(length: int, max_answer_tokens: int) -> np.ndarray:
    """(start, end) pairs with 0 <= end - start < max_answer_tokens; windows share a few lengths."""
    gap = np.arange(length)[None, :] - np.arange(length)[:, None]
    band = (gap >= 0) & (gap < max_answer_tokens)
    band.flags.writeable = False
    return band


def rank_spans(candidates: Sequence[SpanCandidate]) -> list[SpanCandidate]:
    """Candidates by margin, best first; the same span seen in overlapping windows is kept once (its best)."""
    best: dict[tuple[int, int, int], SpanCandidate] = {}
    for c in candidates:
        key = (c.item, c.start, c.end)
        if key not in best or c.margin > best[key].margin:
            best[key] = c
    return sorted(best.values(), key=lambda c: c.margin, reverse=True)
