"""The HTTP service end to end: a real uvicorn server on loopback over a real store, with the real packaged
embedder and generator, driven by the official `openai` client, LangChain, httpx and a real browser."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ingest.pipeline import ingest_paths
from rag import RAG
from rag.service import ServiceSettings, create_app

pytestmark = pytest.mark.integration

SQUAD = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "squad" / "dev-v1.1.json"
KEY = "test-key-0123456789"
COLLECTION = "kb"
MAX_TOKENS = 24
CHROMIUM = Path("/usr/bin/chromium")

DOCUMENTS = {
    "ada_lovelace.md": (
        "# Ada Lovelace\n\nAda Lovelace was an English mathematician and writer, born in London on "
        "10 December 1815. She is chiefly known for her work on Charles Babbage's proposed mechanical "
        "general-purpose computer, the Analytical Engine. She wrote what is recognised as the first published "
        "algorithm intended to be carried out by such a machine.\n\nAda Lovelace died of uterine cancer on "
        "27 November 1852 in Marylebone, London, at the age of 36.\n"
    ),
    "nikola_tesla.md": (
        "# Nikola Tesla\n\nNikola Tesla was a Serbian-American inventor and electrical engineer, born in "
        "Smiljan in 1856. He is best known for his contributions to the design of the modern alternating "
        "current (AC) electricity supply system.\n\nTesla died in room 3327 of the Hotel New Yorker in New York "
        "City on 7 January 1943, at the age of 86.\n"
    ),
    "sourdough.md": (
        "# Sourdough bread\n\nA sourdough starter is a mixture of flour and water that hosts wild yeast and "
        "lactic acid bacteria. Bakers feed the starter with fresh flour and water every day. Sourdough bread "
        "is leavened by the starter instead of baker's yeast, which gives it a tangy flavour.\n"
    ),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(app: object) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port in a thread, until the block ends; waits for /readyz."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not become ready"
        time.sleep(0.2)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def qa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RAG]:
    if not SQUAD.is_file():
        pytest.skip(f"SQuAD dev set missing: {SQUAD}")
    docs = tmp_path_factory.mktemp("docs")
    for name, text in DOCUMENTS.items():
        (docs / name).write_text(text)
    article = json.loads(SQUAD.read_text())["data"][0]
    article = {**article, "paragraphs": article["paragraphs"][:10]}
    (docs / "squad.json").write_text(json.dumps({"version": "1.1", "data": [article]}))
    # The generative reader: these tests cover streaming piece by piece (the extractive default is covered
    # by tests/rag/test_answer_path.py).
    opened = RAG.open(tmp_path_factory.mktemp("store"), reader="generative")
    report = ingest_paths(opened.store, [docs], collection=COLLECTION, progress=False)
    assert report.ok and not report.errors and report.documents >= 13, report
    yield opened
    opened.close()


def settings(**overrides: object) -> ServiceSettings:
    base = {
        "api_keys": [KEY],
        "max_body_bytes": 64 * 1024,
        "max_prompt_tokens": 256,
        "default_max_tokens": MAX_TOKENS,
        "model_aliases": {"gpt-4o-mini": COLLECTION},
    }
    return ServiceSettings(**{**base, **overrides})


@pytest.fixture(scope="module")
def server(qa: RAG) -> Iterator[str]:
    with running(create_app(qa, settings())) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str):  # noqa: ANN201 - openai.OpenAI
    import openai

    return openai.OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def chat_body(question: str, **extra: object) -> dict[str, object]:
    return {"model": COLLECTION, "messages": [{"role": "user", "content": question}], "max_tokens": MAX_TOKENS, **extra}


# ---- the OpenAI-compatible API ------------------------------------------------------------------------


def test_models_list_the_collections_and_aliases(client) -> None:  # noqa: ANN001
    assert {COLLECTION, "gpt-4o-mini"} <= {m.id for m in client.models.list()}


def test_chat_completion_answers_with_sources(client) -> None:  # noqa: ANN001
    completion = client.chat.completions.create(
        model=COLLECTION, messages=[{"role": "user", "content": "Who was Ada Lovelace?"}], max_tokens=MAX_TOKENS
    )
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in {"stop", "length"}
    assert completion.usage.prompt_tokens > 0 and completion.usage.total_tokens >= completion.usage.prompt_tokens
    sources = completion.model_extra["sources"]
    assert sources[0]["source"].endswith("ada_lovelace.md")
    for source in sources:
        assert {"source", "chunk_id", "start", "end", "text", "score"} <= set(source)
        assert source["end"] - source["start"] == len(source["text"])


def test_streamed_chat_ends_with_sources_and_done(client, server: str) -> None:  # noqa: ANN001
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",  # an alias of the collection
            messages=[{"role": "user", "content": "What is a sourdough starter?"}],
            max_tokens=MAX_TOKENS,
            stream=True,
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks) and len({c.id for c in chunks}) == 1
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1 and "".join(pieces).strip()  # streamed piece by piece, not in one go
    last = chunks[-1]
    assert last.choices[0].finish_reason in {"stop", "length"}
    assert last.model_extra["sources"][0]["source"].endswith("sourdough.md")
    assert all("sources" not in (c.model_extra or {}) for c in chunks[:-1])
    with httpx.stream(
        "POST", f"{server}/v1/chat/completions", json=chat_body("Who was Nikola Tesla?", stream=True), headers=auth()
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert "sources" in json.loads(lines[-2].removeprefix("data: "))


def test_a_follow_up_question_retrieves_the_conversations_topic(client) -> None:  # noqa: ANN001
    messages = [
        {"role": "user", "content": "Who was Ada Lovelace?"},
        {"role": "assistant", "content": "Ada Lovelace was an English mathematician."},
        {"role": "user", "content": "and when did she die?"},
    ]
    completion = client.chat.completions.create(model=COLLECTION, messages=messages, max_tokens=MAX_TOKENS)
    assert completion.model_extra["sources"][0]["source"].endswith("ada_lovelace.md")


def test_a_wrong_key_is_refused_with_401(server: str) -> None:
    import openai

    bad = openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=COLLECTION, messages=[{"role": "user", "content": "hi"}])
    response = httpx.get(f"{server}/v1/models")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_langchain_chat_openai_works(server: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=f"{server}/v1", api_key=KEY, model=COLLECTION, max_tokens=MAX_TOKENS, max_retries=0)
    reply = llm.invoke("Where was Nikola Tesla born?")
    assert isinstance(reply.content, str) and reply.content.strip()


def test_an_unknown_model_is_404(client) -> None:  # noqa: ANN001
    import openai

    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "model_not_found"


# ---- bad input and limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"model": "kb"}',
        b'{"model": "kb", "messages": "hello"}',
        b'{"model": "kb", "messages": [{"role": "user", "content": 5}]}',
        b'{"model": "kb", "messages": [{"role": "wizard", "content": "hi"}]}',
        b'{"model": "kb", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}',
        b'{"model": "kb", "messages": [{"role": "user", "content": "hi"}], "temperature": -1}',
        b'{"model": "kb", "messages": []}',
        b'{"model": "kb", "messages": [{"role": "system", "content": "no question"}]}',
    ],
)
def test_malformed_chat_requests_get_a_4xx_json_error(server: str, content: bytes) -> None:
    headers = {**auth(), "Content-Type": "application/json"}
    response = httpx.post(f"{server}/v1/chat/completions", content=content, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["message"]


def test_malformed_ask_and_document_requests_get_4xx(server: str) -> None:
    for body in ({"question": 5}, {"question": "x", "k": 0}, {"question": "x", "style": "poem"}, {"q": "x"}):
        response = httpx.post(f"{server}/v1/ask", json=body, headers=auth())
        assert response.status_code == 400 and response.json()["error"]["message"]
    assert httpx.delete(f"{server}/v1/documents/abc", headers=auth()).status_code == 400
    assert httpx.post(f"{server}/v1/documents", headers=auth()).status_code == 400


def test_a_body_over_the_limit_is_413(server: str) -> None:
    big = json.dumps(chat_body("x" * 100_000)).encode()
    response = httpx.post(f"{server}/v1/chat/completions", content=big, headers=auth())
    assert response.status_code == 413 and response.json()["error"]["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    response = httpx.post(f"{server}/v1/chat/completions", content=chunked(), headers=auth())
    assert response.status_code == 413 and response.json()["error"]["message"]


def test_an_over_long_prompt_is_400(client) -> None:  # noqa: ANN001
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=COLLECTION, messages=[{"role": "user", "content": "word " * 2000}], max_tokens=MAX_TOKENS
        )
    assert caught.value.body["code"] == "context_length_exceeded"


def test_over_the_concurrency_limit_requests_get_429_with_retry_after(qa: RAG) -> None:
    with running(create_app(qa, settings(max_concurrency=1, queue_wait_s=0.05, retry_after_s=2))) as url:
        results: list[httpx.Response] = []

        def fire() -> None:
            results.append(httpx.post(f"{url}/v1/chat/completions", json=chat_body("Who was Tesla?"), headers=auth()))

        threads = [threading.Thread(target=fire) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        statuses = sorted(r.status_code for r in results)
        assert statuses[0] == 200 and statuses[-1] == 429, statuses
        refused = next(r for r in results if r.status_code == 429)
        assert refused.headers["Retry-After"] == "2" and refused.json()["error"]["type"] == "rate_limit_error"


def test_a_request_over_the_time_limit_is_504(qa: RAG) -> None:
    with running(create_app(qa, settings(request_timeout_s=0.01))) as url:
        response = httpx.post(f"{url}/v1/chat/completions", json=chat_body("Who was Ada Lovelace?"), headers=auth())
        assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"


# ---- the QA API, documents, health -----------------------------------------------------------------------


def test_ask_returns_the_python_apis_answer(server: str) -> None:
    body = {"question": "Which NFL team represented the AFC at Super Bowl 50?", "collection": COLLECTION}
    response = httpx.post(f"{server}/v1/ask", json=body, headers=auth(), timeout=60)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert {"question", "text", "citations", "passages", "timings", "abstained"} <= set(answer)
    assert answer["passages"] and answer["timings"]["total"] > 0


def test_upload_keeps_files_inside_uploads_then_list_and_delete(server: str, qa: RAG) -> None:
    files = [
        ("files", ("../../evil.txt", b"The evil plan involves a giant magnet made of cheese.", "text/plain")),
        ("files", ("notes.xyz", b"unsupported format", "application/octet-stream")),
    ]
    response = httpx.post(f"{server}/v1/documents", files=files, data={"collection": "uploads"}, headers=auth())
    assert response.status_code == 200, response.text
    evil, unsupported = response.json()["data"]
    assert evil["saved_as"] == "evil.txt" and evil["status"] == "ingested" and evil["chunks"] >= 1
    assert unsupported["status"] == "error" and "unsupported" in unsupported["error"]
    uploads = qa.store.root / "uploads"
    assert (uploads / "uploads" / "evil.txt").is_file()
    assert not (qa.store.root.parent / "evil.txt").exists() and not (uploads / "evil.txt").exists()

    listed = httpx.get(f"{server}/v1/documents", params={"collection": "uploads"}, headers=auth()).json()["data"]
    document = next(d for d in listed if d["source"].endswith("evil.txt"))
    deleted = httpx.delete(f"{server}/v1/documents/{document['id']}", headers=auth())
    assert deleted.status_code == 200 and deleted.json()["deleted"] and deleted.json()["chunks"] >= 1
    assert not (uploads / "uploads" / "evil.txt").exists()
    listed = httpx.get(f"{server}/v1/documents", headers=auth()).json()["data"]
    assert all(d["id"] != document["id"] for d in listed)
    assert httpx.delete(f"{server}/v1/documents/{document['id']}", headers=auth()).status_code == 404


def test_readyz_metrics_and_docs(server: str) -> None:
    ready = httpx.get(f"{server}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    httpx.post(f"{server}/v1/chat/completions", json=chat_body("Who was Tesla?"), headers=auth(), timeout=60)
    metrics = httpx.get(f"{server}/metrics").text
    assert 'rag_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}' in metrics
    assert "rag_http_request_duration_seconds_bucket" in metrics
    assert "rag_generated_tokens_total" in metrics and "rag_time_to_first_token_seconds_count" in metrics
    assert httpx.get(f"{server}/docs").status_code == 200
    assert "/v1/chat/completions" in httpx.get(f"{server}/openapi.json").json()["paths"]


def test_healthz_answers_while_an_answer_is_generated(server: str) -> None:
    done = threading.Event()

    def generate() -> None:
        body = chat_body("Explain the Analytical Engine and Ada Lovelace's algorithm.", max_tokens=64)
        httpx.post(f"{server}/v1/chat/completions", json=body, headers=auth(), timeout=120)
        done.set()

    worker = threading.Thread(target=generate)
    worker.start()
    latencies = []
    while not done.is_set():
        started = time.perf_counter()
        assert httpx.get(f"{server}/healthz", timeout=5).status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.05)
    worker.join()
    assert len(latencies) >= 3, "the generation finished too fast to probe"
    assert max(latencies) < 1.0, latencies


# ---- the openai generator backend against our own server ----------------------------------------------


def test_openai_generator_backend_talks_to_an_openai_compatible_server(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.generators import create_generator
    from rag.generators.openai_backend import OpenAIGenerator
    from rag.types import GenerationRequest

    generator = OpenAIGenerator(base_url=f"{server}/v1", model=COLLECTION, api_key=KEY)
    request = GenerationRequest("Who was Ada Lovelace?", max_new_tokens=MAX_TOKENS, stop=())
    [generation] = generator.generate([request])
    assert generation.text.strip() and generation.tokens > 0
    assert "".join(generator.stream(request)).strip()

    monkeypatch.setenv("RAG_OPENAI_BASE_URL", f"{server}/v1")
    monkeypatch.setenv("RAG_OPENAI_API_KEY", KEY)
    registered = create_generator(COLLECTION, "openai")
    assert isinstance(registered, OpenAIGenerator) and registered.name == COLLECTION


# ---- the web chat page in a real browser ----------------------------------------------------------------


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright: a browser."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: run scripts/system-deps.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    args += ["--disable-component-update", "--disable-sync"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield browser
        finally:
            browser.close()


def test_api_docs_page_renders_offline_and_lists_the_routes(server: str) -> None:
    """Swagger UI comes from the app itself: with every request off this host refused, it renders every route."""
    from playwright.sync_api import expect

    elsewhere: list[str] = []

    def local_only(route: Any) -> None:
        url = route.request.url
        if url.startswith(server):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    with chromium() as browser:
        page = browser.new_page()
        page.route("**/*", local_only)
        page.goto(f"{server}/docs")
        expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
        shown = {text.strip() for text in page.locator(".opblock-summary-path").all_inner_texts()}
    assert {"/v1/ask", "/v1/chat/completions", "/v1/documents"} <= shown
    assert elsewhere == []


def test_web_chat_streams_an_answer_and_shows_the_cited_passage(server: str) -> None:
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page()
        page.goto(server)
        page.fill("#api-key", KEY)
        page.press("#api-key", "Tab")  # `change`: the page stores the key and lists the collections
        expect(page.locator("#model")).to_have_value(COLLECTION)
        page.fill("#question", "What is a sourdough starter made of?")
        page.click("#send")
        answer = page.locator(".message.assistant .text").last
        expect(page.locator(".citation").first).to_be_visible(timeout=60_000)
        assert answer.inner_text().strip() not in {"", "…"}
        page.locator(".citation").first.click()
        expect(page.locator("#passage mark")).to_be_visible()
        assert page.locator("#passage mark").inner_text().strip()
        page.click("#new-chat")
        expect(page.locator(".message")).to_have_count(0)
