"""Ingestion on Ray: Ray tasks load and chunk, Ray actors embed, and this process alone writes the store.

    from_items(files) -> map_batches(load and chunk: tasks) -> map_batches(embed: actors) -> Store.add(embedded=)

The files are the ones `ingest_paths` would read, in the same order, and Ray Data keeps that order, so the
driver feeds the same documents and errors to the same batches as a local ingest: same ids, same report. Each
actor loads the store's embedder once and computes what `Store.embed` would (`index.store.embed_chunks`). The
driver holds the store's write lock for the run and writes every batch through `Store.add(..., embedded=)`;
nothing is written anywhere else, so a worker that dies only costs its batch being computed again. A document
the collection already holds with the same content is not embedded (the local engine does not embed it either).

Documents cross between stages as plain Arrow columns (metadata as a JSON string), never pickled into files.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from sqlalchemy import select
from tqdm import tqdm

from index import DEFAULT_COLLECTION, ChunkIn, DocumentIn, SentenceTransformerEmbedder, Store
from index.models import Collection, Document
from index.store import Embedded, embed_chunks
from ingest.errors import IngestError
from ingest.loaders import LoaderOptions
from ingest.pipeline import ActiveRun, FileError, IngestReport, default_chunker, ingest_run, iter_documents
from ingest.types import Chunker

if TYPE_CHECKING:
    import pyarrow as pa
    from ray.data import Dataset

INSTALL_HINT = "the ray engine needs `pip install -e '.[ray]'`"
# Fault injection for crash tests: when this variable names a file that exists, the embedding worker whose batch
# holds the document whose source the file names (any batch when the file is empty) deletes the file and exits
# at once, as a killed worker would. Only the worker that deletes the file exits, so it happens once.
CRASH_MARKER_ENV = "RAG_RAY_CRASH_MARKER"

LOAD_TASK_CPUS = 0.5  # what one load-and-chunk task reserves
LOAD_ROWS = 64  # documents a load task hands on at a time
BLOCK_BYTES = 256 * 1024  # small blocks, so the documents of one big file spread over every embedding actor
BATCH_DOCS_CPU, BATCH_DOCS_GPU = 32, 256  # documents per embedding call: ~200 texts on a CPU, ~1,500 on a GPU


@dataclass(frozen=True)
class RayOptions:
    """Where the pipeline runs and how wide. None means: decided from the cluster's resources.

    `address` is a cluster this machine can join as a driver (`head:6379`, or `auto` on a node of it); None
    starts a local runtime. Ray Client addresses (`ray://`) are refused: Ray Data does not run over Ray Client.
    """

    address: str | None = None
    num_cpus: int | None = None  # CPUs of the local runtime (default: this machine's)
    embed_actors: int | None = None  # default: one per GPU; without GPUs, one per CPU left after loading
    batch_docs: int | None = None  # documents per embedding call

    def __post_init__(self) -> None:
        if self.address is not None and self.address.startswith("ray://"):
            raise IngestError(
                f"address {self.address!r}: Ray Data does not run over Ray Client (ray://); run the ingest on a "
                "node of the cluster (`ray start --address HEAD:6379`, then --address auto) or submit it with "
                "`ray job submit`"
            )
        for name in ("num_cpus", "embed_actors", "batch_docs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise IngestError(f"{name} must be at least 1, got {value}")


@dataclass(frozen=True)
class EmbedSpec:
    """What a worker needs to build the store's embedder."""

    name: str
    batch_size: int
    precision: str


class _Sizing(NamedTuple):
    actors: int
    actor_cpus: float
    actor_gpus: int
    batch_docs: int


def ingest_paths_ray(
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
    cluster: RayOptions | None = None,
) -> IngestReport:
    """`ingest_paths` with loading, chunking and embedding on Ray; the same files, documents, ids and report."""
    ray = import_ray()
    cluster = cluster or RayOptions()
    spec = embed_spec(store.embedder)
    with _runtime(ray, cluster), _data_context(ray), store.writing():
        started = time.perf_counter()
        chunker = chunker or default_chunker(store)
        with ingest_run(
            store, paths, collection, include, exclude, batch_chunks, save_every_s, on_error, started
        ) as run:
            if run.files:
                stored = _stored(store, collection)
                dataset = _plan(ray, run.files, options, chunker, stored, spec, _sizing(ray, cluster))
                _drain(dataset, run, store, progress)
        return run.report


def import_ray() -> ModuleType:
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data and pyarrow come with the [ray] extra
    except ImportError as exc:
        raise IngestError(INSTALL_HINT) from exc
    return ray


def embed_spec(embedder: object) -> EmbedSpec:
    if not isinstance(embedder, SentenceTransformerEmbedder):
        raise IngestError(
            f"the ray engine builds sentence-transformers embedders on its workers; this store's embedder is a "
            f"{type(embedder).__name__}: use the local engine"
        )
    return EmbedSpec(embedder.name, embedder.batch_size, embedder.precision)


@contextmanager
def _runtime(ray: ModuleType, cluster: RayOptions) -> Iterator[None]:
    """Ray as the caller has it, else a local runtime or the cluster at `address`, shut down afterwards."""
    if ray.is_initialized():
        yield
        return
    if cluster.address:
        ray.init(address=cluster.address)
    else:
        cpus = cluster.num_cpus or os.cpu_count() or 1
        # address "local": a new runtime even where `ray start` left one running on this machine
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def _data_context(ray: ModuleType) -> Iterator[None]:
    """Ray Data settings for the datasets built inside (each copies them when made); the old ones come back after."""
    context = ray.data.DataContext.get_current()
    saved = (context.execution_options.preserve_order, context.target_max_block_size, context.enable_progress_bars)
    context.execution_options.preserve_order = True  # the driver writes in the local engine's order
    context.target_max_block_size = BLOCK_BYTES
    context.enable_progress_bars = False  # one bar, ours, like the local engine's
    try:
        yield
    finally:
        context.execution_options.preserve_order, context.target_max_block_size, context.enable_progress_bars = saved


def _sizing(ray: ModuleType, cluster: RayOptions) -> _Sizing:
    """Embedding actors and their share: CPUs for loading first, then one actor per GPU, or per CPU without GPUs."""
    resources = ray.cluster_resources()
    cpus, gpus = float(resources.get("CPU", 1.0)), int(resources.get("GPU", 0))
    free = max(cpus - max(LOAD_TASK_CPUS, cpus / 8), LOAD_TASK_CPUS)  # an eighth of the CPUs stays for loading
    actors = cluster.embed_actors or (gpus if gpus else max(1, math.ceil(free)))
    batch = cluster.batch_docs or (BATCH_DOCS_GPU if gpus else BATCH_DOCS_CPU)
    return _Sizing(actors, min(1.0, free / actors), 1 if gpus else 0, batch)


def _stored(store: Store, collection: str) -> dict[str, str]:
    """Source -> content hash of the collection's documents: the ones the workers need not embed."""
    with store.session() as session:
        query = select(Document.source, Document.content_hash).join(Collection).where(Collection.name == collection)
        return {source: content_hash for source, content_hash in session.execute(query)}


def _plan(
    ray: ModuleType,
    files: list[Path],
    options: LoaderOptions | None,
    chunker: Chunker,
    stored: dict[str, str],
    spec: EmbedSpec,
    sizing: _Sizing,
) -> Dataset:
    items = [{"file": i, "path": os.fsencode(path)} for i, path in enumerate(files)]
    loaded = ray.data.from_items(items).map_batches(
        load_batch,
        batch_size=1,
        batch_format="pyarrow",
        fn_kwargs={"options": options, "chunker": chunker, "stored": stored},
        num_cpus=LOAD_TASK_CPUS,
    )
    return loaded.map_batches(
        EmbedWorker,
        batch_size=sizing.batch_docs,
        batch_format="pyarrow",
        fn_constructor_kwargs={"spec": spec},
        compute=ray.data.ActorPoolStrategy(size=sizing.actors),
        num_cpus=sizing.actor_cpus,
        num_gpus=sizing.actor_gpus,
    )


def _drain(dataset: Dataset, run: ActiveRun, store: Store, progress: bool) -> None:
    """The pipeline's rows, in order, into the run's batches; a file counts once its first row arrives.

    A document sent without vectors was stored unchanged when the run began; it still is unless this run wrote
    its source already (a source twice in the input), and only then is it embedded here.
    """
    counted, seen = 0, set()
    with tqdm(total=len(run.files), desc="ingest", unit="file", disable=not progress) as bar:
        for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            for file, item, embedded in _decode(table, run.files, store.embedder.dimension):
                while counted <= file:
                    run.report.files += 1
                    counted += 1
                    bar.update()
                if isinstance(item, DocumentIn) and embedded is not None:
                    if item.source in seen and not len(embedded[1]):
                        embedded = store.embed([item])
                    seen.add(item.source)
                run.sink.take(item, embedded)
        run.report.files += len(run.files) - counted
        bar.update(len(run.files) - counted)


# ---- the workers --------------------------------------------------------------------------------------------


def load_batch(
    batch: pa.Table, options: LoaderOptions | None, chunker: Chunker, stored: dict[str, str]
) -> Iterator[pa.Table]:
    """Load-and-chunk task: each file's documents and errors, in order, a table every LOAD_ROWS of them."""
    for file, raw in zip(batch.column("file").to_pylist(), batch.column("path").to_pylist(), strict=True):
        path = Path(os.fsdecode(raw))
        items: list[DocumentIn | FileError] = []
        for item in iter_documents(path, options, chunker):
            items.append(item)
            if len(items) == LOAD_ROWS:  # the documents of a big file start on to the embedders early
                yield _encode(file, str(path), items, stored)
                items = []
        if items:
            yield _encode(file, str(path), items, stored)


class EmbedWorker:
    """Embedding actor: holds the store's embedder (loaded at its first text) and adds the vectors to each row."""

    def __init__(self, spec: EmbedSpec) -> None:
        self.embedder = SentenceTransformerEmbedder(spec.name, spec.batch_size, precision=spec.precision)

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        _crash_if_marked(batch)
        texts = batch.column("chunk_text").to_pylist()
        wanted = [not stored for stored in batch.column("stored").to_pylist()]
        pairs = [
            (text, title)
            for title, chunk_texts, embed in zip(batch.column("title").to_pylist(), texts, wanted, strict=True)
            if embed
            for text in chunk_texts
        ]
        per_row = np.array([len(t) for t in texts], dtype=np.int64)
        counts = np.zeros(int(per_row.sum()), dtype=np.int64)  # a stored document's chunks: no vectors
        flat, dimension = np.zeros(0, dtype=np.float32), 0
        if pairs:
            embedded, vectors = embed_chunks(self.embedder, pairs)
            counts[np.repeat(np.array(wanted, dtype=bool), per_row)] = embedded
            flat, dimension = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), vectors.shape[1]
        row_chunks = np.concatenate([[0], np.cumsum(per_row)])
        row_floats = np.concatenate([[0], np.cumsum(counts)])[row_chunks] * dimension
        count_col = pa.ListArray.from_arrays(pa.array(row_chunks, pa.int32()), pa.array(counts, pa.int64()))
        vector_col = pa.LargeListArray.from_arrays(pa.array(row_floats, pa.int64()), pa.array(flat, pa.float32()))
        return batch.append_column("counts", count_col).append_column("vectors", vector_col)


def _crash_if_marked(batch: pa.Table) -> None:
    marker = os.environ.get(CRASH_MARKER_ENV)
    if not marker:
        return
    try:
        wanted = Path(marker).read_text().strip()
        if wanted and wanted not in batch.column("source").to_pylist():
            return
        os.remove(marker)
    except FileNotFoundError:
        return
    os._exit(1)


# ---- rows as columns ----------------------------------------------------------------------------------------


def _schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("file", pa.int64()),
            ("source", pa.string()),  # a document's source; null for an error row
            ("error_path", pa.binary()),  # an error row's path; null when it is its file's own path
            ("error", pa.binary()),  # an error row's reason (binary: a path in it may hold undecodable bytes)
            ("text", pa.large_string()),
            ("title", pa.string()),
            ("content_hash", pa.string()),
            ("metadata", pa.string()),  # JSON
            ("chunk_ordinal", pa.list_(pa.int64())),
            ("chunk_start", pa.list_(pa.int64())),
            ("chunk_end", pa.list_(pa.int64())),
            ("chunk_text", pa.list_(pa.large_string())),
            ("stored", pa.bool_()),  # the collection holds this source with this content: not embedded
        ]
    )


def _encode(file: int, path: str, items: list[DocumentIn | FileError], stored: dict[str, str]) -> pa.Table:
    import pyarrow as pa

    rows: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, FileError):
            own = item.path == path
            rows.append(
                {"file": file, "error_path": None if own else _raw(item.path), "error": _raw(item.reason)}
                | {"chunk_ordinal": [], "chunk_start": [], "chunk_end": [], "chunk_text": []}
            )
            continue
        rows.append(
            {
                "file": file,
                "source": item.source,
                "text": item.text,
                "title": item.title,
                "content_hash": item.content_hash,
                "metadata": json.dumps(dict(item.metadata), allow_nan=False),
                "chunk_ordinal": [c.ordinal for c in item.chunks],
                "chunk_start": [c.start for c in item.chunks],
                "chunk_end": [c.end for c in item.chunks],
                "chunk_text": [c.text for c in item.chunks],
                "stored": stored.get(item.source) == item.content_hash,
            }
        )
    return pa.Table.from_pylist(rows, schema=_schema())


def _decode(
    table: pa.Table, files: list[Path], dimension: int
) -> Iterator[tuple[int, DocumentIn | FileError, Embedded | None]]:
    """Each row as (file index, document or error, the document's vectors)."""
    import pyarrow.compute as pc

    vectors = pc.list_flatten(table.column("vectors")).to_numpy()
    counts = pc.list_flatten(table.column("counts")).to_numpy().astype(np.int64)
    if vectors.size != int(counts.sum()) * dimension:
        raise IngestError(f"the workers' vectors do not have the store's dimension {dimension}")
    vectors = vectors.reshape(-1, dimension)
    chunk_at = vector_at = 0
    for row in table.drop_columns(["vectors", "counts"]).to_pylist():
        file = row["file"]
        if row["error"] is not None:
            path = str(files[file]) if row["error_path"] is None else _text(row["error_path"])
            yield file, FileError(path, _text(row["error"])), None
            continue
        chunks = [
            ChunkIn(*fields)
            for fields in zip(
                row["chunk_ordinal"], row["chunk_start"], row["chunk_end"], row["chunk_text"], strict=True
            )
        ]
        own_counts = counts[chunk_at : chunk_at + len(chunks)]
        own_vectors = vectors[vector_at : vector_at + int(own_counts.sum())]
        chunk_at, vector_at = chunk_at + len(chunks), vector_at + len(own_vectors)
        document = DocumentIn(
            source=row["source"],
            text=row["text"],
            content_hash=row["content_hash"],
            chunks=chunks,
            title=row["title"],
            metadata=json.loads(row["metadata"]),
        )
        yield file, document, (own_counts, own_vectors)


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogatepass")
