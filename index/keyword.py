"""Keyword (BM25-style) search inside the SQL database, so it commits and rolls back with the chunk rows.

SQLite: an FTS5 table of (title, text) kept equal to `chunks` by triggers, ranked by FTS5's bm25().
PostgreSQL: GIN indexes over to_tsvector('english', ...) of chunk text and document title, ranked by ts_rank_cd.
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

_POSTGRES_DDL = [
    "CREATE INDEX IF NOT EXISTS ix_chunks_tsv ON chunks USING GIN (to_tsvector('english', text))",
    "CREATE INDEX IF NOT EXISTS ix_documents_title_tsv ON documents USING GIN (to_tsvector('english', title))",
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
        sql = text(
            "SELECT c.id, -bm25(chunks_fts) AS score FROM chunks_fts "
            "JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.document_id "
            "WHERE chunks_fts MATCH :match AND d.collection_id = :cid ORDER BY bm25(chunks_fts) LIMIT :k"
        )
        rows = session.execute(sql, {"match": match, "cid": collection_id, "k": k})
    else:
        sql = text(
            "SELECT c.id, ts_rank_cd(to_tsvector('english', d.title || ' ' || c.text), q) AS score "
            "FROM chunks c JOIN documents d ON d.id = c.document_id, to_tsquery('english', :match) q "
            "WHERE (to_tsvector('english', c.text) @@ q OR to_tsvector('english', d.title) @@ q) "
            "AND d.collection_id = :cid ORDER BY score DESC LIMIT :k"
        )
        match = " | ".join(re.sub(r"[^\w]", "", term) for term in terms if re.sub(r"[^\w]", "", term))
        rows = session.execute(sql, {"match": match, "cid": collection_id, "k": k})
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
