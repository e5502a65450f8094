"""Hostile text in requests: lone surrogates and NUL in a chat message, a question or a filter are repaired
before they reach the tokenizers and the database, never a 500. Real app over a real store and the shipped reader."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ingest.pipeline import ingest_paths
from rag import RAG
from rag.service import create_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    docs = tmp_path_factory.mktemp("docs")
    (docs / "ada.md").write_text("Ada Lovelace was born in London on 10 December 1815.\n")
    qa = RAG.open(tmp_path_factory.mktemp("store"))
    assert ingest_paths(qa.store, [docs], progress=False).documents == 1
    app = create_app(qa)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client
    qa.close()


def post(client: TestClient, path: str, raw_json: str) -> tuple[int, dict]:
    response = client.post(path, content=raw_json.encode(), headers={"Content-Type": "application/json"})
    return response.status_code, response.json()


def test_a_lone_surrogate_in_a_question_or_filter_is_repaired(client: TestClient) -> None:
    status, body = post(client, "/v1/ask", '{"question": "When was Ada born? \\ud800\\u0000"}')
    assert status == 200, body
    assert "1815" in body["text"]
    status, body = post(
        client, "/v1/ask", '{"question": "When was Ada born?", "filters": {"source\\udc00": "x\\ud800"}}'
    )
    assert status == 200, body
    assert body["abstained"]  # nothing matches the filter: an answer, not an error


def test_a_lone_surrogate_in_a_chat_message_is_repaired(client: TestClient) -> None:
    message = '{"role": "user", "content": [{"type": "text", "text": "When was Ada born? \\udfff"}]}'
    status, body = post(client, "/v1/chat/completions", f'{{"model": "default", "messages": [{message}]}}')
    assert status == 200, body
    assert "1815" in body["choices"][0]["message"]["content"]
    json.dumps(body, ensure_ascii=False).encode("utf-8")  # the response itself is valid UTF-8
