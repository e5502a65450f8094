"""Index types chosen by size: a collection past exact search's size gets a trained IVF index with 8-bit codes,
still keyed by chunk id, so search, deletes, check and repair work as on the exact one. Real FAISS, real
embedder, real SQuAD text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from index import DocumentIn, SentenceTransformerEmbedder, Store, layouts
from index.manifest import IndexSpec
from index.types import ChunkIn
from index.vectors import FaissIndex
from ingest.types import content_hash
from rag.cli import app

pytestmark = pytest.mark.integration


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def paragraphs(data_dir: Path) -> list[DocumentIn]:
    """150 real paragraphs from the SQuAD 2.0 train articles: about a thousand vectors with their sentences."""
    articles = json.loads((data_dir / "squad" / "train-v2.0-first10.json").read_text(encoding="utf-8"))["data"]
    docs = []
    for article in articles:
        for number, paragraph in enumerate(article["paragraphs"][:15]):
            text = paragraph["context"]
            source = f"{article['title']}/{number}"
            docs.append(
                DocumentIn(source, text, content_hash(text), [ChunkIn(0, 0, len(text), text)], article["title"])
            )
    return docs


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder, paragraphs) -> Path:
    """A store whose collection outgrew exact search (limit lowered to 500 vectors) while it was written."""
    root = tmp_path_factory.mktemp("ivf") / "store"
    with Store.open(root, embedder=embedder, exact_max_vectors=500) as store:
        store.add(paragraphs[:40])  # still exact
        assert store.vector_files()["default"].index.factory == "Flat"
        store.add(paragraphs[40:])
    return root


@pytest.fixture()
def store(built: Path, tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Store:
    copy = tmp_path / "store"
    shutil.copytree(built, copy)
    opened = Store.open(copy, embedder=embedder, exact_max_vectors=500)
    yield opened
    opened.close()


def test_outgrown_collection_is_rebuilt_as_ivf_and_recorded(store: Store) -> None:
    record = store.vector_files()["default"]
    spec = record.index
    assert spec.factory.startswith("IVF") and spec.factory.endswith(",SQ8")
    assert spec.requested is None and spec.design_vectors == record.vectors > 500
    assert spec.nlist and 1 <= spec.nprobe <= spec.nlist
    assert spec.recall_at_10 >= layouts.TARGET_RECALL and spec.calibration == "stand-in queries"
    assert spec.code_bytes == store.embedder.dimension  # one byte per dimension


def test_ivf_search_finds_what_exact_search_finds(
    store: Store, paragraphs: list[DocumentIn], embedder: SentenceTransformerEmbedder
) -> None:
    texts = [d.text.split(". ")[0] for d in paragraphs[::10]]
    queries = embedder.embed_queries(texts)
    found = store.dense_search(queries, 1)
    sources = [store.passages(hits)[0].source for hits in found]
    assert sources == [d.source for d in paragraphs[::10]]


def test_deletes_check_and_reopen_work_on_ivf(
    store: Store, paragraphs: list[DocumentIn], embedder: SentenceTransformerEmbedder
) -> None:
    gone = paragraphs[3]
    removed = store.delete(gone.source)
    assert removed == 1
    query = embedder.embed_queries([gone.text])
    assert gone.source not in {p.source for p in store.passages(store.dense_search(query, 10)[0])}
    reports = store.check(sample=200)  # every chunk re-embedded: SQ8 codes are no false alarm
    assert all(r.consistent for r in reports), reports[0].problems()
    reopened = Store.open(store.root, embedder=embedder, exact_max_vectors=500)
    assert reopened.vector_files()["default"].index.factory.startswith("IVF")
    assert reopened.dense_search(query, 10)[0] == store.dense_search(query, 10)[0]
    reopened.close()


def test_user_factory_is_kept_through_repair(store: Store) -> None:
    spec = store.rebuild_index(factory="IVF16,SQ8", progress=False)
    assert (spec.factory, spec.requested, spec.nlist) == ("IVF16,SQ8", "IVF16,SQ8", 16)
    (store.root / "vectors" / store.vector_files()["default"].file).write_bytes(b"not an index")
    reports = store.repair(sample=5)
    assert all(r.consistent for r in reports)
    assert store.vector_files()["default"].index.factory == "IVF16,SQ8"
    assert store.rebuild_index(factory="auto", progress=False).requested is None


def test_index_that_cannot_delete_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="cannot remove vectors"):
        store.rebuild_index(factory="HNSW32", progress=False)
    result = CliRunner().invoke(app, ["index", "rebuild", "--store", str(store.root), "--factory", "IVF99999,SQ8"])
    assert result.exit_code == 2 and "cannot train IVF99999,SQ8" in result.output
    shown = CliRunner().invoke(app, ["index", "show", "--store", str(store.root), "--json"])
    row = json.loads(shown.output)[0]
    assert row["collection"] == "default" and row["index"]["factory"].startswith("IVF") and row["bytes_per_chunk"] > 0


def test_rebuild_reasons() -> None:
    flat = FaissIndex.create(8, use_gpu=False)
    rng = np.random.default_rng(0)
    flat.add(np.arange(1, 301), unit(rng.standard_normal((300, 8))))
    assert layouts.rebuild_reason(flat, exact_max_vectors=1000) is None
    assert "past exact search" in layouts.rebuild_reason(flat, exact_max_vectors=300)
    ivf = layouts.rebuild(flat, "IVF4,Flat", progress=False)
    assert ivf.spec.design_vectors == 300 and layouts.rebuild_reason(ivf) is None
    ivf.add(np.arange(301, 1600), unit(rng.standard_normal((1299, 8))))
    assert "grew from 300 to 1,599" in layouts.rebuild_reason(ivf)
    ivf.spec = IndexSpec(factory="Flat", requested="IVF4,Flat")
    assert "was asked for" in layouts.rebuild_reason(ivf)


def test_choice_by_size() -> None:
    assert layouts.choose(layouts.EXACT_MAX_VECTORS - 1) == "Flat"
    assert layouts.choose(1_000_000) == "IVF1024,SQ8"
    assert layouts.choose(6_000_000) == "IVF4096,SQ8"
