"""Optional second-stage reranking with a cross-encoder the user supplies (none ships offline)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from index import Passage


class CrossEncoderReranker:
    """Scores (query, passage) pairs with a sentence-transformers CrossEncoder; loads once, on first use."""

    def __init__(self, name_or_path: str, batch_size: int = 32, device: str | None = None) -> None:
        self.name = name_or_path
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import CrossEncoder

                from index.embedder import best_device

                self._model = CrossEncoder(self.name, device=self.device or best_device())
            return self._model

    def rerank(self, query: str, passages: Sequence[Passage], k: int) -> list[Passage]:
        """The top-k passages by cross-encoder score; `score` becomes that score."""
        if not passages:
            return []
        scores = self.load().predict(
            [(query, p.text) for p in passages], batch_size=self.batch_size, show_progress_bar=False
        )
        ranked = sorted(zip(passages, (float(s) for s in scores), strict=True), key=lambda item: -item[1])
        return [replace(p, score=s) for p, s in ranked[:k]]


def best_per_document(passages: Sequence[Passage]) -> list[Passage]:
    """Roll chunk hits up to documents: each document once, at the rank of its best chunk."""
    seen: set[int] = set()
    out = []
    for passage in passages:
        if passage.document_id not in seen:
            seen.add(passage.document_id)
            out.append(passage)
    return out
