"""The ingestion pipeline end to end: real files, real embedder, real SQLite + FAISS."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from index import SentenceTransformerEmbedder, Store
from ingest.chunking import TokenChunker
from ingest.pipeline import default_chunker, ingest_paths

pytestmark = pytest.mark.integration


@pytest.fixture()
def store(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Store:
    opened = Store.open(tmp_path / "store", embedder=embedder)
    yield opened
    opened.close()


def consistent(store: Store) -> bool:
    return all(r.consistent for r in store.check())


def test_shared_docs_ingest_with_per_file_errors(store: Store, data_dir: Path) -> None:
    report = ingest_paths(store, [data_dir / "docs"], progress=False)
    failed = {Path(e.path).name: e.reason for e in report.errors}
    assert "no extractable text" in failed["non_text_searchable.pdf"]
    assert "no extractable text" in failed["empty.pdf"]
    assert "password" in failed["encrypted.pdf"]
    assert "simple.pdf" not in failed and "owner_protected.pdf" not in failed
    assert report.ok and report.documents >= 90 and report.chunks > report.documents
    assert report.files == report.documents + len(report.errors)
    assert consistent(store)
    # Every chunk is the exact slice of its document's text that its offsets name.
    with store.session() as session:
        from sqlalchemy import select

        from index.models import Chunk, Document

        for chunk, body in session.execute(select(Chunk, Document.text).join(Document)):
            assert body[chunk.start_char : chunk.end_char] == chunk.text
    again = ingest_paths(store, [data_dir / "docs"], progress=False)
    assert (again.added, again.replaced, again.chunks) == (0, 0, 0)
    assert again.unchanged == report.documents


def test_changed_file_is_replaced_and_delete_keeps_stores_equal(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Alpha particles are helium nuclei.\n\nThey were named by Rutherford.")
    (folder / "b.md").write_text("# Beta\n\nBeta decay emits an electron.")
    first = ingest_paths(store, [folder], progress=False)
    assert (first.added, first.documents) == (2, 2)
    (folder / "a.txt").write_text("Alpha particles carry a charge of +2e.")
    second = ingest_paths(store, [folder], progress=False)
    assert (second.added, second.replaced, second.unchanged) == (0, 1, 1)
    assert consistent(store)
    assert [p.text for p in store.passages(store.keyword_search("Rutherford", 5))] == []
    store.delete(str(folder / "b.md"))
    assert consistent(store)
    assert [d.source for d in store.documents()] == [str(folder / "a.txt")]


def test_one_bad_file_never_aborts_the_batch(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text("Good text survives.")
    (folder / "empty.txt").write_text("")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n garbage")
    (folder / "bad.jsonl").write_text('{"text": "fine"}\n{not json}\n')
    report = ingest_paths(store, [folder], progress=False)
    assert report.documents == 1 and len(report.errors) == 3
    assert {Path(e.path).name for e in report.errors} == {"empty.txt", "broken.pdf", "bad.jsonl"}


def test_nothing_ingestable_is_not_ok(store: Store, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("   ")
    report = ingest_paths(store, [tmp_path / "empty.txt"], progress=False)
    assert not report.ok


class CrashAfter:
    """Wraps the real chunker and dies after `n` documents, as a killed process would."""

    def __init__(self, chunker: TokenChunker, n: int) -> None:
        self.chunker, self.left = chunker, n

    def split(self, text: str):  # noqa: ANN201
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return self.chunker.split(text)


def test_interrupted_ingest_resumes_without_duplicates(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, data_dir: Path
) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(data_dir / "docs" / "txtai_docs", folder)
    root = tmp_path / "store"
    with Store.open(root, embedder=embedder) as store, pytest.raises(KeyboardInterrupt):
        # Small batches and no periodic save: SQL commits run ahead of the vector file.
        ingest_paths(
            store,
            [folder],
            chunker=CrashAfter(default_chunker(store), 40),
            batch_chunks=16,
            save_every_s=1e9,
            progress=False,
        )
    with Store.open(root, embedder=embedder) as store:
        assert not consistent(store)  # the crash left SQL ahead of FAISS
        report = ingest_paths(store, [folder], progress=False)
        assert consistent(store)
        sources = [d.source for d in store.documents()]
        assert len(sources) == len(set(sources)) == report.documents
