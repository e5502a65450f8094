"""The shipped extractive reader behind the one answer path: `ask`, streaming, the HTTP service and an
evaluation run give the same answer, citation and abstention for the same question."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from eval.datasets import load_dataset
from eval.runner import EvalConfig, run_evaluation
from ingest.pipeline import ingest_paths
from rag import RAG
from rag.service import ServiceSettings, create_app
from rag.streaming import final_answer, stream_answer

pytestmark = pytest.mark.integration

COLLECTION = "kb"
DOCUMENTS = {
    "database.md": (
        "# Database\n\nThe database stores the content of every indexed document. Content is stored as text "
        "and binary data.\n\nThe default database engine is sqlite, which needs no server. PostgreSQL "
        "can be configured for production deployments.\n"
    ),
    "tesla.md": (
        "# Nikola Tesla\n\nNikola Tesla was a Serbian-American inventor and electrical engineer, born in "
        "Smiljan in 1856.\n\nTesla died in room 3327 of the Hotel New Yorker in New York City on 7 January "
        "1943, at the age of 86.\n"
    ),
}
ANSWERABLE = {
    "Which database engine is used by default?": "sqlite",
    "When did Nikola Tesla die?": "7 January 1943",
}
# Asked of related passages (the relevance gate lets it through), but the passages hold no answer.
UNANSWERABLE = "What was authored in the 12th century?"
UNRELATED = "zqxv blorf wibble"


@pytest.fixture(scope="module")
def qa(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[RAG]:
    docs = tmp_path_factory.mktemp("docs")
    for name, text in DOCUMENTS.items():
        (docs / name).write_text(text)
    normans = json.loads((data_dir / "squad" / "dev-v2.0.json").read_text())["data"][0]
    assert normans["title"] == "Normans"  # a training article of the split, never a test one
    (docs / "normans.json").write_text(json.dumps({"version": "v2.0", "data": [normans]}))
    opened = RAG.open(tmp_path_factory.mktemp("store"), collection=COLLECTION)
    report = ingest_paths(opened.store, [docs], collection=COLLECTION, progress=False)
    assert report.ok and not report.errors, report
    yield opened
    opened.close()


def test_shipped_reader_answers_with_exact_document_offsets(qa: RAG) -> None:
    answers = qa.ask_many(list(ANSWERABLE))
    for answer, expected in zip(answers, ANSWERABLE.values(), strict=True):
        assert not answer.abstained and answer.text == expected
        [citation] = answer.citations
        assert qa.store.document_text(citation.document_id)[citation.start : citation.end] == expected
        assert citation.quote == expected and 0.0 <= answer.no_answer_score <= qa.policy.no_answer_threshold
    assert qa.reader.name.startswith("extractive")


def test_sentence_answers_quote_the_sentence_around_the_span(qa: RAG) -> None:
    answer = qa.ask("Which database engine is used by default?", style="sentence")
    assert answer.text == "The default database engine is sqlite, which needs no server."
    citation = answer.citations[0]
    assert qa.store.document_text(citation.document_id)[citation.start : citation.end] == answer.text


def test_shipped_reader_abstains_when_the_passages_cannot_answer(qa: RAG) -> None:
    answer = qa.ask(UNANSWERABLE)
    assert qa.policy.relevant(answer.passages)  # not the relevance gate: the reader's own no-answer probability
    assert answer.abstained and answer.citations == []
    assert answer.no_answer_score > qa.policy.no_answer_threshold
    assert answer.extra["candidate"]  # the span it would have given


def test_ask_stream_service_and_eval_agree(qa: RAG, tmp_path: Path) -> None:
    questions = [*ANSWERABLE, UNANSWERABLE, UNRELATED]
    asked = qa.ask_many(questions)
    streamed = [final_answer(stream_answer(qa, q, COLLECTION, style="short")) for q in questions]
    with TestClient(create_app(qa, ServiceSettings())) as client:
        served = [client.post("/v1/ask", json={"question": q, "collection": COLLECTION}).json() for q in questions]
        chats = [
            client.post(
                "/v1/chat/completions", json={"model": COLLECTION, "messages": [{"role": "user", "content": q}]}
            ).json()
            for q in questions
        ]
    data = tmp_path / "questions.jsonl"
    data.write_text(
        "".join(json.dumps({"id": str(i), "question": q, "answers": ["-"]}) + "\n" for i, q in enumerate(questions))
    )
    settings = qa.settings.model_copy(update={"collection": COLLECTION})
    result = run_evaluation(load_dataset(data, "jsonl"), EvalConfig(progress=False, out=tmp_path / "run"), settings)
    rows = {row["id"]: row for row in map(json.loads, (result.out_dir / "results.jsonl").read_text().splitlines())}
    sentences = qa.ask_many(questions, style="sentence")
    for i, (a, s, h, c, sentence) in enumerate(zip(asked, streamed, served, chats, sentences, strict=True)):
        assert (s.text, s.abstained, s.citations) == (a.text, a.abstained, a.citations)
        assert (h["text"], h["abstained"]) == (a.text, a.abstained)
        assert [(x["start"], x["end"]) for x in h["citations"]] == [(x.start, x.end) for x in a.citations]
        assert rows[str(i)]["prediction"] == ("" if a.abstained else a.text)
        assert rows[str(i)]["abstained"] == a.abstained
        assert c["choices"][0]["message"]["content"] == sentence.text  # chat answers in sentences
    assert [a.abstained for a in asked] == [False, False, True, True]
