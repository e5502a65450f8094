"""Data crossing the store's boundary, and the protocols of its parts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class ChunkIn:
    """A chunk to store: its place in the document and its character offsets in the document's text."""

    ordinal: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class DocumentIn:
    """A document to store, already chunked. `source` is unique within a collection."""

    source: str
    text: str
    content_hash: str
    chunks: Sequence[ChunkIn]
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Passage:
    """A stored chunk as retrieval returns it; `start`/`end` are offsets in the document's text."""

    chunk_id: int
    document_id: int
    source: str
    title: str
    text: str
    start: int
    end: int
    ordinal: int
    collection: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    score: float = 0.0
    dense_score: float | None = None
    keyword_score: float | None = None


@dataclass(frozen=True)
class AddResult:
    """What one `Store.add` call did."""

    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    chunks: int = 0


@dataclass(frozen=True)
class ConsistencyReport:
    """Chunk ids in SQL versus the vector index, per collection; consistent when both differences are empty."""

    collection: str
    sql_chunks: int
    vector_chunks: int
    missing_vectors: tuple[int, ...]
    orphan_vectors: tuple[int, ...]
    keyword_chunks: int | None = None

    @property
    def consistent(self) -> bool:
        keyword_ok = self.keyword_chunks is None or self.keyword_chunks == self.sql_chunks
        return not self.missing_vectors and not self.orphan_vectors and keyword_ok


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    name: str

    @property
    def dimension(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class VectorIndex(Protocol):
    """Inner-product search over vectors keyed by chunk id; a chunk may own several and scores its best."""

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, ids: np.ndarray) -> int: ...

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def ids(self) -> np.ndarray: ...

    def save(self, path: str) -> None: ...
