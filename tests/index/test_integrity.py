"""No silent wrong vectors: ids are never reused, every write is saved, other processes' writes are seen, and a
vector file that is not what the store wrote is refused. Real SQLite/PostgreSQL, FAISS, embedder and processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from index import DocumentIn, ManifestError, SentenceTransformerEmbedder, Store
from index.errors import StoreBusyError, StoreIntegrityError
from index.manifest import read as read_manifest
from index.types import ChunkIn
from index.vectors import FaissIndex
from ingest.pipeline import ingest_paths
from ingest.types import content_hash

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def doc(source: str, body: str) -> DocumentIn:
    return DocumentIn(source, body, content_hash(body), [ChunkIn(0, 0, len(body), body)], title=source)


PARIS = doc("paris.txt", "The Eiffel Tower in Paris was completed in 1889.")
ROME = doc("rome.txt", "The Colosseum in Rome held about 50,000 spectators.")
OSLO = doc("oslo.txt", "The Oslo Opera House opened on the fjord in 2008.")


@pytest.fixture()
def store(tmp_path: Path, embedder: SentenceTransformerEmbedder, database_url: str | None) -> Store:
    opened = Store.open(tmp_path / "store", embedder=embedder, database_url=database_url)
    yield opened
    opened.close()


def top_source(store: Store, question: str) -> str | None:
    hits = store.dense_search(store.embedder.embed_queries([question]), 1)[0]
    passages = store.passages(hits)
    return passages[0].source if passages else None


def assert_correct(store: Store) -> None:
    """Consistent, with every chunk's vectors re-embedded and compared (not a sample)."""
    for report in store.check(sample=10_000):
        assert report.consistent, report.problems()
        assert report.sampled_chunks == report.sql_chunks


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, capture_output=True, text=True, timeout=300
    )


# ---- 1. ids are never reused; every write path saves what it changed -------------------------


def test_ids_are_never_reused(store: Store) -> None:
    store.add([PARIS, ROME])
    with store.session() as session:
        first = set(session.scalars(text("SELECT id FROM chunks")))
    store.delete("rome.txt")
    store.add([OSLO])
    with store.session() as session:
        oslo = set(session.scalars(text("SELECT id FROM chunks"))) - first
    assert min(oslo) > max(first)  # the deleted chunk's id is not handed to Oslo's chunk
    assert top_source(store, "How many people did the Colosseum hold?") != "rome.txt"
    assert_correct(store)


def test_migration_keeps_ids_and_stops_reuse(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    from index import schema
    from index.store import create_db_engine

    root = tmp_path / "old"
    with Store.open(root, embedder=embedder) as current:
        current.add([PARIS, ROME, OSLO])
        ids = {row.source: row.id for row in current.documents()}
    engine = create_db_engine(f"sqlite:///{root / 'store.db'}")
    with engine.begin() as connection:  # the tables as revision 0002 made them: no AUTOINCREMENT
        for table in ("chunks", "documents"):
            ddl = connection.execute(text(f"SELECT sql FROM sqlite_master WHERE name='{table}'")).scalar_one()
            connection.execute(text("PRAGMA writable_schema=ON"))
            connection.execute(
                text("UPDATE sqlite_master SET sql=:sql WHERE name=:name"),
                {"sql": ddl.replace(" AUTOINCREMENT", ""), "name": table},
            )
        connection.execute(text("ALTER TABLE collections DROP COLUMN generation"))
        connection.execute(text("UPDATE alembic_version SET version_num='0002'"))
        connection.execute(text("DELETE FROM sqlite_sequence"))
    engine.dispose()
    with Store.open(root, embedder=embedder) as upgraded:
        assert schema.current_revision(upgraded.engine) == "0004"
        assert {row.source: row.id for row in upgraded.documents()} == ids
        with upgraded.session() as session:
            ddl = session.execute(text("SELECT sql FROM sqlite_master WHERE name='chunks'")).scalar_one()
            highest = session.execute(text("SELECT max(id) FROM chunks")).scalar_one()
        assert "AUTOINCREMENT" in ddl
        upgraded.delete("oslo.txt")
        upgraded.add([doc("bergen.txt", "Bergen is a rainy city on the west coast of Norway.")])
        with upgraded.session() as session:
            assert session.execute(text("SELECT max(id) FROM chunks")).scalar_one() > highest
        assert_correct(upgraded)


@pytest.mark.parametrize("changed", [0, 11, 23, "last-batch-unchanged"])
def test_multi_batch_ingest_saves_changes_in_any_batch(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, changed: int | str
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for number in range(24):
        (folder / f"note-{number:02d}.txt").write_text(f"Note {number}: the meeting room {number} has a projector.")
    root = tmp_path / "store"
    with Store.open(root, embedder=embedder) as store:
        ingest_paths(store, [folder], batch_chunks=5, progress=False)
    # Change one file; "last-batch-unchanged" adds one more so that the last batch holds only unchanged files.
    position = 3 if changed == "last-batch-unchanged" else int(changed)
    (folder / f"note-{position:02d}.txt").write_text("Note: the cafeteria serves lentil soup on Fridays.")
    with Store.open(root, embedder=embedder) as store:
        report = ingest_paths(store, [folder], batch_chunks=5, progress=False)
        assert (report.replaced, report.unchanged) == (1, 23)
    with Store.open(root, embedder=embedder) as reopened:  # what was saved, not what one process holds
        assert_correct(reopened)
        assert top_source(reopened, "Which day is lentil soup served?").endswith(f"note-{position:02d}.txt")


def test_a_first_write_killed_before_its_save_is_healed_by_the_next_writer(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    root = tmp_path / "store"
    crashed = run_python(
        """
        import os, sys
        from index import Store, DocumentIn
        from index.types import ChunkIn
        store = Store.open(sys.argv[1])  # a new store
        body = "The Oslo Opera House opened on the fjord in 2008."
        with store.writing():
            store.add([DocumentIn("oslo.txt", body, "h", [ChunkIn(0, 0, len(body), body)], title="oslo")], save=False)
            os._exit(0)
        """,
        str(root),
    )
    assert crashed.returncode == 0, crashed.stderr
    with Store.open(root, embedder=embedder) as reopened:  # not refused for a missing manifest
        reopened.add([PARIS])
        assert_correct(reopened)
        assert top_source(reopened, "When did the opera house open?") == "oslo.txt"


def test_a_write_killed_before_its_save_is_healed_by_the_next_writer(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    root = tmp_path / "store"
    with Store.open(root, embedder=embedder) as store:
        store.add([PARIS, ROME])
    crashed = run_python(
        """
        import os, sys
        from index import Store, DocumentIn
        from index.types import ChunkIn
        store = Store.open(sys.argv[1])
        body = "The Oslo Opera House opened on the fjord in 2008."
        with store.writing():
            store.delete("rome.txt")  # delete saves: the crash is in the next write
            oslo = DocumentIn("oslo.txt", body, "h", [ChunkIn(0, 0, len(body), body)], title="oslo.txt")
            store.add([oslo], save=False)
            os._exit(0)  # killed after the SQL commit, before the vector file was saved
        """,
        str(root),
    )
    assert crashed.returncode == 0, crashed.stderr
    with Store.open(root, embedder=embedder) as reopened:
        assert not reopened.check()[0].consistent  # SQL ahead of the saved vectors: reported, not hidden
        assert top_source(reopened, "When did the opera house open?") != "rome.txt"
        reopened.add([doc("bergen.txt", "Bergen is a rainy city on the west coast of Norway.")])  # any write heals
        assert_correct(reopened)
        assert top_source(reopened, "When did the opera house open?") == "oslo.txt"


# ---- 2. a serving process sees other processes' writes and never overwrites them ---------------


def test_a_reader_reloads_after_another_writer_and_never_overwrites_it(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, database_url: str | None
) -> None:
    root = tmp_path / "store"
    with (
        Store.open(root, embedder=embedder, database_url=database_url) as served,
        Store.open(root, embedder=embedder, database_url=database_url) as cli,
    ):
        served.add([PARIS, ROME])
        assert top_source(served, "How many people did the Colosseum hold?") == "rome.txt"  # loaded in memory
        cli.delete("rome.txt")
        cli.add([OSLO])
        assert top_source(served, "How many people did the Colosseum hold?") != "rome.txt"
        assert top_source(served, "When did the opera house open?") == "oslo.txt"  # dense, without a restart
        served.add([doc("bergen.txt", "Bergen is a rainy city on the west coast of Norway.")])  # its next upload
        assert {d.source for d in cli.documents()} == {"paris.txt", "oslo.txt", "bergen.txt"}
    with Store.open(root, embedder=embedder, database_url=database_url) as reopened:
        assert_correct(reopened)
        assert top_source(reopened, "When did the opera house open?") == "oslo.txt"


def test_a_second_writer_waits_for_the_lock_then_gives_a_clear_error(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    root = tmp_path / "store"
    with Store.open(root, embedder=embedder) as first, Store.open(root, embedder=embedder) as second:
        second.lock_timeout_s = 0.2
        with first.writing(), pytest.raises(StoreBusyError, match=f"pid {os.getpid()}"):
            second.add([PARIS])
        second.add([PARIS])  # free again
        assert_correct(second)


# ---- 3. the vector file is verified ----------------------------------------------------------


def vector_file(store: Store) -> Path:
    recorded = read_manifest(store.root)
    return store.root / "vectors" / recorded.vector_files["default"].file


def test_flipped_bytes_are_refused_then_repaired(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    root = tmp_path / "store"
    with Store.open(root, embedder=embedder) as store:
        store.add([PARIS, ROME, OSLO])
        path = vector_file(store)
    data = bytearray(path.read_bytes())
    for offset in np.random.default_rng(0).choice(np.arange(200, len(data) - 200), 64, replace=False):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with Store.open(root, embedder=embedder) as store:
        with pytest.raises(StoreIntegrityError, match=r"checksum .* `rag check --repair`"):
            top_source(store, "When was the Eiffel Tower completed?")
        report = store.check()[0]
        assert not report.consistent and "checksum" in report.file_error
        assert all(r.consistent for r in store.repair())
        assert top_source(store, "When was the Eiffel Tower completed?") == "paris.txt"
        assert_correct(store)


@pytest.mark.parametrize("tamper", ["permuted ids", "random vectors"])
def test_a_valid_file_with_wrong_vectors_is_caught_by_re_embedding(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, tamper: str
) -> None:
    """Even when the manifest's checksum is rewritten to match (a bug elsewhere, or a hand-edit), `check` compares
    stored vectors with a re-embedding of the chunks' text."""
    root = tmp_path / "store"
    with Store.open(root, embedder=embedder) as store:
        store.add([PARIS, ROME, OSLO])
        path = vector_file(store)
        ids = store.check()[0]
    original = FaissIndex.load(path, use_gpu=False)
    chunk_ids = original.ids()
    vectors = original.vectors_of(chunk_ids)
    rebuilt = FaissIndex.create(embedder.dimension, use_gpu=False)
    rng = np.random.default_rng(1)
    for chunk_id, own in zip(np.roll(chunk_ids, 1) if tamper == "permuted ids" else chunk_ids, vectors, strict=True):
        if tamper == "random vectors":
            own = rng.normal(size=own.shape).astype(np.float32)
            own /= np.linalg.norm(own, axis=1, keepdims=True)
        rebuilt.add(np.full(len(own), chunk_id), own)
    rebuilt.save(path)
    manifest_path = root / "manifest.json"
    raw = json.loads(manifest_path.read_text())
    import hashlib

    raw["vector_files"]["default"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(raw))
    with Store.open(root, embedder=embedder) as store:
        assert store.check()[0].consistent  # ids, counts and checksum all agree: only re-embedding can tell
        report = store.check(sample=100)[0]
        assert not report.consistent and len(report.mismatched_vectors) == ids.sql_chunks
        assert all(r.consistent for r in store.repair(sample=100))
        assert_correct(store)


def test_a_missing_manifest_is_refused_and_rebuilt_on_request(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    root = tmp_path / "store"
    with Store.open(root, embedder=embedder) as store:
        store.add([PARIS, ROME])
    (root / "manifest.json").unlink()
    with pytest.raises(ManifestError, match="manifest.json is missing.*rag check --repair"):
        Store.open(root, embedder=embedder)
    with Store.open(root, embedder=embedder, rebuild_manifest=True) as store:
        assert all(r.consistent for r in store.repair())
        assert_correct(store)
        assert top_source(store, "When was the Eiffel Tower completed?") == "paris.txt"


def test_leftover_temp_and_superseded_files_are_removed_by_the_next_writer(store: Store) -> None:
    store.add([PARIS])
    folder = store.root / "vectors"
    (folder / "collection-1.g1.sentences.faiss.999.tmp").write_bytes(b"half a file")
    (store.root / "manifest.json.k1ll3d.tmp").write_text("{")
    store.add([ROME])
    assert sorted(p.name for p in folder.iterdir()) == [vector_file(store).name]
    assert not list(store.root.glob("*.tmp"))


# ---- crashes, concurrent writers and searches during a write ------------------------------------


RAG_CLI = "import sys; from rag.cli import main; sys.argv = ['rag', *sys.argv[1:]]; main()"


def rag_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_python(RAG_CLI, *args)


def test_a_delete_killed_after_its_commit_is_finished_by_the_next_delete(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    root = tmp_path / "store"
    with Store.open(root, embedder=embedder) as store:
        store.add([PARIS, ROME])
    killed = run_python(
        """
        import os, sys
        from index import Store
        store = Store.open(sys.argv[1])
        with store.writing(), store.session() as session:  # the SQL half of Store.delete, then the kill
            cid = store._collection_id(session, "default")
            store._delete_rows(session, cid, ["rome.txt"])
            store._bump_generation(session, cid)
            session.commit()
            os._exit(0)
        """,
        str(root),
    )
    assert killed.returncode == 0, killed.stderr
    with Store.open(root, embedder=embedder) as store:
        assert store.check()[0].orphan_vectors  # reported until the next write
    again = rag_cli("delete", "rome.txt", "--store", str(root))
    assert again.returncode == 0 and "nothing left to delete" in again.stderr
    with Store.open(root, embedder=embedder) as store:
        assert_correct(store)
        assert [d.source for d in store.documents()] == ["paris.txt"]


def test_two_ingest_processes_into_one_store_lose_nothing(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    root = tmp_path / "store"
    with Store.open(root, embedder=embedder) as store:
        store.add([PARIS])
    folders = []
    for run in ("a", "b"):
        folder = tmp_path / run
        folder.mkdir()
        for number in range(20):
            (folder / f"{run}-{number}.txt").write_text(f"Run {run} note {number}: shelf {number} holds {run} jars.")
        folders.append(folder)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", RAG_CLI, "ingest", str(folder), "--store", str(root)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder in folders
    ]
    for process in runs:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    with Store.open(root, embedder=embedder) as store:
        assert len(store.documents()) == 41
        assert_correct(store)


class GatedEmbedder:
    """The real embedder, made to wait inside `embed_documents` until the test lets it go."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        import threading

        self.inner, self.name = inner, inner.name
        self.entered, self.release = threading.Event(), threading.Event()

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.entered.set()
        assert self.release.wait(30)
        return self.inner.embed_documents(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)


def test_searches_run_while_a_write_is_embedding(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    import threading

    with Store.open(tmp_path / "store", embedder=embedder) as store:
        store.add([PARIS])
    gated = GatedEmbedder(embedder)
    with Store.open(tmp_path / "store", embedder=gated) as store:
        writer = threading.Thread(target=store.add, args=([ROME],))
        writer.start()
        assert gated.entered.wait(30)
        try:
            assert top_source(store, "When was the Eiffel Tower completed?") == "paris.txt"  # not blocked
        finally:
            gated.release.set()
            writer.join(60)
        assert top_source(store, "How many people did the Colosseum hold?") == "rome.txt"
