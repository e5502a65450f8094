"""The app when what lies under it fails: a generation that fails inside transformers, and a store built with
another embedder. Real app (TestClient), real packaged embedder, real Gemma-3-270M on the transformers backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from index import SentenceTransformerEmbedder, Store
from ingest.pipeline import ingest_paths
from rag import RAG
from rag.generators import create_generator
from rag.service import ServiceSettings, create_app

pytestmark = pytest.mark.integration

COLLECTION = "kb"
QUESTION = "When was Ada Lovelace born?"
# A tiny positive temperature turns every logit into +-inf: sampling then fails inside transformers.
HOSTILE_TEMPERATURE = 1e-300
MAX_CONCURRENCY = 2


@pytest.fixture(scope="module")
def qa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RAG]:
    docs = tmp_path_factory.mktemp("docs")
    (docs / "ada_lovelace.md").write_text(
        "# Ada Lovelace\n\nAda Lovelace was an English mathematician and writer, born in London on "
        "10 December 1815. She is chiefly known for her work on Charles Babbage's Analytical Engine.\n"
    )
    generator = create_generator("gemma-3-270m", "transformers")
    opened = RAG.open(tmp_path_factory.mktemp("store"), generator=generator)
    report = ingest_paths(opened.store, [docs], collection=COLLECTION, progress=False)
    assert report.ok and report.documents == 1, report
    opened.warm_up()
    yield opened
    opened.close()


@pytest.fixture
def client(qa: RAG) -> Iterator[TestClient]:
    """A client that sees what a user sees: a server error is a response, not an exception in the test."""
    settings = ServiceSettings(
        max_concurrency=MAX_CONCURRENCY, queue_wait_s=2.0, request_timeout_s=30.0, default_max_tokens=8
    )
    app = create_app(qa, settings)
    yield TestClient(app, raise_server_exceptions=False)
    app.state.service.limiter.close()


def chat(client: TestClient, **extra: object) -> tuple[int, dict]:
    body = {"model": COLLECTION, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8, **extra}
    response = client.post("/v1/chat/completions", json=body)
    return response.status_code, response.json()


def test_failed_generations_answer_502_and_give_their_slots_back(client: TestClient) -> None:
    failures = [chat(client, stream=True, temperature=HOSTILE_TEMPERATURE) for _ in range(MAX_CONCURRENCY + 1)]
    failures.append(chat(client, temperature=HOSTILE_TEMPERATURE))
    status, normal = chat(client)
    # More failures than slots, then a normal request: each failure is 502 and none keeps its slot (no 429).
    assert [s for s, _ in failures] == [502] * (MAX_CONCURRENCY + 2), failures
    for _, body in failures:
        assert body["error"]["code"] == "generation_failed" and body["error"]["type"] == "server_error"
        assert "probability tensor" in body["error"]["message"]
    assert status == 200, normal
    assert normal["choices"][0]["message"]["content"].strip()
    assert client.app.state.service.limiter.active == 0


def test_a_store_built_with_another_embedder_is_503_store_unavailable(qa: RAG, client: TestClient) -> None:
    other = SentenceTransformerEmbedder("sentence-transformers/all-mpnet-base-v2")

    def reopen() -> None:
        Store.open(Path(qa.store.root), embedder=other)

    client.app.add_api_route("/v1/reopen", reopen)
    response = client.get("/v1/reopen")
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "store_unavailable" and error["type"] == "service_unavailable"
    assert "all-mpnet-base-v2" in error["message"]
