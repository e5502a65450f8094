"""ragkit behind LangChain's and LlamaIndex's retriever interfaces, over real SQuAD paragraphs with the real
packaged embedder and reader. The libraries are optional extras ([langchain], [llamaindex]); scripts/install.sh
--dev installs both, so CI runs these tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough  # noqa: E402
from llama_index.core.query_engine import RetrieverQueryEngine  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeWithScore  # noqa: E402

from index import Passage, SentenceTransformerEmbedder, Store  # noqa: E402
from ingest.pipeline import ingest_paths  # noqa: E402
from rag import RAG, Answer  # noqa: E402
from rag.integrations import langchain as lc  # noqa: E402
from rag.integrations import llama_index as li  # noqa: E402
from rag.integrations.passages import NotAPassageError, passage_from_metadata, passage_metadata  # noqa: E402

PARAGRAPHS = 6  # the first six paragraphs of each of the first two SQuAD v1.1 dev articles
# Questions whose answers the shipped reader gets right from this slice, with their gold paragraphs.
NETWORK = ("Which network broadcasted Super Bowl 50 in the U.S.?", "Super_Bowl_50/3", "CBS")
COMMISSIONER = ("Who was the NFL Commissioner in early 2012?", "Super_Bowl_50/4", "Roger Goodell")
LIBRARY = ("When was the University Library founded?", "Warsaw/5", "1816")
PULASKI = ("What year was Casimir Pulaski born in Warsaw?", "Warsaw/0", "1745")


@pytest.fixture(scope="module")
def squad_file(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    data = json.loads((data_dir / "squad" / "dev-v1.1.json").read_text())["data"][:2]
    sliced = [dict(article, paragraphs=article["paragraphs"][:PARAGRAPHS]) for article in data]
    path = tmp_path_factory.mktemp("squad") / "slice.json"
    path.write_text(json.dumps({"version": "1.1", "data": sliced}))
    return path


@pytest.fixture(scope="module")
def store_path(
    tmp_path_factory: pytest.TempPathFactory, squad_file: Path, embedder: SentenceTransformerEmbedder
) -> Path:
    path = tmp_path_factory.mktemp("store")
    store = Store.open(path, embedder=embedder)
    try:
        assert ingest_paths(store, [squad_file], progress=False).added == 2 * PARAGRAPHS
    finally:
        store.close()
    return path


@pytest.fixture(scope="module")
def qa(store_path: Path) -> Iterator[RAG]:
    opened = RAG.open(store_path)
    yield opened
    opened.close()


def paragraph(source: str) -> str:
    """`Title/index` of a SQuAD paragraph, from its document source (`{path}#{title}/{index}`)."""
    return source.rsplit("#", 1)[1]


def answer_from_documents(qa: RAG, question: str, documents: list[Document]) -> Answer:
    passages = [lc.passage_from_document(d) for d in documents]
    return qa.answer_from_passages([question], [passages])[0]


# ---- LangChain ---------------------------------------------------------------------------------------


@pytest.mark.integration
def test_langchain_documents_are_our_passages(qa: RAG) -> None:
    question, gold, _ = NETWORK
    retriever = lc.RagkitRetriever(rag=qa, k=3)
    documents = retriever.invoke(question)
    passages = qa.retrieve(question, k=3)
    assert [d.page_content for d in documents] == [p.text for p in passages]
    assert [d.metadata["score"] for d in documents] == [p.score for p in passages]
    top = documents[0]
    assert paragraph(top.metadata["source"]) == gold
    assert top.metadata["title"] == "Super Bowl 50"
    # The document's own metadata rides along (the SQuAD loader records article and paragraph).
    assert (top.metadata["article"], top.metadata["paragraph_index"]) == ("Super_Bowl_50", 3)
    assert "page" not in top.metadata  # no pages in a SQuAD paragraph
    for rank, document in enumerate(documents, start=1):
        meta = document.metadata
        assert meta["rank"] == rank and document.id == str(meta["chunk_id"])
        text = qa.store.document_text(meta["document_id"])
        assert text[meta["start_index"] : meta["end_index"]] == document.page_content
    with pytest.raises(ValueError):
        lc.RagkitRetriever(rag=qa, k=0)


@pytest.mark.integration
def test_langchain_chain_answers_with_our_reader(qa: RAG) -> None:
    question, _, expected = NETWORK
    retriever = lc.RagkitRetriever(rag=qa)
    read = RunnableLambda(lambda x: answer_from_documents(qa, x["question"], x["documents"]))
    chain = RunnableParallel(documents=retriever, question=RunnablePassthrough()) | read
    answer = chain.invoke(question)
    assert answer.text == expected and not answer.abstained
    citation = answer.citations[0]
    assert qa.store.document_text(citation.document_id)[citation.start : citation.end] == expected
    assert chain.batch([COMMISSIONER[0], LIBRARY[0]])[1].text == LIBRARY[2]


@pytest.mark.integration
def test_langchain_batch_and_async_from_a_store_folder(store_path: Path) -> None:
    retriever = lc.RagkitRetriever.from_store(store_path, k=2, retrieval="dense")
    try:
        batches = retriever.batch([COMMISSIONER[0], LIBRARY[0]])
        assert [paragraph(docs[0].metadata["source"]) for docs in batches] == [COMMISSIONER[1], LIBRARY[1]]
        assert all(len(docs) == 2 for docs in batches)
        # Dense retrieval alone: no keyword score.
        assert batches[0][0].metadata["keyword_score"] is None and batches[0][0].metadata["dense_score"] > 0
        awaited = asyncio.run(retriever.ainvoke(LIBRARY[0]))
        assert [d.id for d in awaited] == [d.id for d in batches[1]]
    finally:
        retriever.rag.close()


# ---- LlamaIndex --------------------------------------------------------------------------------------


@pytest.mark.integration
def test_llama_index_nodes_carry_scores_and_offsets(qa: RAG) -> None:
    question, gold, _ = PULASKI
    results = li.RagkitRetriever(qa, k=3).retrieve(question)
    passages = qa.retrieve(question, k=3)
    assert all(isinstance(r, NodeWithScore) for r in results)
    assert [r.score for r in results] == [p.score for p in passages]
    assert [r.node.node_id for r in results] == [str(p.chunk_id) for p in passages]
    top = results[0].node
    assert paragraph(top.metadata["source"]) == gold and top.ref_doc_id == top.metadata["source"]
    for result in results:
        node = result.node
        text = qa.store.document_text(node.metadata["document_id"])
        assert text[node.start_char_idx : node.end_char_idx] == node.get_content()
        assert (node.start_char_idx, node.end_char_idx) == (node.metadata["start_index"], node.metadata["end_index"])
    # What a language model would see: the title and source, not our bookkeeping.
    shown = top.get_content(metadata_mode=MetadataMode.LLM)
    assert "title: Warsaw" in shown and "chunk_id" not in shown and "dense_score" not in shown
    with pytest.raises(ValueError, match="k must be at least 1"):
        li.RagkitRetriever(qa, k=0)


@pytest.mark.integration
def test_llama_index_query_engine_answers_with_our_reader(qa: RAG) -> None:
    engine = RetrieverQueryEngine(li.RagkitRetriever(qa, k=5), response_synthesizer=li.RagkitSynthesizer(qa))
    question, gold, expected = PULASKI
    response = engine.query(question)
    assert str(response) == expected and response.metadata["abstained"] is False
    assert paragraph(response.source_nodes[0].node.metadata["source"]) == gold
    citation = response.metadata["citations"][0]
    assert qa.store.document_text(citation["document_id"])[citation["start"] : citation["end"]] == expected
    assert str(asyncio.run(engine.aquery(LIBRARY[0]))) == LIBRARY[2]


# ---- the shared metadata -----------------------------------------------------------------------------


def pdf_passage(start: int, end: int) -> Passage:
    meta = {"page_count": 3, "page_starts": [0, 100, 250], "author": "A. Writer"}
    return Passage(7, 3, "report.pdf", "Report", "x" * (end - start), start, end, 2, "default", meta, 1.5, 0.6, 4.0)


@pytest.mark.unit
def test_pages_come_from_the_documents_page_starts() -> None:
    meta = passage_metadata(pdf_passage(10, 90), 1)
    assert (meta["page"], meta["page_end"]) == (1, 1)
    meta = passage_metadata(pdf_passage(90, 260), 2)
    assert (meta["page"], meta["page_end"], meta["rank"], meta["author"]) == (1, 3, 2, "A. Writer")
    meta = passage_metadata(pdf_passage(100, 250), 1)  # ends exactly where page 3 begins
    assert (meta["page"], meta["page_end"]) == (2, 2)


@pytest.mark.unit
def test_metadata_round_trips_to_the_passage() -> None:
    passage = pdf_passage(90, 260)
    assert passage_from_metadata(passage.text, passage_metadata(passage, 4)) == passage
    with pytest.raises(NotAPassageError, match="chunk_id"):
        passage_from_metadata("text", {"source": "elsewhere"})
