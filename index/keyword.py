"""Keyword (BM25-style) search inside the SQL database, so it commits and rolls back with the chunk rows.

SQLite: an FTS5 table of (title, text) kept equal to `chunks` by triggers, ranked by FTS5's bm25().
PostgreSQL: a `tsv` column on chunks (to_tsvector('english', title || ' ' || text), set by a trigger) under one
GIN index, ranked by ts_rank_cd over the stored vector: a query's words are OR-ed, so a common word matches much
of the collection, and every match must be ranked without parsing its text again.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

# Lucene's classic English stop set: the words too common to rank by.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split()
)

_WORD = re.compile(r"\w+", re.UNICODE)

# The document's title is indexed beside each chunk's text: questions often name the subject only the
# title carries. The FTS table holds its own copy (an external-content table cannot join the title in).
_SQLITE_TITLE = "(SELECT title FROM documents WHERE id = new.document_id)"
_SQLITE_DDL = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(title, text, tokenize='porter unicode61')",
    "CREATE TRIGGER IF NOT EXISTS chunks_fts_ai AFTER INSERT ON chunks BEGIN "
    f"INSERT INTO chunks_fts(rowid, title, text) VALUES (new.id, {_SQLITE_TITLE}, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS chunks_fts_ad AFTER DELETE ON chunks BEGIN "
    "DELETE FROM chunks_fts WHERE rowid = old.id; END",
    "CREATE TRIGGER IF NOT EXISTS chunks_fts_au AFTER UPDATE ON chunks BEGIN "
    "DELETE FROM chunks_fts WHERE rowid = old.id; "
    f"INSERT INTO chunks_fts(rowid, title, text) VALUES (new.id, {_SQLITE_TITLE}, new.text); END",
]
_SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS chunks_fts_ai",
    "DROP TRIGGER IF EXISTS chunks_fts_ad",
    "DROP TRIGGER IF EXISTS chunks_fts_au",
    "DROP TABLE IF EXISTS chunks_fts",
]
_SQLITE_FILL = (
    "INSERT INTO chunks_fts(rowid, title, text) "
    "SELECT c.id, d.title, c.text FROM chunks c JOIN documents d ON d.id = c.document_id"
)

_POSTGRES_TSV = "to_tsvector('english', coalesce({title}, '') || ' ' || {text})"
_POSTGRES_DDL = [
    "ALTER TABLE chunks ADD COLUMN IF NOT EXISTS tsv tsvector",
    "CREATE OR REPLACE FUNCTION chunks_tsv() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.tsv := "
    + _POSTGRES_TSV.format(title="(SELECT title FROM documents WHERE id = NEW.document_id)", text="NEW.text")
    + "; RETURN NEW; END $$",
    "DROP TRIGGER IF EXISTS chunks_tsv_biu ON chunks",
    "CREATE TRIGGER chunks_tsv_biu BEFORE INSERT OR UPDATE OF text, document_id ON chunks "
    "FOR EACH ROW EXECUTE FUNCTION chunks_tsv()",
    "UPDATE chunks c SET tsv = "
    + _POSTGRES_TSV.format(title="d.title", text="c.text")
    + " FROM documents d WHERE d.id = c.document_id AND c.tsv IS NULL",
    "CREATE INDEX IF NOT EXISTS ix_chunks_tsv_all ON chunks USING GIN (tsv)",
    "DROP INDEX IF EXISTS ix_chunks_tsv",  # the per-table indexes of earlier revisions
    "DROP INDEX IF EXISTS ix_documents_title_tsv",
]


def query_terms(query: str) -> list[str]:
    """Lower-cased words of a query, stopwords dropped, order kept, duplicates removed."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        if word not in STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)


def rebuild(connection: Connection) -> None:
    """Recreate the keyword index in its current form and fill it from the chunks (a schema migration's job)."""
    sqlite = connection.dialect.name == "sqlite"
    for statement in [*_SQLITE_DROP, *_SQLITE_DDL, _SQLITE_FILL] if sqlite else _POSTGRES_DDL:
        connection.execute(text(statement))


def search(session: Session, query: str, k: int, collection_id: int) -> list[tuple[int, float]]:
    """Top-k (chunk id, score) for a query in one collection; higher scores are better."""
    terms = query_terms(query)
    if not terms or k <= 0:
        return []
    if session.get_bind().dialect.name == "sqlite":
        match = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
        return _sqlite_search(session, match, k, collection_id)
    sql = text(
        "SELECT c.id, ts_rank_cd(c.tsv, q) AS score "
        "FROM chunks c JOIN documents d ON d.id = c.document_id, to_tsquery('english', :match) q "
        "WHERE c.tsv @@ q AND d.collection_id = :cid ORDER BY score DESC LIMIT :k"
    )
    match = " | ".join(re.sub(r"[^\w]", "", term) for term in terms if re.sub(r"[^\w]", "", term))
    rows = session.execute(sql, {"match": match, "cid": collection_id, "k": k})
    return [(int(chunk_id), float(score)) for chunk_id, score in rows]


def _sqlite_search(session: Session, match: str, k: int, collection_id: int) -> list[tuple[int, float]]:
    """FTS5 ranks its matches alone first (joining every match of a common word to its chunk and document is what
    costs at scale), then the best are kept to the collection; only when that leaves fewer than k, because other
    collections took the top places, is the ranking redone with the join."""
    fetch = 4 * k
    ranked = text(
        "SELECT c.id, -f.score FROM (SELECT rowid, bm25(chunks_fts) AS score FROM chunks_fts "
        "WHERE chunks_fts MATCH :match ORDER BY score LIMIT :fetch) f JOIN chunks c ON c.id = f.rowid "
        "JOIN documents d ON d.id = c.document_id WHERE d.collection_id = :cid ORDER BY f.score LIMIT :k"
    )
    rows = session.execute(ranked, {"match": match, "fetch": fetch, "cid": collection_id, "k": k}).all()
    if len(rows) < k:
        joined = text(
            "SELECT c.id, -bm25(chunks_fts) AS score FROM chunks_fts "
            "JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.document_id "
            "WHERE chunks_fts MATCH :match AND d.collection_id = :cid ORDER BY bm25(chunks_fts) LIMIT :k"
        )
        rows = session.execute(joined, {"match": match, "cid": collection_id, "k": k}).all()
    return [(int(chunk_id), float(score)) for chunk_id, score in rows]


def count(session: Session, collection_id: int) -> int | None:
    """Chunks of a collection present in the keyword index (SQLite; PostgreSQL indexes the chunks table itself)."""
    if session.get_bind().dialect.name != "sqlite":
        return None
    sql = text(
        "SELECT count(*) FROM chunks_fts f JOIN chunks c ON c.id = f.rowid "
        "JOIN documents d ON d.id = c.document_id WHERE d.collection_id = :cid"
    )
    return int(session.execute(sql, {"cid": collection_id}).scalar_one())
