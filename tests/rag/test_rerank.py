"""Reranking with a cross-encoder built locally from the packaged MiniLM weights, and document roll-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from index import Passage
from index.embedder import resolve_model_path
from rag.rerank import CrossEncoderReranker, best_per_document

pytestmark = pytest.mark.integration


def passage(chunk_id: int, document_id: int, text: str, score: float = 0.0) -> Passage:
    return Passage(chunk_id, document_id, f"doc{document_id}", "", text, 0, len(text), 0, "default", score=score)


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """No cross-encoder ships on PyPI: build one (BERT body from MiniLM, fresh one-logit head) and save it."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    model = CrossEncoder(resolve_model_path("all-MiniLM-L6-v2"), num_labels=1)
    folder = tmp_path_factory.mktemp("cross-encoder")
    model.save(str(folder))
    return folder


def test_reranker_orders_by_cross_encoder_scores(cross_encoder_dir: Path) -> None:
    from sentence_transformers import CrossEncoder

    hits = [passage(i, i, text) for i, text in enumerate(["Paris is in France.", "Bees dance.", "Rome is old."])]
    reranked = CrossEncoderReranker(str(cross_encoder_dir)).rerank("Where is Paris?", hits, k=2)
    expected = CrossEncoder(str(cross_encoder_dir)).predict([("Where is Paris?", p.text) for p in hits])
    order = sorted(range(3), key=lambda i: -expected[i])[:2]
    assert [p.chunk_id for p in reranked] == order
    assert [p.score for p in reranked] == pytest.approx([float(expected[i]) for i in order], rel=1e-4)


def test_best_per_document_keeps_first_hit_of_each_document() -> None:
    hits = [passage(1, 10, "a", 0.9), passage(2, 11, "b", 0.8), passage(3, 10, "c", 0.7), passage(4, 12, "d", 0.6)]
    assert [p.chunk_id for p in best_per_document(hits)] == [1, 2, 4]
