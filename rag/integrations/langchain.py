"""ragkit as a LangChain retriever: `RagkitRetriever.from_store("store").invoke("question")` -> Documents.

Each Document's `page_content` is a passage's text and its metadata holds our score, rank, chunk id, source,
title, `start_index`/`end_index` (character offsets in the document's text), `page`/`page_end` when the
document knows its pages, and the document's own metadata. `invoke`, `batch` and `ainvoke` come from
LangChain's Runnable; the async calls run retrieval in an executor thread (the store is thread-safe).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # the adapter is optional; the rest of ragkit never imports it
    raise ImportError("ragkit's LangChain retriever needs langchain-core: pip install 'ragkit[langchain]'") from exc
from pydantic import Field

from index import Passage
from rag.api import RAG
from rag.integrations.passages import passage_from_metadata, passage_metadata

__all__ = ["RagkitRetriever", "passage_from_document", "to_documents"]


def to_documents(passages: Sequence[Passage]) -> list[Document]:
    """Ranked passages as Documents (id: the chunk id, the one id ragkit uses in every index)."""
    return [
        Document(page_content=p.text, metadata=passage_metadata(p, rank), id=str(p.chunk_id))
        for rank, p in enumerate(passages, start=1)
    ]


def passage_from_document(document: Document) -> Passage:
    """The Passage behind a Document this retriever returned, e.g. to answer with `RAG.answer_from_passages`."""
    return passage_from_metadata(document.page_content, document.metadata)


class RagkitRetriever(BaseRetriever):
    """A ragkit store behind LangChain's retriever interface; the fields are `RAG.retrieve`'s arguments."""

    rag: RAG
    k: int | None = Field(default=None, ge=1, description="passages per query; default: the RAG's settings.k")
    collection: str | None = Field(default=None, description="default: the RAG's settings.collection")
    filters: dict[str, Any] | None = Field(default=None, description="document metadata filters")
    documents: bool = Field(default=False, description="one (the best) passage per document")

    @classmethod
    def from_store(
        cls,
        store: str | Path,
        k: int | None = None,
        collection: str | None = None,
        filters: dict[str, Any] | None = None,
        documents: bool = False,
        **overrides: Any,
    ) -> RagkitRetriever:
        """Open a store folder; `overrides` are RagSettings fields (retrieval="dense", reranker=...).
        The retriever then owns the store: `retriever.rag.close()` when done."""
        return cls(rag=RAG.open(store, **overrides), k=k, collection=collection, filters=filters, documents=documents)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return to_documents(self.rag.retrieve(query, self.k, self.collection, self.filters, self.documents))
