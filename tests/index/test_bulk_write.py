"""Bulk writes: ids ascend in insertion order, each vector lands under its own chunk, the keyword index is exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from index import DocumentIn, SentenceTransformerEmbedder, Store
from index.types import ChunkIn
from ingest.types import content_hash

pytestmark = pytest.mark.integration


def numbered_doc(number: int, chunks: int, version: str = "") -> DocumentIn:
    """A document whose every chunk holds one word no other chunk holds (`w<number>x<ordinal><version>`)."""
    words = [f"w{number}x{ordinal}{version}" for ordinal in range(chunks)]
    paragraphs = [f"Paragraph {ordinal} mentions {word}." for ordinal, word in enumerate(words)]
    body = "\n\n".join(paragraphs)
    parts, cursor = [], 0
    for ordinal, paragraph in enumerate(paragraphs):
        parts.append(ChunkIn(ordinal, cursor, cursor + len(paragraph), paragraph))
        cursor += len(paragraph) + 2
    return DocumentIn(f"doc-{number}.txt", body, content_hash(body), parts, title=f"Document {number}")


def one_vector_each(docs: list[DocumentIn], rng: np.random.Generator, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    chunks = sum(len(d.chunks) for d in docs)
    vectors = rng.normal(size=(chunks, dimension)).astype(np.float32)
    return np.ones(chunks, dtype=np.int64), vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def stored_order(store: Store) -> list[tuple[str, int]]:
    with store.session() as session:
        rows = session.execute(
            text("SELECT d.source, c.ordinal FROM chunks c JOIN documents d ON d.id = c.document_id ORDER BY c.id")
        )
        return [(source, ordinal) for source, ordinal in rows]


def test_a_large_batch_keeps_insertion_order_vectors_and_keywords(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, database_url: str | None
) -> None:
    rng = np.random.default_rng(7)
    first = [numbered_doc(n, 3) for n in range(10)]
    # More than a thousand chunks (past SQLAlchemy's rows per INSERT statement), documents without chunks among
    # them, and three replacements of stored documents in the middle of the batch.
    batch = [numbered_doc(n, n % 9) for n in range(10, 130)]
    batch[40:40] = [numbered_doc(n, 4, version="v2") for n in (2, 0, 5)]
    batch += [numbered_doc(n, 12) for n in range(130, 170)]
    with Store.open(tmp_path / "store", embedder=embedder, database_url=database_url) as store:
        store.add(first, embedded=one_vector_each(first, rng, embedder.dimension))
        counts, vectors = one_vector_each(batch, rng, embedder.dimension)
        result = store.add(batch, embedded=(counts, vectors))
        assert (result.added, result.replaced, result.chunks) == (160, 3, len(vectors))

        kept = [d for d in first if d.source not in {"doc-2.txt", "doc-0.txt", "doc-5.txt"}]
        assert [d.source for d in store.documents()] == [d.source for d in kept + batch]
        expected = [(d.source, c.ordinal) for d in kept + batch for c in d.chunks]
        assert stored_order(store) == expected

        ids = [hits[0][0] for hits in store.dense_search(vectors, 1)]
        passages = store.passages([(i, 0.0) for i in ids])
        assert [(p.source, p.ordinal) for p in passages] == expected[-len(vectors) :]
        assert ids == sorted(ids)

        words = [(d.source, c.ordinal, c.text.split()[-1].rstrip(".")) for d in batch for c in d.chunks][::7]
        for source, ordinal, word in words:
            hits = store.passages(store.keyword_search(word, 3))
            assert [(p.source, p.ordinal) for p in hits] == [(source, ordinal)]
        assert store.keyword_search("w2x0", 3) == []  # the replaced version's words are gone
        report = store.check()[0]
        assert report.consistent, report
        assert report.keyword_chunks in (None, report.sql_chunks)
