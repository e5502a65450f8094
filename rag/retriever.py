"""Dense (FAISS), keyword (SQL full-text) and hybrid retrieval; hybrid fuses the two lists of scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from index import Passage, Store
from rag.config import FusionMethod, RetrievalMode
from rag.rerank import CrossEncoderReranker, best_per_document


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], rrf_k: int = 60) -> list[tuple[int, float]]:
    """Fuse ranked id lists: score(id) = sum over lists of 1 / (rrf_k + rank), ranks from 1."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (rrf_k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def zscore_fusion(scored: Sequence[Sequence[tuple[int, float]]], weights: Sequence[float]) -> list[tuple[int, float]]:
    """Weighted sum of per-list z-scores; an id missing from a list gets that list's lowest z-score.

    Measured on SQuAD v1.1 dev (10,570 questions, 2,067 paragraphs; chunks scored by their best sentence
    vector, titles in the keyword index): equal weights give recall@1 84.1 against 73.1 for dense alone and
    78.1 for BM25 alone (before sentence vectors and titles: 80.8 fused, RRF k=60 73.8).
    """
    tables: list[tuple[dict[int, float], float]] = []
    for hits in scored:
        if not hits:
            tables.append(({}, 0.0))
            continue
        values = np.array([score for _, score in hits], dtype=np.float64)
        mean, std = float(values.mean()), float(values.std()) or 1.0
        z = {chunk_id: (score - mean) / std for chunk_id, score in hits}
        tables.append((z, min(z.values())))
    ids = set().union(*(table for table, _ in tables))
    fused = {i: sum(w * table.get(i, floor) for w, (table, floor) in zip(weights, tables, strict=True)) for i in ids}
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


class StoreRetriever:
    def __init__(
        self,
        store: Store,
        mode: RetrievalMode = "hybrid",
        candidates: int = 50,
        rrf_k: int = 60,
        fusion: FusionMethod = "zscore",
        dense_weight: float = 0.5,
        reranker: CrossEncoderReranker | None = None,
        rerank_candidates: int = 20,
    ) -> None:
        self.store = store
        self.mode = mode
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.fusion = fusion
        self.dense_weight = dense_weight
        self.reranker = reranker
        self.rerank_candidates = rerank_candidates

    def retrieve(
        self,
        query: str,
        k: int,
        collection: str,
        filters: Mapping[str, Any] | None = None,
        documents: bool = False,
    ) -> list[Passage]:
        return self.retrieve_many([query], k, collection, filters, documents)[0]

    def retrieve_many(
        self,
        queries: Sequence[str],
        k: int,
        collection: str,
        filters: Mapping[str, Any] | None = None,
        documents: bool = False,
    ) -> list[list[Passage]]:
        """Batched: one embedding call for all queries. `documents=True`: one hit per document."""
        if self.reranker is None and not documents:
            return self._first_stage(queries, k, collection, filters)
        # Fetch deeper when a later stage will reorder or merge hits.
        depth = max(k, self.rerank_candidates) if self.reranker else k * 4
        results = self._first_stage(queries, depth, collection, filters)
        if self.reranker is not None:
            results = [self.reranker.rerank(q, hits, len(hits)) for q, hits in zip(queries, results, strict=True)]
        if documents:
            results = [best_per_document(hits) for hits in results]
        return [hits[:k] for hits in results]

    def _first_stage(
        self, queries: Sequence[str], k: int, collection: str, filters: Mapping[str, Any] | None
    ) -> list[list[Passage]]:
        depth = max(k, self.candidates) if self.mode == "hybrid" else k
        dense: list[list[tuple[int, float]]] = [[] for _ in queries]
        if self.mode in ("dense", "hybrid"):
            vectors = self.store.embedder.embed_queries(list(queries))
            dense = self.store.dense_search(vectors, depth, collection, filters)
        results = []
        for query, dense_hits in zip(queries, dense, strict=True):
            keyword_hits = self.store.keyword_search(query, depth, collection, filters) if self.mode != "dense" else []
            results.append(self._combine(dense_hits, keyword_hits, k))
        return results

    def _combine(
        self, dense_hits: list[tuple[int, float]], keyword_hits: list[tuple[int, float]], k: int
    ) -> list[Passage]:
        if self.mode == "dense":
            ranked = dense_hits[:k]
        elif self.mode == "keyword":
            ranked = keyword_hits[:k]
        elif self.fusion == "rrf":
            ranked = reciprocal_rank_fusion([[i for i, _ in dense_hits], [i for i, _ in keyword_hits]], self.rrf_k)[:k]
        else:
            weights = (self.dense_weight, 1.0 - self.dense_weight)
            ranked = zscore_fusion([dense_hits, keyword_hits], weights)[:k]
        dense_scores, keyword_scores = dict(dense_hits), dict(keyword_hits)
        return [
            replace(p, dense_score=dense_scores.get(p.chunk_id), keyword_score=keyword_scores.get(p.chunk_id))
            for p in self.store.passages(ranked)
        ]
