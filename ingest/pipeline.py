"""Files -> SourceDocs -> chunks -> the store, in batches; one bad file is reported and skipped, never fatal."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sqlalchemy.exc import OperationalError
from tqdm import tqdm

from index import DEFAULT_COLLECTION, AddResult, ChunkIn, DocumentIn, Store, StoreError
from index.store import Embedded
from ingest.chunking import TokenChunker
from ingest.errors import LoadError
from ingest.loaders import LoaderOptions, load_file
from ingest.types import Chunker, SourceDoc
from ingest.walk import PassedOver, iter_files

log = logging.getLogger(__name__)

# Errors that mean the store itself is unusable (not one document's data): they end the ingest.
_STORE_FAILURES = (StoreError, OSError, OperationalError)


@dataclass(frozen=True)
class FileError:
    path: str
    reason: str


@dataclass
class IngestReport:
    """What a run did. `files` counts the files it read; `errors` (with `skipped`) the files and documents that
    failed; `passed_over` the files and folders a folder walk did not read (no loader for the type, hidden,
    excluded), which are not failures."""

    files: int = 0
    documents: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    chunks: int = 0
    skipped: int = 0
    errors: list[FileError] = field(default_factory=list)
    passed_over: list[PassedOver] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """False only when nothing could be ingested: every file failed."""
        return self.documents > 0 or not self.errors

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def passed_over_summary(self) -> str:
        """How many entries were passed over and why, most frequent first, e.g.
        `3 (unsupported type: .exe 2, .bin 1; hidden 1)`; `0` when none was."""
        if not self.passed_over:
            return "0"
        groups: dict[str, Counter[str]] = {}
        for entry in self.passed_over:
            kind, _, detail = entry.kind.partition(": ")
            groups.setdefault(kind, Counter())[detail] += 1
        parts = []
        for kind, details in sorted(groups.items(), key=lambda item: (-item[1].total(), item[0])):
            counts = sorted(details.items(), key=lambda item: (-item[1], item[0]))
            if list(details) == [""]:
                parts.append(f"{kind} {details['']}")
            else:
                parts.append(f"{kind}: " + ", ".join(f"{detail} {count}" for detail, count in counts))
        return f"{len(self.passed_over)} ({'; '.join(parts)})"


def to_document(doc: SourceDoc, chunker: Chunker) -> DocumentIn:
    """`doc` chunked, with JSON-safe metadata; LoadError with a one-line reason when the chunker fails on it."""
    try:
        spans = chunker.split(doc.text)
    except Exception as exc:  # noqa: BLE001 - chunkers are user code; one document must not abort the batch
        raise LoadError(f"cannot split into chunks: {_one_line(exc)}") from exc
    return DocumentIn(
        source=doc.source,
        text=doc.text,
        content_hash=doc.content_hash,
        title=doc.title,
        metadata=dict(doc.metadata),
        chunks=[ChunkIn(s.ordinal, s.start, s.end, s.text) for s in spans],
    )


def iter_documents(path: Path, options: LoaderOptions | None, chunker: Chunker) -> Iterator[DocumentIn | FileError]:
    """One file's documents, chunked, in order; a FileError in place of the file or of a document it cannot use."""
    try:
        docs = load_file(path, options)
    except LoadError as exc:
        yield FileError(str(path), str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - a parser bug on one file must not abort the batch
        yield FileError(str(path), f"{type(exc).__name__}: {exc}")
        return
    for doc in docs:
        try:
            document = to_document(doc, chunker)
        except LoadError as exc:
            yield FileError(doc.source, str(exc))
            continue
        yield document if document.chunks else FileError(doc.source, "no text")


class _Batcher:
    """Collects documents until about `limit` chunks are pending, then writes them in one `Store.add`.

    A document may come with its vectors (`Store.embed` computed elsewhere); then every pending one does.
    """

    def __init__(
        self,
        store: Store,
        collection: str,
        report: IngestReport,
        limit: int,
        save_every_s: float,
        on_error: Callable[[FileError], None] | None = None,
    ) -> None:
        self.store, self.collection, self.report, self.limit = store, collection, report, limit
        self.save_every_s, self.on_error = save_every_s, on_error
        self.pending: list[DocumentIn] = []
        self.pending_vectors: list[Embedded | None] = []
        self.pending_chunks = 0
        self.last_save = time.monotonic()

    def take(self, item: DocumentIn | FileError, embedded: Embedded | None = None) -> None:
        """A document goes to the next batch (counted); a FileError to the report."""
        if isinstance(item, FileError):
            _record(self.report, item, self.on_error)
            return
        self.report.documents += 1
        self.push(item, embedded)

    def push(self, doc: DocumentIn, embedded: Embedded | None = None) -> None:
        self.pending.append(doc)
        self.pending_vectors.append(embedded)
        self.pending_chunks += len(doc.chunks)
        if self.pending_chunks >= self.limit:
            self.flush()

    def flush(self, final: bool = False) -> None:
        if self.pending:
            batch, vectors = self.pending, self.pending_vectors
            self.pending, self.pending_vectors, self.pending_chunks = [], [], 0
            try:
                self._count(self.store.add(batch, self.collection, save=False, embedded=_joined(vectors)))
            except _STORE_FAILURES:
                raise
            except Exception:  # noqa: BLE001 - one document's data: store the others, report that one
                self._add_one_by_one(batch, vectors)
        if final or time.monotonic() - self.last_save >= self.save_every_s:
            self.store.save()
            self.last_save = time.monotonic()

    def _add_one_by_one(self, batch: list[DocumentIn], vectors: list[Embedded | None]) -> None:
        """After a batch failed on its data: each document alone, so only the one at fault is skipped."""
        for doc, embedded in zip(batch, vectors, strict=True):
            try:
                self._count(self.store.add([doc], self.collection, save=False, embedded=embedded))
            except _STORE_FAILURES:
                raise
            except Exception as exc:  # noqa: BLE001 - the document the batch failed on
                self.report.documents -= 1
                _record(self.report, FileError(doc.source, f"the store rejected it: {_one_line(exc)}"), self.on_error)

    def _count(self, result: AddResult) -> None:
        self.report.added += result.added
        self.report.replaced += result.replaced
        self.report.unchanged += result.unchanged
        self.report.chunks += result.chunks


class ActiveRun(NamedTuple):
    """What an engine works through (`files`, in order) and where its documents and errors go (`sink.take`)."""

    files: list[Path]
    sink: _Batcher
    report: IngestReport


@contextmanager
def ingest_run(
    store: Store,
    paths: Sequence[str | Path],
    collection: str,
    include: Sequence[str],
    exclude: Sequence[str],
    batch_chunks: int,
    save_every_s: float,
    on_error: Callable[[FileError], None] | None,
    started: float,
) -> Iterator[ActiveRun]:
    """One recorded ingest run, shared by every engine: call inside `store.writing()`.

    Lists the files (a path that cannot be read is reported), writes the last batch and saves when the body ends,
    and records the run as finished, or failed when anything raised; `started` is `time.perf_counter()` at its start.
    """
    report = IngestReport()
    run_id = store.start_run(collection)
    sink = _Batcher(store, collection, report, batch_chunks, save_every_s, on_error)
    status = "failed"

    def skipped(path: Path, reason: str) -> None:  # a folder that cannot be listed, a pipe, a device
        report.files += 1
        _record(report, FileError(str(path), reason), on_error)

    def passed_over(entry: PassedOver) -> None:  # not read, and not an error: no loader for it, hidden, excluded
        report.passed_over.append(entry)
        log.info("passed over %s: %s", entry.path, entry.reason)

    try:
        files = list(iter_files([Path(p) for p in paths], include, exclude, skipped, passed_over))
        yield ActiveRun(files, sink, report)
        sink.flush(final=True)
        status = "finished"
    finally:
        report.seconds = round(time.perf_counter() - started, 3)
        store.finish_run(run_id, status, report.as_dict())


def ingest_paths(
    store: Store,
    paths: Sequence[str | Path],
    collection: str = DEFAULT_COLLECTION,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    chunker: Chunker | None = None,
    options: LoaderOptions | None = None,
    batch_chunks: int = 512,
    save_every_s: float = 30.0,
    progress: bool = True,
    on_error: Callable[[FileError], None] | None = None,
) -> IngestReport:
    """Ingest files and folders into a collection; re-running after a crash finishes the job without duplicates."""
    with store.writing():  # one writer for the whole run; its first write heals what an interrupted run left
        started = time.perf_counter()
        chunker = chunker or default_chunker(store)
        with ingest_run(
            store, paths, collection, include, exclude, batch_chunks, save_every_s, on_error, started
        ) as run:
            for path in tqdm(run.files, desc="ingest", unit="file", disable=not progress):
                run.report.files += 1
                for item in iter_documents(path, options, chunker):
                    run.sink.take(item)
        return run.report


def default_chunker(store: Store, chunk_tokens: int | None = None, overlap_tokens: int = 32) -> TokenChunker:
    """A chunker sized to what the store's embedder reads (its window less its two special tokens)."""
    embedder = store.embedder
    limit = int(getattr(embedder, "max_tokens", 256)) - 2
    return TokenChunker(embedder.tokenizer, min(chunk_tokens or limit, limit), overlap_tokens)  # type: ignore[attr-defined]


def _one_line(exc: BaseException) -> str:
    """An exception as one line of a report: its type, then its message with whitespace collapsed."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _joined(parts: Sequence[Embedded | None]) -> Embedded | None:
    """The vectors of a batch from its documents' own, or None when any document came without them."""
    present = [part for part in parts if part is not None]
    if not present or len(present) < len(parts):
        return None
    return np.concatenate([counts for counts, _ in present]), np.concatenate([vectors for _, vectors in present])


def _record(report: IngestReport, error: FileError, on_error: Callable[[FileError], None] | None) -> None:
    report.skipped += 1
    report.errors.append(error)
    if on_error is None:
        log.warning("skipped %s: %s", error.path, error.reason)
    else:
        on_error(error)
