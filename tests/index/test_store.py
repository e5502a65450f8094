"""The store on real SQLite, real FAISS and the real packaged embedder: SQL, vectors and keywords stay equal."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from index import DocumentIn, EmbedderMismatchError, NotFoundError, SentenceTransformerEmbedder, Store
from index.types import ChunkIn
from ingest.types import content_hash

pytestmark = pytest.mark.integration


def make_doc(source: str, paragraphs: list[str], **metadata: object) -> DocumentIn:
    body = "\n\n".join(paragraphs)
    chunks, cursor = [], 0
    for ordinal, paragraph in enumerate(paragraphs):
        start = body.index(paragraph, cursor)
        chunks.append(ChunkIn(ordinal, start, start + len(paragraph), paragraph))
        cursor = start + len(paragraph)
    return DocumentIn(source, body, content_hash(body), chunks, title=source, metadata=metadata)


PARIS = make_doc("paris.txt", ["Paris is the capital of France.", "The Eiffel Tower was completed in 1889."], lang="en")
ROME = make_doc("rome.txt", ["Rome is the capital of Italy.", "The Colosseum held about 50,000 people."], lang="it")


@pytest.fixture()
def store(tmp_path: Path, embedder: SentenceTransformerEmbedder, database_url: str | None) -> Store:
    opened = Store.open(tmp_path / "store", embedder=embedder, database_url=database_url)
    yield opened
    opened.close()


def assert_consistent(store: Store) -> None:
    for report in store.check():
        assert report.consistent, report
        assert report.sql_chunks == report.vector_chunks
        assert report.keyword_chunks in (None, report.sql_chunks)  # None: PostgreSQL indexes the chunks table


def test_add_then_search_dense_and_keyword(store: Store) -> None:
    result = store.add([PARIS, ROME])
    assert (result.added, result.chunks) == (2, 4)
    assert_consistent(store)
    vectors = store.embedder.embed_queries(["When was the Eiffel Tower finished?"])
    top = store.passages(store.dense_search(vectors, 1)[0])[0]
    assert top.text == "The Eiffel Tower was completed in 1889."
    assert PARIS.text[top.start : top.end] == top.text
    keyword = store.passages(store.keyword_search("Colosseum people", 2))
    assert keyword[0].source == "rome.txt"


def test_re_adding_unchanged_documents_does_nothing(store: Store) -> None:
    store.add([PARIS])
    ids_before = store.check()[0]
    result = store.add([PARIS])
    assert (result.added, result.unchanged, result.chunks) == (0, 1, 0)
    assert store.check()[0] == ids_before


def test_changed_document_replaces_its_chunks_everywhere(store: Store) -> None:
    store.add([PARIS, ROME])
    old_ids = {p.chunk_id for p in store.passages(store.keyword_search("Eiffel", 5))}
    changed = make_doc("paris.txt", ["Paris is the capital of France.", "The Louvre opened in 1793."])
    result = store.add([changed])
    assert (result.added, result.replaced) == (0, 1)
    assert_consistent(store)
    assert store.keyword_search("Eiffel", 5) == []
    assert old_ids.isdisjoint(store.check()[0].orphan_vectors)
    assert [d.source for d in store.documents()] == ["rome.txt", "paris.txt"]


def test_delete_removes_from_sql_faiss_and_keywords(store: Store) -> None:
    store.add([PARIS, ROME])
    assert store.delete("paris.txt") == 2
    assert_consistent(store)
    assert store.check()[0].sql_chunks == 2
    assert store.keyword_search("Eiffel", 5) == []
    with pytest.raises(NotFoundError, match="paris.txt"):
        store.delete("paris.txt")


def test_metadata_filters_apply_to_both_retrievers(store: Store) -> None:
    store.add([PARIS, ROME])
    vectors = store.embedder.embed_queries(["capital city"])
    dense = store.passages(store.dense_search(vectors, 4, filters={"lang": "it"})[0])
    assert {p.source for p in dense} == {"rome.txt"}
    keyword = store.passages(store.keyword_search("capital", 4, filters={"lang": "en"}))
    assert {p.source for p in keyword} == {"paris.txt"}


def test_collections_are_separate(store: Store) -> None:
    store.add([PARIS], collection="a")
    store.add([ROME], collection="b")
    assert store.collections() == ["a", "b"]
    assert {p.source for p in store.passages(store.keyword_search("capital", 5, collection="b"))} == {"rome.txt"}
    with pytest.raises(NotFoundError, match="collections"):
        store.keyword_search("capital", 5, collection="missing")


def test_crash_after_sql_delete_drops_orphan_vectors(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, database_url: str | None
) -> None:
    root = tmp_path / "store"
    with Store.open(root, embedder=embedder, database_url=database_url) as first:
        first.add([PARIS, ROME])
        with first.engine.begin() as conn:  # rows deleted, vector file never rewritten
            rome = "(SELECT id FROM documents WHERE source = 'rome.txt')"
            conn.execute(text(f"DELETE FROM chunks WHERE document_id = {rome}"))
            conn.execute(text("DELETE FROM documents WHERE source='rome.txt'"))
    with Store.open(root, embedder=embedder, database_url=database_url) as reopened:
        assert len(reopened.check()[0].orphan_vectors) == 2
        repaired = reopened.repair()[0]
        assert repaired.consistent and repaired.sql_chunks == 2


def test_other_embedder_is_refused(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, database_url: str | None
) -> None:
    root = tmp_path / "store"
    with Store.open(root, embedder=embedder, database_url=database_url) as first:
        first.add([PARIS])
    with pytest.raises(EmbedderMismatchError, match="all-MiniLM-L6-v2"):
        Store.open(
            root,
            embedder=SentenceTransformerEmbedder("sentence-transformers/all-mpnet-base-v2"),
            database_url=database_url,
        )
    with Store.open(root, database_url=database_url) as default:  # no embedder given: the store's own is used
        assert default.embedder.name == embedder.name


def test_manifest_records_embedder_and_counts(store: Store) -> None:
    store.add([PARIS])
    manifest = json.loads((store.root / "manifest.json").read_text())
    assert manifest["embedder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest["dimension"] == 384
    assert manifest["collections"]["default"] == {"documents": 1, "chunks": 2}


def test_schema_is_at_the_newest_migration(store: Store) -> None:
    from index import schema

    assert schema.current_revision(store.engine) == "0004"
    schema.upgrade(store.engine)  # idempotent: an up-to-date store upgrades to itself
    assert schema.current_revision(store.engine) == "0004"


def test_keyword_search_matches_the_document_title(store: Store) -> None:
    store.add([PARIS, replace(ROME, title="Rome")])
    hits = store.passages(store.keyword_search("rome", 4))
    # "rome" is in only one chunk's text, but the title puts both of rome.txt's chunks in reach.
    assert {p.source for p in hits} == {"rome.txt"} and len(hits) == 2


def test_postgres_keyword_vectors_are_filled_when_an_older_store_upgrades(
    store: Store, embedder: SentenceTransformerEmbedder
) -> None:
    """A store from before revision 0004 had no stored tsvector; opening it fills one for every chunk."""
    if store.engine.dialect.name == "sqlite":
        pytest.skip("PostgreSQL's keyword index; SQLite keeps its FTS5 table")
    store.add([PARIS, replace(ROME, title="Rome")])
    with store.engine.begin() as connection:  # back to revision 0003's keyword index
        connection.execute(text("DROP TRIGGER chunks_tsv_biu ON chunks"))
        connection.execute(text("ALTER TABLE chunks DROP COLUMN tsv"))
        connection.execute(text("CREATE INDEX ix_chunks_tsv ON chunks USING GIN (to_tsvector('english', text))"))
        connection.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    upgraded = Store.open(store.root, embedder=embedder, database_url=str(store.engine.url.render_as_string(False)))
    try:
        assert {p.source for p in upgraded.passages(upgraded.keyword_search("rome colosseum", 4))} == {"rome.txt"}
        assert [p.source for p in upgraded.passages(upgraded.keyword_search("Eiffel", 4))] == ["paris.txt"]
        with upgraded.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM chunks WHERE tsv IS NULL")).scalar_one() == 0
            indexes = {row[0] for row in connection.execute(text("SELECT indexname FROM pg_indexes"))}
        assert "ix_chunks_tsv_all" in indexes and "ix_chunks_tsv" not in indexes
    finally:
        upgraded.close()


def test_a_chunk_is_found_by_its_best_sentence(store: Store) -> None:
    long_paragraph = (
        "The river town grew around a mill. Its market sold wool and grain for centuries. "
        "In 1902 a glassworks opened beside the old bridge. Tourists now come for the cathedral."
    )
    store.add([make_doc("town.txt", [long_paragraph]), PARIS, ROME])
    vectors = store.embedder.embed_queries(["When did the glassworks open?"])
    (chunk_id, score), *_ = store.dense_search(vectors, 3)[0]
    assert store.passages([(chunk_id, score)])[0].source == "town.txt"
    whole = float(store.embedder.embed_documents([long_paragraph])[0] @ vectors[0])
    assert score > whole + 0.05  # scored by the matching sentence, not the diluted paragraph vector
    assert_consistent(store)


def test_store_from_the_first_schema_is_upgraded_and_re_embedded(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    from index import schema
    from index.store import create_db_engine
    from index.vectors import FaissIndex

    root = tmp_path / "old"
    root.mkdir()
    engine = create_db_engine(f"sqlite:///{root / 'store.db'}")
    schema.upgrade(engine, "0001")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO collections (id, name, created_at) VALUES (1, 'default', '2026-01-01')"))
        connection.execute(
            text(
                "INSERT INTO documents (id, collection_id, source, title, content_hash, text, metadata, created_at) "
                "VALUES (1, 1, 'rome.txt', 'Rome', 'h', :body, '{}', '2026-01-01')"
            ),
            {"body": ROME.text},
        )
        for chunk in ROME.chunks:
            connection.execute(
                text(
                    "INSERT INTO chunks (document_id, ordinal, start_char, end_char, text) VALUES (1, :o, :s, :e, :t)"
                ),
                {"o": chunk.ordinal, "s": chunk.start, "e": chunk.end, "t": chunk.text},
            )
    engine.dispose()
    old_vectors = FaissIndex.create(embedder.dimension, use_gpu=False)
    old_vectors.add([1, 2], embedder.embed_documents([c.text for c in ROME.chunks]))
    old_vectors.save(root / "vectors" / "collection-1.faiss")
    old_manifest = {"embedder": embedder.name, "dimension": 384, "format_version": 1, "collections": {}}
    (root / "manifest.json").write_text(json.dumps(old_manifest))

    with Store.open(root, embedder=embedder) as upgraded:
        assert schema.current_revision(upgraded.engine) == "0004"
        assert not (root / "vectors" / "collection-1.faiss").exists()
        assert_consistent(upgraded)
        assert len(upgraded.passages(upgraded.keyword_search("Rome", 5))) == 2  # titles are indexed now
