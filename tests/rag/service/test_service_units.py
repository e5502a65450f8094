"""The service's parts without a server: query condensing, file names, keys, the concurrency limiter, settings,
and the app's /metrics over an empty store (no model is loaded: the app's lifespan never runs)."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag import RAG
from rag.conversation import condense_query, is_follow_up
from rag.service import create_app
from rag.service.auth import ApiKeys
from rag.service.config import ServiceSettings
from rag.service.limits import ConcurrencyLimiter
from rag.service.openai_schema import ApiError
from rag.service.uploads import check_collection, safe_filename

pytestmark = pytest.mark.unit


def turns(*texts: str) -> list[dict[str, str]]:
    roles = ["user", "assistant"]
    return [{"role": roles[i % 2], "content": text} for i, text in enumerate(texts)]


class TestCondenseQuery:
    def test_a_standalone_question_is_left_alone(self) -> None:
        messages = turns("Who was Ada Lovelace?", "A mathematician.", "Where was Nikola Tesla born in 1856?")
        assert condense_query(messages) == "Where was Nikola Tesla born in 1856?"

    def test_a_pronoun_follow_up_gets_the_earlier_topic(self) -> None:
        messages = turns("Who was Ada Lovelace?", "An English mathematician.", "and when did she die?")
        assert condense_query(messages) == "Ada Lovelace and when did she die?"

    def test_what_about_and_short_turns_are_follow_ups(self) -> None:
        assert condense_query(turns("Where is Mount Etna?", "Sicily.", "what about its height")).startswith(
            "Mount Etna"
        )
        assert condense_query(turns("Which team won Super Bowl 50?", "Denver.", "final score?")) == (
            "team won Super Bowl 50 final score?"
        )

    def test_a_chain_of_follow_ups_walks_back_to_the_standalone_question(self) -> None:
        messages = turns("Who was Ada Lovelace?", "...", "where was she born?", "...", "and when did she die?")
        assert condense_query(messages) == "Ada Lovelace born and when did she die?"

    def test_assistant_turns_and_system_messages_are_not_used(self) -> None:
        messages = [
            {"role": "system", "content": "Be brief about Paris."},
            *turns("Who was Ada Lovelace?", "She lived in London.", "when did she die?"),
        ]
        assert condense_query(messages) == "Ada Lovelace when did she die?"

    def test_no_user_turn_gives_an_empty_query(self) -> None:
        assert condense_query([{"role": "system", "content": "hello"}]) == ""

    @pytest.mark.parametrize("blank", ["\x1c\x1c", " \u2003\n", "\ufeff", "\x85\t"])
    def test_a_turn_of_white_space_alone_is_no_question(self, blank: str) -> None:
        # Python's and JSON Schema's white space both count, as the chat schema's pattern says.
        assert condense_query(turns(blank)) == ""
        assert condense_query(turns("Who was Ada Lovelace?", "...", blank)) == "Who was Ada Lovelace?"

    @pytest.mark.parametrize(
        ("question", "expected"),
        [
            ("and then?", True),
            ("What about Tesla's inventions and patents in America?", True),
            ("Why is that important for the sourdough starter?", True),
            ("How long does a sourdough starter take to become active?", False),
        ],
    )
    def test_is_follow_up(self, question: str, expected: bool) -> None:
        assert is_follow_up(question) is expected


class TestUploadNames:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("../../evil.txt", "evil.txt"),
            ("/etc/passwd", "passwd"),
            ("..\\..\\windows\\win.ini", "win.ini"),
            (".bashrc", "bashrc"),
            ("report v2.md", "report v2.md"),
            ("a..b.txt", "a.b.txt"),
            ("rm -rf $(x);.md", "rm -rf _x_.md"),
        ],
    )
    def test_names_are_reduced_to_a_safe_base_name(self, name: str, expected: str) -> None:
        assert safe_filename(name) == expected

    @pytest.mark.parametrize("name", ["", "..", "../..", "...", "dir/"])
    def test_unusable_names_are_refused(self, name: str) -> None:
        with pytest.raises(ApiError) as caught:
            safe_filename(name)
        assert caught.value.status == 400

    def test_collection_names_are_checked(self) -> None:
        assert check_collection("my-docs_2") == "my-docs_2"
        for bad in ("../x", ".hidden", "", "a/b", "x" * 80):
            with pytest.raises(ApiError):
                check_collection(bad)


class TestApiKeys:
    def test_keys_are_kept_as_digests_and_checked(self) -> None:
        keys = ApiKeys(["s3cret", "other"])
        assert keys.enabled
        assert "s3cret" not in repr(vars(keys))
        assert keys.allows("Bearer s3cret") and keys.allows("bearer other")
        for header in (None, "", "Bearer", "Bearer wrong", "Basic s3cret", "s3cret"):
            assert not keys.allows(header)

    def test_no_keys_means_no_authentication(self) -> None:
        assert ApiKeys([]).allows(None)


class TestConcurrencyLimiter:
    def test_a_full_limiter_refuses_with_retry_after_and_frees_slots_when_work_ends(self) -> None:
        limiter = ConcurrencyLimiter(1, wait_s=0.05, retry_after_s=3)

        async def scenario() -> None:
            await limiter.acquire()
            with pytest.raises(ApiError) as caught:
                await limiter.acquire()
            assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "3"
            limiter.release()
            assert await limiter.run(lambda x: x * 2, 21, timeout=5) == 42
            assert limiter.active == 0

        asyncio.run(scenario())
        limiter.close()

    def test_a_slow_call_times_out_with_504_but_keeps_its_slot_until_it_ends(self) -> None:
        import threading

        release = threading.Event()
        limiter = ConcurrencyLimiter(1, wait_s=0.0)

        async def scenario() -> None:
            with pytest.raises(ApiError) as caught:
                await limiter.run(release.wait, timeout=0.05)
            assert caught.value.status == 504
            assert limiter.active == 1  # the thread still runs: its slot is still taken
            with pytest.raises(ApiError):
                await limiter.acquire()
            release.set()
            for _ in range(100):
                if limiter.active == 0:
                    break
                await asyncio.sleep(0.01)
            assert limiter.active == 0

        asyncio.run(scenario())
        limiter.close()

    def test_waiting_briefly_gets_a_slot_freed_meanwhile(self) -> None:
        limiter = ConcurrencyLimiter(1, wait_s=1.0)

        async def scenario() -> None:
            await limiter.acquire()
            asyncio.get_running_loop().call_later(0.05, limiter.release)
            await limiter.acquire()
            limiter.release()

        asyncio.run(scenario())


def test_service_settings_read_comma_lists_and_json_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_API_KEYS", "key-alpha, key-beta")
    monkeypatch.setenv("RAG_MODEL_ALIASES", '{"gpt-4o": "default"}')
    monkeypatch.setenv("RAG_CORS_ORIGINS", "http://a.example,http://b.example")
    monkeypatch.setenv("RAG_MAX_CONCURRENCY", "2")
    settings = ServiceSettings()
    assert [k.get_secret_value() for k in settings.api_keys] == ["key-alpha", "key-beta"]
    assert "key-alpha" not in repr(settings)
    assert settings.model_aliases == {"gpt-4o": "default"}
    assert settings.cors_origins == ["http://a.example", "http://b.example"]
    assert settings.max_concurrency == 2


MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[MakeClient]:
    """Builds test clients over one empty store; without `with`, TestClient skips the lifespan (no model loads)."""
    qa = RAG.open(tmp_path / "store")
    apps = []

    def make(**settings: object) -> TestClient:
        app = create_app(qa, ServiceSettings(**settings))
        apps.append(app)
        return TestClient(app)

    yield make
    for app in apps:
        app.state.service.limiter.close()
    qa.close()


def request_series(body: str) -> list[str]:
    return [line for line in body.splitlines() if line.startswith("rag_http_requests_total{")]


class TestMetricsEndpoint:
    def test_random_method_names_do_not_grow_the_metrics(self, make_client: MakeClient) -> None:
        client = make_client()
        client.get("/healthz")
        client.get("/metrics")  # so that its own series exist before the first measure

        def flood(count: int) -> None:
            for i in range(count):
                method = f"X{secrets.token_hex(4).upper()}"
                assert client.request(method, "/healthz" if i % 2 else "/no/such/path").status_code in (404, 405)

        flood(10)
        before = client.get("/metrics").text
        flood(200)
        after = client.get("/metrics").text
        methods = set(re.findall(r'method="([^"]*)"', after))
        assert methods == {"GET", "other"}
        assert sorted(request_series(after)) == [
            'rag_http_requests_total{method="GET",route="/healthz",status="200"} 1.0',
            'rag_http_requests_total{method="GET",route="/metrics",status="200"} 2.0',
            'rag_http_requests_total{method="other",route="/healthz",status="405"} 105.0',
            'rag_http_requests_total{method="other",route="unmatched",status="404"} 105.0',
        ]
        # Only counters and bucket counts change: the body keeps its number of lines.
        assert len(after.splitlines()) == len(before.splitlines())

    def test_metrics_can_require_the_api_key(self, make_client: MakeClient) -> None:
        client = make_client(api_keys=["s3cret"], metrics_require_key=True)
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        answer = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert answer.status_code == 200 and "rag_http_requests_total" in answer.text
        assert client.get("/healthz").status_code == 200  # the probes stay open

    def test_metrics_are_open_by_default_even_with_keys(self, make_client: MakeClient) -> None:
        client = make_client(api_keys=["s3cret"])
        assert client.get("/metrics").status_code == 200
        assert client.get("/v1/models").status_code == 401
