"""ragkit in LlamaIndex: a retriever returning scored TextNodes, and a synthesizer that answers with our reader.

`RagkitRetriever.from_store("store").retrieve("question")` -> NodeWithScore list: node id = chunk id,
`start_char_idx`/`end_char_idx` = offsets in the document's text, score = our fused score, and the same
metadata as the LangChain adapter (rag.integrations.passages). `RetrieverQueryEngine(retriever,
response_synthesizer=RagkitSynthesizer(rag))` answers with ragkit's own reader and answer policy, so a query
engine runs with no LLM service at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

try:
    from llama_index.core.base.response.schema import Response
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.llms import MockLLM
    from llama_index.core.response_synthesizers import BaseSynthesizer
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import (
        BaseNode,
        NodeRelationship,
        NodeWithScore,
        QueryBundle,
        QueryType,
        RelatedNodeInfo,
        TextNode,
    )
except ImportError as exc:  # the adapter is optional; the rest of ragkit never imports it
    raise ImportError("ragkit's LlamaIndex retriever needs llama-index-core: pip install 'ragkit[llamaindex]'") from exc

from index import Passage
from rag.api import RAG
from rag.config import AnswerStyle
from rag.integrations.passages import HIDDEN_KEYS, passage_from_metadata, passage_metadata

__all__ = ["RagkitRetriever", "RagkitSynthesizer", "passage_from_node", "to_nodes"]


def to_nodes(passages: Sequence[Passage]) -> list[NodeWithScore]:
    """Ranked passages as scored TextNodes; the SOURCE relation names the document (its `source`)."""
    return [
        NodeWithScore(
            node=TextNode(
                text=p.text,
                id_=str(p.chunk_id),
                metadata=passage_metadata(p, rank),
                start_char_idx=p.start,
                end_char_idx=p.end,
                excluded_embed_metadata_keys=list(HIDDEN_KEYS),
                excluded_llm_metadata_keys=list(HIDDEN_KEYS),
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=p.source)},
            ),
            score=p.score,
        )
        for rank, p in enumerate(passages, start=1)
    ]


def passage_from_node(node: BaseNode) -> Passage:
    """The Passage behind a node this retriever returned."""
    return passage_from_metadata(node.get_content(), node.metadata)


class RagkitRetriever(BaseRetriever):
    """A ragkit store behind LlamaIndex's retriever interface; the arguments are `RAG.retrieve`'s."""

    def __init__(
        self,
        rag: RAG,
        k: int | None = None,
        collection: str | None = None,
        filters: dict[str, Any] | None = None,
        documents: bool = False,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if k is not None and k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self.rag = rag
        self.k = k
        self.collection = collection
        self.filters = filters
        self.documents = documents

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
        """Open a store folder; `overrides` are RagSettings fields. The retriever then owns the store:
        `retriever.rag.close()` when done."""
        return cls(RAG.open(store, **overrides), k, collection, filters, documents)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        passages = self.rag.retrieve(query_bundle.query_str, self.k, self.collection, self.filters, self.documents)
        return to_nodes(passages)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # The base class would run the blocking search on the event loop; the store is thread-safe.
        return await asyncio.to_thread(self._retrieve, query_bundle)


class RagkitSynthesizer(BaseSynthesizer):
    """Answers from the retrieved nodes with the RAG's reader and answer policy (abstention, citations).

    The Response's text is the answer (NO_ANSWER when it abstains); its metadata holds `abstained`,
    `no_answer_score` and `citations` (chunk id, source, offsets in the document, quote).
    """

    def __init__(
        self, rag: RAG, style: AnswerStyle | None = None, callback_manager: CallbackManager | None = None
    ) -> None:
        # BaseSynthesizer sizes prompts from an LLM's metadata and would otherwise resolve the default LLM
        # (OpenAI). Our reader builds no prompt here, so the offline stand-in is never called.
        super().__init__(llm=MockLLM(), callback_manager=callback_manager)
        self.rag = rag
        self.style = style

    def _get_prompts(self) -> dict[str, Any]:
        return {}

    def _update_prompts(self, prompts: dict[str, Any]) -> None:
        """No prompts to update: the reader is a span model, or a generator with ragkit's own prompt."""

    def synthesize(
        self,
        query: QueryType,
        nodes: list[NodeWithScore],
        additional_source_nodes: Sequence[NodeWithScore] | None = None,
        **response_kwargs: Any,
    ) -> Response:
        question = query if isinstance(query, str) else query.query_str
        passages = [passage_from_node(n.node) for n in nodes]
        answer = self.rag.answer_from_passages([question], [passages], self.style)[0]
        metadata = {
            "abstained": answer.abstained,
            "no_answer_score": answer.no_answer_score,
            "citations": [asdict(c) for c in answer.citations],
        }
        return Response(answer.text, source_nodes=[*nodes, *(additional_source_nodes or [])], metadata=metadata)

    async def asynthesize(
        self,
        query: QueryType,
        nodes: list[NodeWithScore],
        additional_source_nodes: Sequence[NodeWithScore] | None = None,
        **response_kwargs: Any,
    ) -> Response:
        return await asyncio.to_thread(self.synthesize, query, nodes, additional_source_nodes)

    def get_response(self, query_str: str, text_chunks: Sequence[str], **response_kwargs: Any) -> str:
        raise NotImplementedError("RagkitSynthesizer reads nodes (their offsets and scores), not text: call synthesize")

    async def aget_response(self, query_str: str, text_chunks: Sequence[str], **response_kwargs: Any) -> str:
        raise NotImplementedError("RagkitSynthesizer reads nodes (their offsets and scores), not text: call synthesize")
