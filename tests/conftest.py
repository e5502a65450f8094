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
