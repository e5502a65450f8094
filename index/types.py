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
    """SQL versus the vector and keyword indexes of one collection, and the vector file versus the manifest.

    Consistent when the chunk ids agree everywhere, the vector file is the one the manifest recorded, and every
    sampled chunk's stored vectors are its own text's vectors.
    """

    collection: str
    sql_chunks: int
    vector_chunks: int
    missing_vectors: tuple[int, ...]
    orphan_vectors: tuple[int, ...]
    keyword_chunks: int | None = None
    file_error: str | None = None  # the vector file fails verification (checksum, dimension, count, format)
    sampled_chunks: int = 0  # chunks re-embedded and compared with their stored vectors
    mismatched_vectors: tuple[int, ...] = ()  # sampled chunks whose stored vectors belong to other text

    @property
    def consistent(self) -> bool:
        keyword_ok = self.keyword_chunks is None or self.keyword_chunks == self.sql_chunks
        ids_ok = not self.missing_vectors and not self.orphan_vectors
        return ids_ok and keyword_ok and self.file_error is None and not self.mismatched_vectors

    def problems(self) -> list[str]:
        """One phrase per difference, for people."""
        found = [self.file_error] if self.file_error else []
        if self.missing_vectors:
            found.append(f"{len(self.missing_vectors)} chunks have no vectors")
        if self.orphan_vectors:
            found.append(f"{len(self.orphan_vectors)} vector ids have no chunk")
        if self.keyword_chunks is not None and self.keyword_chunks != self.sql_chunks:
            found.append(f"keyword index holds {self.keyword_chunks} of {self.sql_chunks} chunks")
        if self.mismatched_vectors:
            found.append(
                f"{len(self.mismatched_vectors)} of {self.sampled_chunks} sampled chunks have vectors of other text"
            )
        return found


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
