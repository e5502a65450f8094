"""The Ray engine against the local one, on a real local Ray runtime: same documents, chunks, ids, report and
vectors; an embedding worker that dies mid-ingest loses nothing and duplicates nothing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from index import SentenceTransformerEmbedder, Store
from index.manifest import read as read_manifest
from index.models import Chunk, Document
from index.vectors import FaissIndex
from ingest.pipeline import IngestReport, ingest_paths

pytestmark = pytest.mark.integration

try:
    import ray
except ImportError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("ray is not installed (pip install -e '.[ray]')", allow_module_level=True)

from ingest.ray_engine import CRASH_MARKER_ENV, RayOptions, ingest_paths_ray  # noqa: E402 - after the ray check

BATCH_CHUNKS = 8  # several store batches, so batch boundaries and ids are compared too
CLUSTER = RayOptions(batch_docs=2)  # many small embedding calls, spread over both actors and put back in order


@pytest.fixture(scope="module")
def crash_marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ray") / "crash-once"


@pytest.fixture(scope="module", autouse=True)
def ray_runtime(crash_marker: Path) -> Iterator[None]:
    """One local runtime for the module; workers inherit the crash marker's variable (the file is made later)."""
    previous = os.environ.get(CRASH_MARKER_ENV)
    os.environ[CRASH_MARKER_ENV] = str(crash_marker)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop(CRASH_MARKER_ENV)
        else:
            os.environ[CRASH_MARKER_ENV] = previous


@pytest.fixture(scope="module")
def exact_embedder() -> SentenceTransformerEmbedder:
    """float32: bfloat16 vectors move by ~1e-3 with the make-up of a batch, and the engines batch differently."""
    model = SentenceTransformerEmbedder(precision="float32")
    model.load()
    return model


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> list[Path]:
    """Markdown and text files, JSONL records (one empty), a corrupt PDF, an empty file, an unsupported one."""
    folder = tmp_path_factory.mktemp("corpus")
    for name in ("why.md", "further.md", "models.md"):
        shutil.copy(data_dir / "docs" / "txtai_docs" / name, folder / name)
    (folder / "notes.txt").write_text("Ray runs tasks and actors.\n\nThe driver alone writes the store.")
    (folder / "records.jsonl").write_text(
        '{"id": "a", "title": "Alpha", "text": "Alpha particles are helium nuclei.", "year": 1899}\n'
        '{"id": "blank", "text": " "}\n'
        '{"id": "b", "title": "Beta", "text": "Beta decay emits an electron. It was named by Rutherford."}\n'
    )
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    (folder / "empty.txt").write_text("")
    unsupported = folder / "table.xyz"
    unsupported.write_text("a,b\n1,2\n")
    return [folder, unsupported]  # a file named directly is read whatever its suffix, and then refused


@pytest.fixture(scope="module")
def local(
    tmp_path_factory: pytest.TempPathFactory, corpus: list[Path], exact_embedder: SentenceTransformerEmbedder
) -> tuple[Path, IngestReport]:
    """The corpus ingested by the local engine: what the Ray engine must reproduce."""
    root = tmp_path_factory.mktemp("local") / "store"
    with Store.open(root, embedder=exact_embedder) as store:
        report = ingest_paths(store, corpus, batch_chunks=BATCH_CHUNKS, progress=False, on_error=lambda e: None)
    return root, report


def ingest_on_ray(
    root: Path, corpus: list[Path], embedder: SentenceTransformerEmbedder, database_url: str | None = None
) -> IngestReport:
    with Store.open(root, embedder=embedder, database_url=database_url) as store:
        report = ingest_paths_ray(
            store, corpus, batch_chunks=BATCH_CHUNKS, progress=False, on_error=lambda e: None, cluster=CLUSTER
        )
        assert all(r.consistent for r in store.check())
    return report


def rows(root: Path, embedder: SentenceTransformerEmbedder, url: str | None) -> tuple[list[tuple], list[tuple]]:
    with Store.open(root, embedder=embedder, database_url=url) as store, store.session() as session:
        documents = session.execute(
            select(Document.id, Document.source, Document.title, Document.content_hash, Document.text).order_by(
                Document.id
            )
        ).all()
        metadata = [d.metadata_ for d in session.scalars(select(Document).order_by(Document.id))]
        chunks = session.execute(
            select(Chunk.id, Chunk.document_id, Chunk.ordinal, Chunk.start_char, Chunk.end_char, Chunk.text).order_by(
                Chunk.id
            )
        ).all()
    return [(*d, m) for d, m in zip(documents, metadata, strict=True)], [tuple(c) for c in chunks]


def vectors(root: Path) -> dict[int, np.ndarray]:
    record = read_manifest(root).vector_files["default"]
    index = FaissIndex.load(root / "vectors" / record.file, use_gpu=False)
    ids = sorted(int(i) for i in index.ids())
    return dict(zip(ids, index.vectors_of(ids), strict=True))


def assert_same_store(
    left: Path,
    right: Path,
    embedder: SentenceTransformerEmbedder,
    same_ids: bool = True,
    right_url: str | None = None,
) -> None:
    """Same documents, chunks and vectors (within float tolerance); with `same_ids`, under the same ids too."""
    left_docs, left_chunks = rows(left, embedder, None)
    right_docs, right_chunks = rows(right, embedder, right_url)
    if same_ids:
        assert (left_docs, left_chunks) == (right_docs, right_chunks)
    left_keys, right_keys = chunk_keys(left_docs, left_chunks), chunk_keys(right_docs, right_chunks)
    assert sorted(d[1:] for d in left_docs) == sorted(d[1:] for d in right_docs)
    assert sorted(left_keys.values()) == sorted(right_keys.values())
    expected = {left_keys[i]: v for i, v in vectors(left).items()}
    got = {right_keys[i]: v for i, v in vectors(right).items()}
    assert sorted(expected) == sorted(got) == sorted(left_keys.values())
    for key, own in expected.items():
        assert own.shape == got[key].shape, key
        assert float(np.abs(own - got[key]).max()) < 1e-4, key


def chunk_keys(documents: list[tuple], chunks: list[tuple]) -> dict[int, tuple]:
    """Chunk id -> what identifies the chunk whatever its id: its document's source and its place and text."""
    sources = {d[0]: d[1] for d in documents}
    return {c[0]: (sources[c[1]], *c[2:]) for c in chunks}


def summary(report: IngestReport) -> dict[str, object]:
    return {k: v for k, v in report.as_dict().items() if k != "seconds"}


def test_ray_ingest_equals_local_ingest(
    tmp_path: Path, corpus: list[Path], exact_embedder, local, database_url: str | None
) -> None:
    """The local store is SQLite; the Ray engine's driver writes SQLite or PostgreSQL (a cluster's store)."""
    local_root, local_report = local
    ray_report = ingest_on_ray(tmp_path / "ray", corpus, exact_embedder, database_url)
    assert summary(ray_report) == summary(local_report)
    reasons = {Path(e.path).name: e.reason for e in ray_report.errors}
    assert set(reasons) == {"records.jsonl#blank", "broken.pdf", "empty.txt", "table.xyz"}
    assert "unsupported file type" in reasons["table.xyz"]
    assert ray_report.documents == 6 and ray_report.chunks > ray_report.documents
    assert_same_store(local_root, tmp_path / "ray", exact_embedder, right_url=database_url)
    with Store.open(tmp_path / "ray", embedder=exact_embedder, database_url=database_url) as store:  # unchanged
        again = ingest_paths_ray(store, corpus, progress=False, on_error=lambda e: None)
        assert (again.added, again.replaced, again.unchanged, again.chunks) == (0, 0, 6, 0)
        assert all(r.consistent for r in store.check(sample=20))


def test_an_embedding_worker_that_dies_mid_ingest_loses_and_duplicates_nothing(
    tmp_path: Path, corpus: list[Path], exact_embedder, local, crash_marker: Path
) -> None:
    local_root, local_report = local
    victim = str(corpus[0] / "models.md")  # the fourth of seven files: earlier ones are on their way or written
    crash_marker.write_text(victim)
    try:
        ray_report = ingest_on_ray(tmp_path / "ray", corpus, exact_embedder)
        retried = True
    except AssertionError:
        raise
    except Exception:  # noqa: BLE001 - the run may fail instead of being retried; then a re-run completes it
        retried = False
        with Store.open(tmp_path / "ray", embedder=exact_embedder) as store:
            ingest_paths_ray(store, corpus, progress=False, on_error=lambda e: None)
            assert all(r.consistent for r in store.check())
    else:
        assert summary(ray_report) == summary(local_report)
    assert not crash_marker.exists(), "no worker crashed"
    assert_same_store(local_root, tmp_path / "ray", exact_embedder, same_ids=retried)
