"""Shared fixtures: the real packaged embedder, loaded once, and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SQUAD_V1 = DATA / "squad" / "dev-v1.1.json"


@pytest.fixture(scope="session", autouse=True)
def offline_hub() -> None:
    """Every test runs as an air-gapped user would: no model hub."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data folder missing: {DATA}")
    return DATA


@pytest.fixture(scope="session")
def embedder():  # noqa: ANN201 - index.SentenceTransformerEmbedder
    from index import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder()
    model.load()
    return model


def _fresh_postgres(url: str) -> str:
    """An empty schema on the test server, so each test starts from nothing."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None means the embedded default (SQLite in the store folder); the PostgreSQL URL comes from
    RAG_TEST_DATABASE_URL (scripts/postgres.sh starts a server). Under CI a missing server fails."""
    if request.param == "sqlite":
        return None
    url = os.environ.get("RAG_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("RAG_TEST_DATABASE_URL is not set: CI must run the store tests against PostgreSQL")
        pytest.skip("RAG_TEST_DATABASE_URL not set (start one with scripts/postgres.sh)")
    return _fresh_postgres(url)
