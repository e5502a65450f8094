"""Passages as the flat metadata dicts LangChain Documents and LlamaIndex nodes carry, and back.

Both adapters share these keys, so a chain that mixes the libraries sees the same fields. The document's own
metadata is merged in beside them; on a name clash ours win (a document cannot disguise its score or source).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from typing import Any

from index import Passage
from rag.errors import RagError

# Keys this module writes. `start_index` is LangChain's name for a chunk's offset in its document (the
# text splitters' add_start_index); `end_index` is its exclusive end.
PASSAGE_KEYS = (
    "score",
    "rank",
    "chunk_id",
    "document_id",
    "collection",
    "source",
    "title",
    "start_index",
    "end_index",
    "ordinal",
    "dense_score",
    "keyword_score",
    "page",
    "page_end",
)
# Written only when the document knows its pages (PDFs record where each page starts).
PAGE_KEYS = ("page", "page_end")
# Bookkeeping a language model or an embedder has no use for (llama_index puts visible metadata in prompts).
HIDDEN_KEYS = tuple(k for k in PASSAGE_KEYS if k not in ("source", "title", "page", "page_end")) + ("page_starts",)


class NotAPassageError(RagError, ValueError):
    """Metadata that was not written by `passage_metadata` (a Document or node from another retriever)."""


def page_span(passage: Passage) -> tuple[int, int] | None:
    """1-based pages where the passage starts and ends, from the document's `page_starts`; None if unknown."""
    starts = passage.metadata.get("page_starts")
    if not isinstance(starts, list) or not starts or not all(isinstance(s, int) for s in starts):
        return None
    # A page's text begins at its start offset; `end` is exclusive, so its last character is end - 1.
    first = max(1, bisect_right(starts, passage.start))
    last = max(first, bisect_right(starts, max(passage.start, passage.end - 1)))
    return first, last


def passage_metadata(passage: Passage, rank: int) -> dict[str, Any]:
    """The document's own metadata plus where the passage sits, how it scored and its `rank` (1 = best)."""
    ours: dict[str, Any] = {
        "score": passage.score,
        "rank": rank,
        "chunk_id": passage.chunk_id,
        "document_id": passage.document_id,
        "collection": passage.collection,
        "source": passage.source,
        "title": passage.title,
        "start_index": passage.start,
        "end_index": passage.end,
        "ordinal": passage.ordinal,
        "dense_score": passage.dense_score,
        "keyword_score": passage.keyword_score,
    }
    pages = page_span(passage)
    if pages is not None:
        ours["page"], ours["page_end"] = pages
    return {**passage.metadata, **ours}


def passage_from_metadata(text: str, metadata: Mapping[str, Any]) -> Passage:
    """Rebuild the Passage that `passage_metadata` described, so our reader can read a framework's results."""
    missing = [key for key in PASSAGE_KEYS if key not in metadata and key not in PAGE_KEYS]
    if missing:
        raise NotAPassageError(f"metadata lacks {', '.join(missing)}: it did not come from a ragkit retriever")
    own = {key: value for key, value in metadata.items() if key not in PASSAGE_KEYS}
    return Passage(
        chunk_id=int(metadata["chunk_id"]),
        document_id=int(metadata["document_id"]),
        source=str(metadata["source"]),
        title=str(metadata["title"]),
        text=text,
        start=int(metadata["start_index"]),
        end=int(metadata["end_index"]),
        ordinal=int(metadata["ordinal"]),
        collection=str(metadata["collection"]),
        metadata=own,
        score=float(metadata["score"]),
        dense_score=metadata["dense_score"],
        keyword_score=metadata["keyword_score"],
    )
