"""The ingestion pipeline end to end: real files, real embedder, real SQLite + FAISS."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from index import SentenceTransformerEmbedder, Store
from index.json_safe import json_safe
from index.models import Document
from ingest.chunking import TokenChunker
from ingest.loaders import load_file
from ingest.pipeline import FileError, default_chunker, ingest_paths, to_document
from ingest.types import ChunkSpan

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
    assert "non_text_searchable.pdf" not in failed  # a scan: read by OCR
    assert "no extractable text" in failed["empty.pdf"]
    assert "password" in failed["encrypted.pdf"]
    assert "simple.pdf" not in failed and "owner_protected.pdf" not in failed
    assert report.ok and report.documents >= 90 and report.chunks > report.documents
    # A workbook is one document per sheet, so files are counted by the sources they gave documents.
    read = {doc.source.split("#")[0] for doc in store.documents()} | {e.path.split("#")[0] for e in report.errors}
    assert report.files == len(read)
    # Files no loader reads are passed over, not failed: the three licence files.
    assert [Path(p.path).name for p in report.passed_over] == ["LICENSE"] * 3
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
        # Small batches and no periodic save: SQL commits run ahead of the vector file until the run ends.
        # (A run killed outright is tests/index/test_integrity.py's.)
        ingest_paths(
            store,
            [folder],
            chunker=CrashAfter(default_chunker(store), 40),
            batch_chunks=16,
            save_every_s=1e9,
            progress=False,
        )
    with Store.open(root, embedder=embedder) as store:
        assert consistent(store)  # the interrupted run saved the vectors of what it had committed
        report = ingest_paths(store, [folder], progress=False)
        assert consistent(store)
        sources = [d.source for d in store.documents()]
        assert len(sources) == len(set(sources)) == report.documents


# ---- one bad document never aborts the ingest ---------------------------------------------------


def test_lone_surrogate_record_is_repaired_and_every_good_document_stored(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Alpha particles are helium nuclei.")
    (folder / "b.txt").write_text("Beta decay emits an electron.")
    records = folder / "records.jsonl"
    records.write_text(
        '{"id": "first", "text": "Gamma rays are photons."}\n'
        '{"id": "bad", "text": "good \\ud800 text about delta"}\n'  # a lone surrogate: json accepts it
        '{"id": "last", "text": "Epsilon is a small quantity."}\n'
    )
    report = ingest_paths(store, [folder], progress=False)
    assert report.errors == []
    assert (report.files, report.documents, report.added) == (3, 5, 5)
    stored = {d.source: d for d in store.documents()}
    assert set(stored) == {str(folder / "a.txt"), str(folder / "b.txt")} | {
        f"{records}#{key}" for key in ("first", "bad", "last")
    }
    assert store.document_text(stored[f"{records}#bad"].id) == "good \ufffd text about delta"
    assert consistent(store)


class RefusingChunker:
    """A user's chunker that cannot split some documents (it raises, as a language-specific splitter might)."""

    def __init__(self, chunker: TokenChunker) -> None:
        self.chunker = chunker

    def split(self, text: str) -> list[ChunkSpan]:
        if "Klingon" in text:
            raise ValueError("no splitter for\nKlingon")
        return self.chunker.split(text)


def test_chunker_failure_skips_only_that_document(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in [("a.txt", "Alpha is first."), ("b.txt", "Klingon text."), ("c.txt", "Gamma is third.")]:
        (folder / name).write_text(text)
    seen: list[FileError] = []
    report = ingest_paths(
        store, [folder], chunker=RefusingChunker(default_chunker(store)), progress=False, on_error=seen.append
    )
    expected = FileError(str(folder / "b.txt"), "cannot split into chunks: ValueError: no splitter for Klingon")
    assert report.errors == seen == [expected]
    assert (report.files, report.documents, report.added, report.skipped) == (3, 2, 2, 1)
    assert [d.source for d in store.documents()] == [str(folder / "a.txt"), str(folder / "c.txt")]


class Utf16Chunker:
    """A user's chunker that counts UTF-16 code units, as one ported from JavaScript might: a cut through
    an emoji leaves half a surrogate pair in each piece. It chunks without error; the embedder rejects it."""

    def __init__(self, units: int) -> None:
        self.units = units

    def split(self, text: str) -> list[ChunkSpan]:
        data, spans, start = text.encode("utf-16-le", "surrogatepass"), [], 0
        for offset in range(0, len(data), 2 * self.units):
            piece = data[offset : offset + 2 * self.units].decode("utf-16-le", "surrogatepass")
            spans.append(ChunkSpan(len(spans), start, start + len(piece), piece))
            start += len(piece)
        return spans


def test_document_the_store_rejects_is_skipped_and_the_rest_of_its_batch_stored(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Alpha is the first letter of the alphabet.")
    (folder / "b.txt").write_text("Smile \U0001f600 please", encoding="utf-8")  # its UTF-16 units 7 and 8
    (folder / "c.txt").write_text("Gamma is the third letter of the alphabet.")
    report = ingest_paths(store, [folder], chunker=Utf16Chunker(7), progress=False)  # one batch holds all three
    [error] = report.errors
    assert error.path == str(folder / "b.txt")
    assert error.reason.startswith("the store rejected it: TypeError: ") and "\n" not in error.reason
    stored = store.documents()
    assert [d.source for d in stored] == [str(folder / "a.txt"), str(folder / "c.txt")]
    assert (report.files, report.documents, report.added, report.skipped) == (3, 2, 2, 1)
    assert report.chunks == sum(d.chunks for d in stored)
    assert consistent(store)


def test_empty_records_are_reported_not_dropped(store: Store, tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text('{"id": "a", "text": "Alpha."}\n{"id": "blank", "text": " \\n "}\n{"id": "empty", "text": ""}\n')
    report = ingest_paths(store, [records], progress=False)
    assert report.errors == [FileError(f"{records}#blank", "no text"), FileError(f"{records}#empty", "no text")]
    assert (report.documents, report.skipped) == (1, 2)
    assert [d.source for d in store.documents()] == [f"{records}#a"]


# ---- metadata every JSON encoder accepts ----------------------------------------------------------


def test_json_safe() -> None:
    value = {
        "nan": math.nan,
        "inf": [math.inf, -math.inf, 1.5],
        "tuple": (1, "two", (3,)),
        7: {None: True},
        "bytes": b"x",
        "numpy": [np.float32(0.5), np.int64(3), np.float64("nan")],
    }
    safe = json_safe(value)
    assert safe == {
        "nan": None,
        "inf": [None, None, 1.5],
        "tuple": [1, "two", [3]],
        "7": {"None": True},
        "bytes": "b'x'",
        "numpy": [0.5, 3, None],
    }
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe
    assert value["nan"] is math.nan and value["tuple"] == (1, "two", (3,))  # a copy: the input is unchanged
    assert json_safe({"lone": "a\ud800b", "nul": "a\x00b"}) == {"lone": "a\ufffdb", "nul": "ab"}


def test_non_finite_metadata_is_stored_as_null(store: Store, tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    # Python's json reads NaN and Infinity; a strict JSON response encoder refuses them.
    records.write_text('{"id": "n", "text": "Nu is a Greek letter.", "score": NaN, "hi": Infinity, "lang": "en"}\n')
    report = ingest_paths(store, [records], progress=False)
    assert report.documents == 1 and not report.errors
    expected = {"score": None, "hi": None, "lang": "en"}
    with store.session() as session:
        [stored] = session.scalars(select(Document.metadata_))
    assert stored == expected
    [passage] = store.passages(store.keyword_search("Greek letter", 1))
    assert dict(passage.metadata) == expected
    json.dumps(dict(passage.metadata), allow_nan=False)
    [doc] = load_file(records)
    assert to_document(doc, default_chunker(store)).metadata == expected
