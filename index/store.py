"""One store: SQL rows (the source of truth) + a FAISS index per collection + a keyword index, kept equal.

Write order makes every crash recoverable: SQL commits first (a document and its chunks in one
transaction), then vectors are added and the FAISS file is replaced atomically. After a crash SQL may
hold chunks FAISS lacks, or FAISS may hold ids SQL deleted; `repair` embeds the first and drops the
second, and every ingest starts with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, create_engine, delete, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from index import keyword, manifest, schema
from index.embedder import DEFAULT_EMBEDDER, SentenceTransformerEmbedder
from index.errors import EmbedderMismatchError, NotFoundError
from index.models import Chunk, Collection, Document, IngestRun, utcnow
from index.sentences import vector_texts
from index.types import AddResult, ConsistencyReport, DocumentIn, Embedder, Passage
from index.vectors import FaissIndex

log = logging.getLogger(__name__)

DEFAULT_COLLECTION = "default"


@dataclass(frozen=True)
class DocumentInfo:
    id: int
    collection: str
    source: str
    title: str
    content_hash: str
    chunks: int


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_db_engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Store:
    """Open with `Store.open(path)`; safe to share between threads of one process (one writer at a time)."""

    def __init__(self, root: Path, engine: Engine, embedder: Embedder) -> None:
        self.root = root
        self.engine = engine
        self.embedder = embedder
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._vectors: dict[int, FaissIndex] = {}
        self._dirty: set[int] = set()  # collections whose vectors changed since the last save
        self._lock = threading.RLock()

    @classmethod
    def open(cls, root: str | Path, embedder: Embedder | None = None, database_url: str | None = None) -> Store:
        """Open or create the store in `root`; refuses an embedder other than the one the store was built with."""
        root = Path(root).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        recorded = manifest.read(root)
        if embedder is None:
            embedder = SentenceTransformerEmbedder(recorded.embedder if recorded else DEFAULT_EMBEDDER)
        if recorded is not None and recorded.embedder != embedder.name:
            raise EmbedderMismatchError(
                f"store {root} was built with embedder {recorded.embedder!r} (dimension {recorded.dimension}); "
                f"it cannot be used with {embedder.name!r}. Open it without an embedder, or use a new store."
            )
        engine = create_db_engine(database_url or f"sqlite:///{root / 'store.db'}")
        schema.upgrade(engine)
        store = cls(root, engine, embedder)
        # Vector files from before sentence vectors (one vector per chunk): re-embed from SQL, then drop them.
        legacy = sorted((root / "vectors").glob("collection-*[0-9].faiss"))
        if legacy:
            log.warning("re-embedding %s with sentence vectors", ", ".join(p.name for p in legacy))
            store.repair()
            for path in legacy:
                path.unlink()
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    # ---- collections and vector files -------------------------------------------------------

    def _collection_id(self, session: Session, name: str, create: bool = False) -> int:
        cid = session.scalar(select(Collection.id).where(Collection.name == name))
        if cid is not None:
            return cid
        if not create:
            raise NotFoundError(f"no collection named {name!r}; collections: {self.collections()}")
        row = Collection(name=name)
        session.add(row)
        session.flush()
        return row.id

    def collections(self) -> list[str]:
        with self.session() as session:
            return list(session.scalars(select(Collection.name).order_by(Collection.name)))

    def _vector_path(self, cid: int) -> Path:
        return self.root / "vectors" / f"collection-{cid}.sentences.faiss"

    def _index(self, cid: int) -> FaissIndex:
        index = self._vectors.get(cid)
        if index is None:
            path = self._vector_path(cid)
            index = FaissIndex.load(path) if path.exists() else FaissIndex.create(self.embedder.dimension)
            if index.dimension != self.embedder.dimension:
                raise EmbedderMismatchError(
                    f"{path} holds {index.dimension}-d vectors; embedder {self.embedder.name!r} "
                    f"makes {self.embedder.dimension}-d ones"
                )
            self._vectors[cid] = index
        return index

    def save(self) -> None:
        """Persist loaded vector indexes atomically, then the manifest."""
        with self._lock:
            for cid in sorted(self._dirty):
                self._vectors[cid].save(self._vector_path(cid))
            self._dirty.clear()
            counts = {}
            with self.session() as session:
                rows = session.execute(
                    select(Collection.name, func.count(func.distinct(Document.id)), func.count(Chunk.id))
                    .select_from(Collection)
                    .outerjoin(Document, Document.collection_id == Collection.id)
                    .outerjoin(Chunk, Chunk.document_id == Document.id)
                    .group_by(Collection.name)
                )
                counts = {name: {"documents": docs, "chunks": chunks} for name, docs, chunks in rows}
            manifest.write(
                self.root,
                manifest.Manifest(embedder=self.embedder.name, dimension=self.embedder.dimension, collections=counts),
            )

    # ---- writes -------------------------------------------------------------------------------

    def add(self, docs: Sequence[DocumentIn], collection: str = DEFAULT_COLLECTION, save: bool = True) -> AddResult:
        """Insert new documents, replace changed ones (same source, new content), skip unchanged ones."""
        with self._lock, self.session() as session:
            cid = self._collection_id(session, collection, create=True)
            session.commit()
            existing = dict(
                session.execute(
                    select(Document.source, Document.content_hash).where(
                        Document.collection_id == cid, Document.source.in_([d.source for d in docs])
                    )
                ).all()
            )
            fresh = [d for d in _dedupe(docs) if existing.get(d.source) != d.content_hash]
            unchanged = len(docs) - len(fresh)
            if not fresh:
                return AddResult(unchanged=unchanged)
            # Embed before touching SQL, so a failure here writes nothing.
            counts, vectors = self._embed_chunks([(c.text, d.title) for d in fresh for c in d.chunks])
            replaced_sources = [d.source for d in fresh if d.source in existing]
            old_ids = self._delete_rows(session, cid, replaced_sources)
            rows = [_document_row(cid, d) for d in fresh]
            session.add_all(rows)
            session.flush()
            new_ids = np.array([c.id for row in rows for c in row.chunks], dtype=np.int64)
            session.commit()
            index = self._index(cid)
            index.remove(old_ids)
            index.add(np.repeat(new_ids, counts), vectors)
            self._dirty.add(cid)
            if save:
                self.save()
            return AddResult(
                added=len(fresh) - len(replaced_sources),
                replaced=len(replaced_sources),
                unchanged=unchanged,
                chunks=len(new_ids),
            )

    def _embed_chunks(self, chunks: Sequence[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        """Embed (chunk text, document title) pairs as `vector_texts`; returns vectors per chunk and all vectors."""
        texts = [vector_texts(text, title) for text, title in chunks]
        counts = np.array([len(t) for t in texts], dtype=np.int64)
        return counts, self.embedder.embed_documents([t for group in texts for t in group])

    def _delete_rows(self, session: Session, cid: int, sources: Sequence[str]) -> np.ndarray:
        if not sources:
            return np.zeros(0, dtype=np.int64)
        doc_ids = select(Document.id).where(Document.collection_id == cid, Document.source.in_(sources))
        chunk_ids = np.array(
            list(session.scalars(select(Chunk.id).where(Chunk.document_id.in_(doc_ids)))), dtype=np.int64
        )
        # Chunks first and explicitly: the keyword index's triggers fire on these deletes.
        session.execute(delete(Chunk).where(Chunk.document_id.in_(doc_ids)))
        session.execute(delete(Document).where(Document.id.in_(doc_ids)))
        return chunk_ids

    def delete(self, source: str, collection: str = DEFAULT_COLLECTION) -> int:
        """Remove a document (by its source) from SQL, FAISS and the keyword index; returns chunks removed."""
        with self._lock, self.session() as session:
            cid = self._collection_id(session, collection)
            found = session.scalar(select(Document.id).where(Document.collection_id == cid, Document.source == source))
            if found is None:
                raise NotFoundError(f"no document with source {source!r} in collection {collection!r}")
            chunk_ids = self._delete_rows(session, cid, [source])
            session.commit()
            self._index(cid).remove(chunk_ids)
            self._dirty.add(cid)
            self.save()
            return len(chunk_ids)

    # ---- consistency --------------------------------------------------------------------------

    def check(self, collection: str | None = None) -> list[ConsistencyReport]:
        """Compare the chunk ids in SQL with those in each collection's vector and keyword index."""
        reports = []
        with self.session() as session:
            names = [collection] if collection else self.collections()
            for name in names:
                cid = self._collection_id(session, name)
                sql_ids = set(session.scalars(select(Chunk.id).join(Document).where(Document.collection_id == cid)))
                vector_ids = set(self._index(cid).ids().tolist())
                reports.append(
                    ConsistencyReport(
                        collection=name,
                        sql_chunks=len(sql_ids),
                        vector_chunks=len(vector_ids),
                        missing_vectors=tuple(sorted(sql_ids - vector_ids)),
                        orphan_vectors=tuple(sorted(vector_ids - sql_ids)),
                        keyword_chunks=keyword.count(session, cid),
                    )
                )
        return reports

    def repair(self, batch_size: int = 256) -> list[ConsistencyReport]:
        """Make every vector index equal to SQL: embed chunks it lacks, drop ids SQL no longer has."""
        with self._lock:
            reports = self.check()
            changed = False
            for report in reports:
                if report.consistent:
                    continue
                with self.session() as session:
                    cid = self._collection_id(session, report.collection)
                    index = self._index(cid)
                    self._dirty.add(cid)
                    index.remove(np.array(report.orphan_vectors, dtype=np.int64))
                    missing = list(report.missing_vectors)
                    for start in range(0, len(missing), batch_size):
                        ids = missing[start : start + batch_size]
                        rows = session.execute(
                            select(Chunk.id, Chunk.text, Document.title).join(Document).where(Chunk.id.in_(ids))
                        ).all()
                        counts, vectors = self._embed_chunks([(text, title) for _, text, title in rows])
                        index.add(np.repeat(np.array([i for i, _, _ in rows], dtype=np.int64), counts), vectors)
                    changed = True
            if changed:
                self.save()
                reports = self.check()
            return reports

    # ---- reads --------------------------------------------------------------------------------

    def dense_search(
        self,
        query_vectors: np.ndarray,
        k: int,
        collection: str = DEFAULT_COLLECTION,
        filters: Mapping[str, Any] | None = None,
    ) -> list[list[tuple[int, float]]]:
        """Top-k (chunk id, cosine score) per query vector."""
        with self.session() as session:
            cid = self._collection_id(session, collection)
            allowed = self._filtered_chunk_ids(session, cid, filters) if filters else None
        if allowed is not None and len(allowed) == 0:
            return [[] for _ in range(len(query_vectors))]
        with self._lock:  # a search must not run while a writer mutates the same FAISS index
            scores, ids = self._index(cid).search(query_vectors, k, allowed)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def keyword_search(
        self, query: str, k: int, collection: str = DEFAULT_COLLECTION, filters: Mapping[str, Any] | None = None
    ) -> list[tuple[int, float]]:
        """Top-k (chunk id, keyword score) for one query."""
        with self.session() as session:
            cid = self._collection_id(session, collection)
            if not filters:
                return keyword.search(session, query, k, cid)
            allowed = set(self._filtered_chunk_ids(session, cid, filters).tolist())
            # Over-fetch, then filter: keyword hits are cheap, and filters are usually broad.
            hits = keyword.search(session, query, max(k * 10, 100), cid)
            return [hit for hit in hits if hit[0] in allowed][:k]

    def _filtered_chunk_ids(self, session: Session, cid: int, filters: Mapping[str, Any]) -> np.ndarray:
        query = select(Chunk.id).join(Document).where(Document.collection_id == cid)
        for key, value in filters.items():
            if key == "source":
                query = query.where(Document.source == value)
                continue
            field = Document.metadata_[key]
            if isinstance(value, bool):
                query = query.where(field.as_boolean() == value)
            elif isinstance(value, int):
                query = query.where(field.as_integer() == value)
            elif isinstance(value, float):
                query = query.where(field.as_float() == value)
            else:
                query = query.where(field.as_string() == str(value))
        return np.array(list(session.scalars(query)), dtype=np.int64)

    def passages(self, scored_ids: Sequence[tuple[int, float]]) -> list[Passage]:
        """Resolve (chunk id, score) pairs to passages, in the given order; ids no longer in SQL are dropped."""
        if not scored_ids:
            return []
        with self.session() as session:
            rows = session.execute(
                select(Chunk, Document.source, Document.title, Document.metadata_, Document.id, Collection.name)
                .join(Document, Chunk.document_id == Document.id)
                .join(Collection, Document.collection_id == Collection.id)
                .where(Chunk.id.in_([i for i, _ in scored_ids]))
            ).all()
        by_id = {
            chunk.id: Passage(
                chunk_id=chunk.id,
                document_id=doc_id,
                source=source,
                title=title,
                text=chunk.text,
                start=chunk.start_char,
                end=chunk.end_char,
                ordinal=chunk.ordinal,
                collection=collection,
                metadata=meta or {},
            )
            for chunk, source, title, meta, doc_id, collection in rows
        }
        return [replace(by_id[i], score=s) for i, s in scored_ids if i in by_id]

    def documents(self, collection: str | None = None) -> list[DocumentInfo]:
        with self.session() as session:
            query = (
                select(Document, Collection.name, func.count(Chunk.id))
                .join(Collection, Document.collection_id == Collection.id)
                .outerjoin(Chunk, Chunk.document_id == Document.id)
                .group_by(Document.id, Collection.name)
                .order_by(Document.id)
            )
            if collection:
                query = query.where(Collection.name == collection)
            return [
                DocumentInfo(d.id, name, d.source, d.title, d.content_hash, n) for d, name, n in session.execute(query)
            ]

    def document_text(self, document_id: int) -> str:
        with self.session() as session:
            text = session.scalar(select(Document.text).where(Document.id == document_id))
        if text is None:
            raise NotFoundError(f"no document with id {document_id}")
        return text

    # ---- ingest runs --------------------------------------------------------------------------

    def start_run(self, collection: str) -> int:
        with self.session() as session:
            run = IngestRun(collection=collection)
            session.add(run)
            session.commit()
            return run.id

    def finish_run(self, run_id: int, status: str, summary: Mapping[str, Any]) -> None:
        with self.session() as session:
            run = session.get(IngestRun, run_id)
            if run is None:
                raise NotFoundError(f"no ingest run {run_id}")
            run.status, run.summary, run.finished_at = status, dict(summary), utcnow()
            session.commit()


def _dedupe(docs: Sequence[DocumentIn]) -> list[DocumentIn]:
    """Last one wins when a batch names the same source twice."""
    return list({d.source: d for d in docs}.values())


def _document_row(cid: int, doc: DocumentIn) -> Document:
    return Document(
        collection_id=cid,
        source=doc.source,
        title=doc.title,
        content_hash=doc.content_hash,
        text=doc.text,
        metadata_=dict(doc.metadata),
        chunks=[Chunk(ordinal=c.ordinal, start_char=c.start, end_char=c.end, text=c.text) for c in doc.chunks],
    )
