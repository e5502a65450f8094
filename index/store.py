"""One store: SQL rows (the source of truth) + a FAISS index per collection + a keyword index, kept equal.

Chunk and document ids are never reused, so a vector saved under a chunk id can only ever be that chunk's.
Every write runs under the store's write lock (a lock file: one writer across processes) and bumps its
collection's generation in the same SQL transaction; the vector file is then saved under a new name and the
manifest pointed at it with its checksum. A crash at any point leaves SQL ahead of a verified vector file,
never a wrong one: the next writer sees the generation gap and heals the file (embeds chunks it lacks, drops
ids SQL no longer has). Readers in other processes (`rag serve`) notice a newer saved generation and reload.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout
from sqlalchemy import Engine, create_engine, delete, event, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from index import keyword, layouts, manifest, schema, vector_files
from index.embedder import DEFAULT_EMBEDDER, SentenceTransformerEmbedder
from index.errors import (
    EmbedderMismatchError,
    ManifestError,
    NotFoundError,
    StoreBusyError,
    StoreError,
    StoreIntegrityError,
)
from index.json_safe import json_safe
from index.manifest import IndexSpec
from index.models import Chunk, Collection, Document, IngestRun, utcnow
from index.owners import owner_gone, run_owner
from index.sentences import vector_texts
from index.types import AddResult, ConsistencyReport, DocumentIn, Embedder, Passage
from index.vectors import FaissIndex

log = logging.getLogger(__name__)

# What `Store.embed` returns: each chunk's vector count, then all the vectors in chunk order.
Embedded = tuple[np.ndarray, np.ndarray]

DEFAULT_COLLECTION = "default"
LOCK_NAME = "write.lock"
OWNER_NAME = "write.owner"  # who holds the lock, for the message another writer sees
# A chunk re-embedded now (and passed through the index's codes) scores about 1.0 against its own stored
# vectors; another text's fall far below.
SAMPLE_MIN_COSINE = 0.95
UNVERSIONED = -1  # the generation of a vector file saved before generations were recorded


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
    """Open with `Store.open(path)`; safe to share between threads, and between processes on one machine."""

    def __init__(
        self,
        root: Path,
        engine: Engine,
        embedder: Embedder,
        lock_timeout_s: float = 600.0,
        exact_max_vectors: int = layouts.EXACT_MAX_VECTORS,
    ) -> None:
        self.root = root
        self.engine = engine
        self.embedder = embedder
        self.lock_timeout_s = lock_timeout_s  # how long a write waits for another process's write to finish
        self.exact_max_vectors = exact_max_vectors  # a collection with more vectors gets an approximate index
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._vectors: dict[int, FaissIndex] = {}
        self._generations: dict[int, int] = {}  # the SQL generation each loaded index reflects
        self._dirty: set[int] = set()  # collections whose vectors changed since the last save
        self._index_lock = threading.RLock()  # searches versus changes to the in-memory indexes
        self._write_lock = threading.RLock()  # one writer at a time in this process
        self._file_lock = FileLock(root / LOCK_NAME, thread_local=False)
        self._write_depth = 0
        self._manifest: tuple[tuple[int, int, int], manifest.Manifest | None] | None = None
        self._names: dict[int, str] = {}  # collection id -> name; collections are never renamed or deleted

    @classmethod
    def open(
        cls,
        root: str | Path,
        embedder: Embedder | None = None,
        database_url: str | None = None,
        rebuild_manifest: bool = False,
        exact_max_vectors: int = layouts.EXACT_MAX_VECTORS,
    ) -> Store:
        """Open or create the store in `root`; refuses an embedder other than the one the store was built with.

        A store whose manifest is gone is refused (its embedder and checksums are unknown) unless
        `rebuild_manifest`: then its vector files are dropped and rebuilt from SQL with `embedder` (or the default).
        """
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
        try:
            schema.upgrade(engine)
            store = cls(root, engine, embedder, exact_max_vectors=exact_max_vectors)
            if recorded is None and not store._holds_data():
                # A new store gets its manifest now: a first write killed before its save is then an ordinary
                # generation gap that the next writer heals, not a store without a manifest.
                with store.writing():
                    store._save_manifest({})
            elif recorded is None:
                if not rebuild_manifest:
                    raise ManifestError(
                        f"store {root} holds data but its {manifest.MANIFEST_NAME} is missing, so its embedder and "
                        "vector checksums are unknown; run `rag check --repair` (add --embedder NAME if it was not "
                        "built with the default) to rebuild its vectors from SQL"
                    )
                store._forget_vectors()
        except BaseException:
            engine.dispose()
            raise
        # Vector files from before sentence vectors (one vector per chunk): re-embed from SQL, then drop them.
        legacy = sorted((root / "vectors").glob("collection-*[0-9].faiss"))
        if legacy:
            log.warning("re-embedding %s with sentence vectors", ", ".join(p.name for p in legacy))
            store.repair(sample=0)
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

    def _holds_data(self) -> bool:
        with self.session() as session:
            has_rows = session.scalar(select(Document.id).limit(1)) is not None
        return has_rows or any(self.vectors_dir.glob("collection-*"))

    def _forget_vectors(self) -> None:
        """Start the vector side over: every collection is re-embedded from SQL by the next write or repair."""
        with self.writing():
            for path in self.vectors_dir.glob("collection-*"):
                path.unlink()
            self._save_manifest({})

    # ---- the write lock -----------------------------------------------------------------------

    @contextmanager
    def writing(self, timeout_s: float | None = None) -> Iterator[None]:
        """Hold the store's write lock (re-entrant); on leaving the outermost level, unsaved vectors are saved.

        StoreBusyError when another process holds it for longer than `timeout_s` (default `lock_timeout_s`).
        """
        with self._write_lock:
            outer = self._write_depth == 0
            if outer:
                self._acquire(self.lock_timeout_s if timeout_s is None else timeout_s)
            self._write_depth += 1
            try:
                yield
            finally:
                self._write_depth -= 1
                if outer:
                    try:
                        if self._dirty:
                            self.save()
                    finally:
                        self._file_lock.release()

    def _acquire(self, timeout_s: float) -> None:
        try:
            self._file_lock.acquire(timeout=0)
        except Timeout:
            holder = self._lock_owner()
            log.warning("waiting up to %.0f s for the store's write lock (held by %s)", timeout_s, holder)
            try:
                self._file_lock.acquire(timeout=timeout_s)
            except Timeout as exc:
                raise StoreBusyError(
                    f"store {self.root} is being written by another process ({holder}); "
                    f"waited {timeout_s:.0f} s, try again when it has finished"
                ) from exc
        owner = {"pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        manifest.write_atomic(self.root / OWNER_NAME, json.dumps(owner))
        self._manifest = None  # another writer may have saved since this process last looked
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        """Temp files of a killed save, and files a newer save superseded (readers retry if one vanishes)."""
        recorded = self._read_manifest()
        records = recorded.vector_files if recorded else {}
        keep = {record.file for record in records.values()}
        names = self._collection_ids()
        keep |= {vector_files.unrecorded_name(cid) for cid, name in names.items() if name not in records}
        removed = vector_files.remove_unrecorded(self.vectors_dir, keep)
        for temp in [*self.root.glob(f"{manifest.MANIFEST_NAME}.*.tmp"), *self.root.glob(f"{OWNER_NAME}.*.tmp")]:
            temp.unlink(missing_ok=True)  # a killed atomic write's temp file
            removed.append(temp.name)
        if removed:
            log.info("removed %d leftover files: %s", len(removed), ", ".join(removed))

    def _lock_owner(self) -> str:
        try:
            owner = json.loads((self.root / OWNER_NAME).read_text(encoding="utf-8"))
            return f"pid {owner['pid']} since {owner['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    # ---- collections, generations and vector files ---------------------------------------------

    def _collection_state(self, session: Session, name: str) -> tuple[int, int]:
        """(id, generation) of a collection, in one query (searches ask for both)."""
        found = session.execute(select(Collection.id, Collection.generation).where(Collection.name == name)).first()
        if found is None:
            raise self._unknown_collection(name)
        return found[0], found[1]

    def _collection_id(self, session: Session, name: str, create: bool = False) -> int:
        cid = session.scalar(select(Collection.id).where(Collection.name == name))
        if cid is not None:
            return cid
        if not create:
            raise self._unknown_collection(name)
        row = Collection(name=name)
        session.add(row)
        session.flush()
        return row.id

    def _unknown_collection(self, name: str) -> NotFoundError:
        return NotFoundError(f"no collection named {name!r}; collections: {self.collections()}")

    def _collection_ids(self) -> dict[int, str]:
        with self.session() as session:
            self._names.update(session.execute(select(Collection.id, Collection.name)).all())
        return dict(self._names)

    def _collection_name(self, cid: int) -> str | None:
        return self._names.get(cid) or self._collection_ids().get(cid)

    def collections(self) -> list[str]:
        with self.session() as session:
            return list(session.scalars(select(Collection.name).order_by(Collection.name)))

    @staticmethod
    def _sql_generation(session: Session, cid: int) -> int:
        return int(session.scalar(select(Collection.generation).where(Collection.id == cid)) or 0)

    @staticmethod
    def _bump_generation(session: Session, cid: int) -> int:
        """Part of the caller's transaction: the vectors it is about to change belong to this new generation."""
        session.execute(update(Collection).where(Collection.id == cid).values(generation=Collection.generation + 1))
        return Store._sql_generation(session, cid)

    def _read_manifest(self) -> manifest.Manifest | None:
        """The manifest on disk, re-read only when its file changed (readers call this on every search)."""
        path = self.root / manifest.MANIFEST_NAME
        try:
            stat = path.stat()
            key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            key = (0, 0, 0)
        if self._manifest is None or self._manifest[0] != key:
            self._manifest = (key, manifest.read(self.root))
        return self._manifest[1]

    def _record(self, cid: int) -> manifest.VectorFile | None:
        recorded, name = self._read_manifest(), self._collection_name(cid)
        return recorded.vector_files.get(name) if recorded and name else None

    def _load(self, cid: int) -> tuple[FaissIndex, int]:
        """The collection's saved index, verified against the manifest, and the generation it holds."""
        for _attempt in range(3):
            record = self._record(cid)
            folder = self.vectors_dir
            path = folder / (record.file if record else vector_files.unrecorded_name(cid))
            try:
                if record is None and not path.exists():
                    return FaissIndex.create(self.embedder.dimension), UNVERSIONED
                index = vector_files.read(path, record, self.embedder.dimension)
            except FileNotFoundError:
                if record is None:
                    raise
                self._manifest = None  # a writer replaced the file between our reads of manifest and file
                continue
            return index, record.generation if record else UNVERSIONED
        raise StoreIntegrityError(f"{path}: the manifest names a missing vector file; {vector_files.REPAIR_HINT}")

    def _index_for_write(self, session: Session, cid: int) -> FaissIndex:
        """The collection's index, level with SQL: reloaded when another process saved a newer one, healed when
        a write's vectors never reached the file (a crash between the SQL commit and the save)."""
        generation = self._sql_generation(session, cid)
        if cid in self._vectors and self._generations[cid] == generation:
            return self._vectors[cid]
        index, saved = self._load(cid)
        if saved != generation:
            self._heal(session, cid, index)
            self._dirty.add(cid)
        self._install(cid, index, generation)
        return index

    def _install(self, cid: int, index: FaissIndex, generation: int) -> None:
        """Make `index` the collection's in-memory index, reflecting SQL `generation`."""
        with self._index_lock:
            self._vectors[cid], self._generations[cid] = index, generation

    def _index_for_read(self, cid: int, generation: int) -> FaissIndex:
        """The loaded index, replaced by the saved one when a writer elsewhere has saved a newer generation."""
        index = self._vectors.get(cid)
        if index is not None and self._generations[cid] >= generation:
            return index
        record = self._record(cid)
        if index is None or (record is not None and record.generation > self._generations[cid]):
            index, saved = self._load(cid)
            self._install(cid, index, saved)
        return index

    def _heal(self, session: Session, cid: int, index: FaissIndex, batch_size: int = 256) -> None:
        """Make `index` hold exactly SQL's chunks: ids are never reused, so equal id sets mean equal content."""
        sql_ids = np.array(list(session.scalars(_chunk_ids(cid))), dtype=np.int64)
        vector_ids = index.ids()
        orphans = np.setdiff1d(vector_ids, sql_ids)
        missing = np.setdiff1d(sql_ids, vector_ids)
        if len(orphans) or len(missing):
            log.warning("collection %d: dropping %d orphan ids, embedding %d chunks", cid, len(orphans), len(missing))
        index.remove(orphans)
        self._embed_into(session, index, missing.tolist(), batch_size)

    def _embed_into(self, session: Session, index: FaissIndex, chunk_ids: list[int], batch_size: int = 256) -> None:
        bar = tqdm(total=len(chunk_ids), desc="embed", unit="chunk", disable=len(chunk_ids) < 4 * batch_size)
        for start in range(0, len(chunk_ids), batch_size):
            rows = session.execute(
                select(Chunk.id, Chunk.text, Document.title)
                .join(Document)
                .where(Chunk.id.in_(chunk_ids[start : start + batch_size]))
            ).all()
            counts, vectors = embed_chunks(self.embedder, [(text, title) for _, text, title in rows])
            index.add(np.repeat(np.array([i for i, _, _ in rows], dtype=np.int64), counts), vectors)
            bar.update(len(rows))
        bar.close()

    def save(self) -> None:
        """Write each changed index to a new file, then point the manifest at it (a crash leaves the old one)."""
        with self.writing():
            recorded = self._read_manifest()
            records = dict(recorded.vector_files) if recorded else {}
            names = self._collection_ids()
            for cid in sorted(self._dirty):
                name, generation = names[cid], self._generations[cid]
                on_disk = records.get(name)
                if on_disk is not None and on_disk.generation > generation:
                    raise StoreError(
                        f"refusing to save collection {name!r} at generation {generation}: "
                        f"the store already holds generation {on_disk.generation}"
                    )
                index = self._vectors[cid]
                reason = layouts.rebuild_reason(index, self.exact_max_vectors)
                if reason:
                    log.warning("collection %r: rebuilding its vector index, %s", name, reason)
                    index = layouts.rebuild(index, index.spec.requested, self.exact_max_vectors)
                    self._install(cid, index, generation)
                # No index lock: changes to it are writes, and this process holds the write lock.
                records[name] = vector_files.write(index, self.vectors_dir, cid, generation)
            self._save_manifest(records)
            self._dirty.clear()
            self._remove_leftovers()

    def _save_manifest(self, records: dict[str, manifest.VectorFile]) -> None:
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
            manifest.Manifest(
                embedder=self.embedder.name, dimension=self.embedder.dimension, collections=counts, vector_files=records
            ),
        )
        self._manifest = None

    # ---- writes -------------------------------------------------------------------------------

    def add(
        self,
        docs: Sequence[DocumentIn],
        collection: str = DEFAULT_COLLECTION,
        save: bool = True,
        embedded: Embedded | None = None,
    ) -> AddResult:
        """Insert new documents, replace changed ones (same source, new content), skip unchanged ones.

        Embedding runs before the write lock is taken, so searches and other writers are not held up by it.
        With `save=False` inside `writing()`, the vector file is saved when the outermost `writing()` ends.
        `embedded` is what `embed(docs)` returned for exactly these documents, computed elsewhere (a worker).
        """
        given, last = docs, _last_of_each_source(docs)
        docs = [given[i] for i in last]
        with self.session() as session:
            fresh = self._changed(session, docs, collection)
        if embedded is None:
            counts, vectors = self.embed(fresh)
        else:
            counts, vectors = embedded
            if len(counts) != sum(len(d.chunks) for d in given) or int(counts.sum()) != len(vectors):
                raise ValueError("`embedded` does not match the documents' chunks: make it with Store.embed(docs)")
            changed = {d.source for d in fresh}
            counts, vectors = _select_documents(given, counts, vectors, [i for i in last if given[i].source in changed])
        with self.writing(), self.session() as session:
            cid = self._collection_id(session, collection, create=True)
            session.commit()
            index = self._index_for_write(session, cid)
            # Another writer may have stored some of these since they were compared: compare again under the lock.
            still = {d.source for d in self._changed(session, fresh, collection)}
            keep = [i for i, d in enumerate(fresh) if d.source in still]
            result = AddResult(unchanged=len(docs) - len(keep))
            if keep:
                kept_counts, kept_vectors = _select_documents(fresh, counts, vectors, keep)
                result = self._write_documents(session, cid, index, [fresh[i] for i in keep], kept_counts, kept_vectors)
                result = replace(result, unchanged=len(docs) - len(keep))
            if save:
                self.save()
            return result

    def _changed(self, session: Session, docs: Sequence[DocumentIn], collection: str) -> list[DocumentIn]:
        """The documents whose source is new to the collection or whose content differs from the stored one."""
        stored = dict(
            session.execute(
                select(Document.source, Document.content_hash)
                .join(Collection)
                .where(Collection.name == collection, Document.source.in_([d.source for d in docs]))
            ).all()
        )
        return [d for d in docs if stored.get(d.source) != d.content_hash]

    def _write_documents(
        self,
        session: Session,
        cid: int,
        index: FaissIndex,
        fresh: Sequence[DocumentIn],
        counts: np.ndarray,
        vectors: np.ndarray,
    ) -> AddResult:
        """One transaction: old versions out, new rows in, generation bumped; then the in-memory vectors follow."""
        sources = [d.source for d in fresh]
        existing = set(
            session.scalars(select(Document.source).where(Document.collection_id == cid, Document.source.in_(sources)))
        )
        replaced = [source for source in sources if source in existing]
        old_ids = self._delete_rows(session, cid, replaced)
        new_ids = _insert_chunks(session, fresh, _insert_documents(session, cid, fresh))
        generation = self._bump_generation(session, cid)
        session.commit()
        with self._index_lock:
            index.remove(old_ids)
            index.add(np.repeat(new_ids, counts), vectors)
            self._generations[cid] = generation
        self._dirty.add(cid)
        return AddResult(added=len(fresh) - len(replaced), replaced=len(replaced), chunks=len(new_ids))

    def embed(self, docs: Sequence[DocumentIn]) -> Embedded:
        """The vectors `add` stores for these documents' chunks: per chunk its vector count, then all vectors."""
        return embed_chunks(self.embedder, [(c.text, d.title) for d in docs for c in d.chunks])

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
        with self.writing(), self.session() as session:
            cid = self._collection_id(session, collection)
            index = self._index_for_write(session, cid)  # loaded before the commit: nothing slow sits after it
            found = session.scalar(select(Document.id).where(Document.collection_id == cid, Document.source == source))
            if found is None:
                raise NotFoundError(f"no document with source {source!r} in collection {collection!r}")
            chunk_ids = self._delete_rows(session, cid, [source])
            generation = self._bump_generation(session, cid)
            session.commit()
            with self._index_lock:
                index.remove(chunk_ids)
                self._generations[cid] = generation
            self._dirty.add(cid)
            self.save()
            return len(chunk_ids)

    def heal(self, timeout_s: float = 0.0) -> bool:
        """Bring every collection's saved vectors level with SQL (what a killed write left behind) and load them.

        False when another process holds the write lock past `timeout_s`: that writer heals what it touches.
        """
        try:
            with self.writing(timeout_s), self.session() as session:
                for cid in self._collection_ids():
                    self._index_for_write(session, cid)
        except StoreBusyError:
            return False
        return True

    # ---- consistency --------------------------------------------------------------------------

    def check(self, collection: str | None = None, sample: int = 0) -> list[ConsistencyReport]:
        """Verify each collection's saved vector file against the manifest and SQL.

        Compares chunk ids in SQL, FAISS and the keyword index, verifies the file's checksum, dimension and
        counts, and re-embeds up to `sample` random chunks to compare with their stored vectors.
        """
        reports = []
        names = [collection] if collection else self.collections()
        for name in names:
            with self.session() as session:
                cid = self._collection_id(session, name)
                sql_ids = np.array(list(session.scalars(_chunk_ids(cid))), dtype=np.int64)
                keyword_chunks = keyword.count(session, cid)
                try:
                    index, _ = self._load(cid)
                except StoreIntegrityError as exc:
                    reports.append(
                        ConsistencyReport(name, len(sql_ids), 0, (), (), keyword_chunks, file_error=str(exc))
                    )
                    continue
                vector_ids = index.ids()
                file_error = self._count_error(cid, index, vector_ids)
                sampled, mismatched = self._sample_vectors(session, index, np.intersect1d(sql_ids, vector_ids), sample)
            reports.append(
                ConsistencyReport(
                    collection=name,
                    sql_chunks=len(sql_ids),
                    vector_chunks=len(vector_ids),
                    missing_vectors=tuple(np.setdiff1d(sql_ids, vector_ids).tolist()),
                    orphan_vectors=tuple(np.setdiff1d(vector_ids, sql_ids).tolist()),
                    keyword_chunks=keyword_chunks,
                    file_error=file_error,
                    sampled_chunks=sampled,
                    mismatched_vectors=mismatched,
                )
            )
        return reports

    def _count_error(self, cid: int, index: FaissIndex, vector_ids: np.ndarray) -> str | None:
        record = self._record(cid)
        if record is not None and record.chunks != len(vector_ids):
            return f"{record.file}: holds {len(vector_ids)} chunks but the manifest recorded {record.chunks}"
        recorded = self._read_manifest()
        if recorded is not None and recorded.dimension != index.dimension:
            return f"manifest dimension {recorded.dimension} differs from the vector file's {index.dimension}"
        return None

    def _sample_vectors(
        self, session: Session, index: FaissIndex, ids: np.ndarray, sample: int
    ) -> tuple[int, tuple[int, ...]]:
        """Re-embed a random sample of chunks; those whose stored vectors are not their own text's."""
        if sample <= 0 or len(ids) == 0:
            return 0, ()
        chosen = np.random.default_rng().choice(ids, size=min(sample, len(ids)), replace=False)
        rows = session.execute(
            select(Chunk.id, Chunk.text, Document.title).join(Document).where(Chunk.id.in_(chosen.tolist()))
        ).all()
        counts, vectors = embed_chunks(self.embedder, [(text, title) for _, text, title in rows])
        stored = index.vectors_of([chunk_id for chunk_id, _, _ in rows])
        mismatched, offset = [], 0
        for (chunk_id, _, _), count, own in zip(rows, counts, stored, strict=True):
            fresh = index.as_stored(vectors[offset : offset + count])  # through the index's codes, if any
            offset += count
            if len(own) != count or float(_cosines(own, fresh).min()) < SAMPLE_MIN_COSINE:
                mismatched.append(int(chunk_id))
        return len(rows), tuple(sorted(mismatched))

    def repair(self, batch_size: int = 256, sample: int = 0) -> list[ConsistencyReport]:
        """Make every collection's vectors equal to SQL, then check again.

        A vector file that fails verification, or whose sampled vectors belong to other text, is rebuilt from SQL;
        otherwise missing chunks are embedded and orphan ids dropped.
        """
        with self.writing():
            for report in self.check(sample=sample):
                if report.consistent:
                    continue
                with self.session() as session:
                    cid = self._collection_id(session, report.collection)
                    generation = self._sql_generation(session, cid)
                    if report.file_error or report.mismatched_vectors:
                        problems = "; ".join(report.problems())
                        log.warning("rebuilding the vectors of %r from SQL: %s", report.collection, problems)
                        index = FaissIndex.create(self.embedder.dimension)  # exact; save() rebuilds it as it was
                        record = self._record(cid)
                        index.spec = replace(index.spec, requested=record.index.requested if record else None)
                    else:
                        index, _ = self._load(cid)
                    self._heal(session, cid, index, batch_size)
                self._install(cid, index, generation)
                self._dirty.add(cid)
            if self._dirty:
                self.save()
        return self.check(sample=sample)

    def rebuild_index(
        self,
        collection: str = DEFAULT_COLLECTION,
        factory: str | None = None,
        queries: Sequence[str] = (),
        progress: bool = True,
    ) -> IndexSpec:
        """Rebuild a collection's vector index from the vectors it holds, and save it.

        `factory` is a FAISS factory string (kept through later rebuilds), "auto" to choose by size again, or None
        to re-train the index as it is. `queries`, real questions users ask, calibrate an approximate index's recall
        (stand-ins do otherwise). ValueError when FAISS cannot build it or it could not remove vectors.
        """
        query_vectors = self.embedder.embed_queries(list(queries)) if queries else None
        with self.writing():
            with self.session() as session:
                cid = self._collection_id(session, collection)
                index = self._index_for_write(session, cid)
            requested = {None: index.spec.requested, "auto": None}.get(factory, factory)
            rebuilt = layouts.rebuild(index, requested, self.exact_max_vectors, progress, query_vectors)
            self._install(cid, rebuilt, self._generations[cid])
            self._dirty.add(cid)
            self.save()
            return rebuilt.spec

    @property
    def vectors_dir(self) -> Path:
        """The folder of the vector files (the manifest names the one each collection uses)."""
        return self.root / "vectors"

    def vector_files(self) -> dict[str, manifest.VectorFile]:
        """Each collection's saved vector file as the manifest records it: index type, parameters, recall, counts."""
        recorded = self._read_manifest()
        return dict(recorded.vector_files) if recorded else {}

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
            cid, generation = self._collection_state(session, collection)
            allowed = self._filtered_chunk_ids(session, cid, filters) if filters else None
        if allowed is not None and len(allowed) == 0:
            return [[] for _ in range(len(query_vectors))]
        with self._index_lock:  # a search must not run while a writer changes the same FAISS index
            scores, ids = self._index_for_read(cid, generation).search(query_vectors, k, allowed)
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
                metadata=json_safe(meta or {}),  # stores written before ingest cleaned metadata
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
        """Record an ingest run owned by this process, after marking the runs whose process is gone."""
        self.interrupt_stale_runs()
        with self.session() as session:
            run = IngestRun(collection=collection, summary={"owner": run_owner()})
            session.add(run)
            session.commit()
            return run.id

    def finish_run(self, run_id: int, status: str, summary: Mapping[str, Any]) -> None:
        with self.session() as session:
            run = session.get(IngestRun, run_id)
            if run is None:
                raise NotFoundError(f"no ingest run {run_id}")
            run.status, run.summary, run.finished_at = status, {**(run.summary or {}), **summary}, utcnow()
            session.commit()

    def interrupt_stale_runs(self) -> list[int]:
        """Mark "interrupted" the ingest runs left "running" by a process that is gone; returns their ids."""
        with self.session() as session:
            running = session.scalars(select(IngestRun).where(IngestRun.status == "running").with_for_update())
            stale = [run for run in running if owner_gone((run.summary or {}).get("owner"))]
            for run in stale:
                run.status = "interrupted"
            session.commit()
            return [run.id for run in stale]


def embed_chunks(embedder: Embedder, chunks: Sequence[tuple[str, str]]) -> Embedded:
    """Embed (chunk text, document title) pairs as `vector_texts`; returns vectors per chunk and all vectors.

    The store's one rule for a chunk's vectors, also run where vectors are computed away from the store.
    """
    texts = [vector_texts(text, title) for text, title in chunks]
    counts = np.array([len(t) for t in texts], dtype=np.int64)
    if not texts:
        return counts, np.zeros((0, embedder.dimension), dtype=np.float32)
    return counts, embedder.embed_documents([t for group in texts for t in group])


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine; decoded vectors (PQ, say) are not unit length."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def _chunk_ids(cid: int) -> Any:
    return select(Chunk.id).join(Document).where(Document.collection_id == cid)


def _select_documents(
    docs: Sequence[DocumentIn], counts: np.ndarray, vectors: np.ndarray, keep: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """The vector counts and vectors of the kept documents, out of those embedded for all of `docs`."""
    if list(keep) == list(range(len(docs))):
        return counts, vectors
    if not keep:
        return counts[:0], vectors[:0]
    chunk_bounds = np.r_[0, np.cumsum([len(d.chunks) for d in docs])]
    vector_bounds = np.r_[0, np.cumsum(counts)][chunk_bounds]
    return (
        np.concatenate([counts[chunk_bounds[i] : chunk_bounds[i + 1]] for i in keep]),
        np.concatenate([vectors[vector_bounds[i] : vector_bounds[i + 1]] for i in keep]),
    )


def _last_of_each_source(docs: Sequence[DocumentIn]) -> list[int]:
    """Positions of the documents to write: the last one wins when a batch names the same source twice."""
    return list({d.source: i for i, d in enumerate(docs)}.values())


def _document_row(cid: int, doc: DocumentIn) -> dict[str, Any]:
    return {
        "collection_id": cid,
        "source": doc.source,
        "title": doc.title,
        "content_hash": doc.content_hash,
        "text": doc.text,
        "metadata_": json_safe(dict(doc.metadata)),
    }


# Bulk inserts: one DBAPI executemany per table and no ORM objects, about twice the rows/s of `add_all` and a flush
# (which inserts and reads back one row at a time). Ids are read back by key (a document's source, a new document's
# chunks), not taken from RETURNING, whose row order SQLite leaves open.


def _insert_documents(session: Session, cid: int, docs: Sequence[DocumentIn]) -> list[int]:
    """Insert the documents (their sources are new to the collection); their ids, in the order given."""
    session.execute(insert(Document), [_document_row(cid, d) for d in docs])
    sources = [d.source for d in docs]
    ids = dict(
        session.execute(
            select(Document.source, Document.id).where(Document.collection_id == cid, Document.source.in_(sources))
        ).all()
    )
    return [ids[source] for source in sources]


def _insert_chunks(session: Session, docs: Sequence[DocumentIn], doc_ids: Sequence[int]) -> np.ndarray:
    """Insert the chunks of just-inserted documents; their ids in insertion order, which is ascending id order.

    Rows are inserted one after another in document then chunk order, and AUTOINCREMENT (a sequence on
    PostgreSQL) hands each a larger id than any before; ids are never reused, so these documents own no others.
    """
    rows = [
        {"document_id": doc_id, "ordinal": c.ordinal, "start_char": c.start, "end_char": c.end, "text": c.text}
        for doc_id, doc in zip(doc_ids, docs, strict=True)
        for c in doc.chunks
    ]
    if rows:
        session.execute(insert(Chunk), rows)
    ids = session.scalars(select(Chunk.id).where(Chunk.document_id.in_(doc_ids)).order_by(Chunk.id))
    return np.array(list(ids), dtype=np.int64)
