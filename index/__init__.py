"""The store: SQL rows + FAISS vectors + a keyword index, kept consistent."""

import reader.threads  # noqa: F401 - before torch and FAISS load OpenMP
from index.embedder import DEFAULT_EMBEDDER, SentenceTransformerEmbedder
from index.errors import (
    EmbedderMismatchError,
    ManifestError,
    NotFoundError,
    StoreBusyError,
    StoreError,
    StoreIntegrityError,
)
from index.store import DEFAULT_COLLECTION, DocumentInfo, Store
from index.types import AddResult, ChunkIn, ConsistencyReport, DocumentIn, Embedder, Passage, VectorIndex

__all__ = [
    "DEFAULT_COLLECTION",
    "DEFAULT_EMBEDDER",
    "AddResult",
    "ChunkIn",
    "ConsistencyReport",
    "DocumentIn",
    "DocumentInfo",
    "Embedder",
    "EmbedderMismatchError",
    "ManifestError",
    "NotFoundError",
    "Passage",
    "SentenceTransformerEmbedder",
    "Store",
    "StoreBusyError",
    "StoreError",
    "StoreIntegrityError",
    "VectorIndex",
]
