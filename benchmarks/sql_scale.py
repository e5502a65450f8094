"""SQL at scale: a store of N chunks (default 1,000,000) of real SQuAD text; ingest rate, size, query latency.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/sql_scale.py [--chunks N] [--database-url URL] [--out PATH]

Text: every distinct SQuAD context of `dev-v1.1.json` and `train-v2.0-first10.json` (2,761 paragraphs of 58
articles; the v2.0 dev contexts are a subset of v1.1's) is one chunk. An article's paragraphs are grouped, in
order, into documents of up to 10 chunks (`squad/<article>/<group>`); copy k of such a document has the source
`squad/<article>/<group>#copy<k>` and its text ends with the line `(copy k)`, which no chunk holds: content hashes
differ, while every chunk's text stays a real paragraph. Copies are written round after round until N chunks
(the last document may be cut short). Each text repeats about N/2,761 times, so a keyword query matches as many
chunks as it would among N chunks of such text, with many ties.

Vectors: one per chunk (vector counts all 1), so the benchmark is about SQL. Each distinct paragraph is embedded
once with the store's embedder; a chunk's vector is its paragraph's plus Gaussian noise (sigma 0.01 per
dimension, cosine ~0.98 to the original), renormalised. Dense search is not measured.

Measured: `Store.add` in batches of whole documents of about 512 chunks (as the ingest pipeline batches), all in
one `store.writing()`: chunks/s and documents/s over the add calls alone (making the inputs is not counted) and
per tenth of the run; the vector file save at the end (FAISS, which may first rebuild the index for its size),
apart; the database's size on disk; latency of `Store.keyword_search` (200 SQuAD v1.1 dev questions, k=10),
`Store.passages` (10 random chunk ids) and `Store._filtered_chunk_ids` with a `source` filter (200 each), after
two warm-up calls; a kind stops early past `--budget-s` seconds, and `n` says how many calls were timed.
With `--database-url` (PostgreSQL) the run creates the database `--scratch-database` (default `ragscale`) on
that server and drops it afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from index import Store, keyword
from index.types import ChunkIn, DocumentIn

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "squad"
SOURCES = ("dev-v1.1.json", "train-v2.0-first10.json")
CHUNKS_PER_DOCUMENT = 10
NOISE = 0.01  # per-dimension sigma of the perturbation added to a paragraph's vector
SEED = 0


class Template(NamedTuple):
    """One document before copying: its source stem, title and the paragraph numbers it is made of."""

    source: str
    title: str
    paragraphs: list[int]


class Corpus(NamedTuple):
    paragraphs: list[str]
    templates: list[Template]


def load_corpus(data: Path) -> Corpus:
    paragraphs: list[str] = []
    seen: dict[str, int] = {}
    templates = []
    for name in SOURCES:
        for article in json.loads((data / name).read_text(encoding="utf-8"))["data"]:
            numbers = []
            for paragraph in article["paragraphs"]:
                context = paragraph["context"].strip()
                if context not in seen:
                    seen[context] = len(paragraphs)
                    paragraphs.append(context)
                    numbers.append(seen[context])
            for group, start in enumerate(range(0, len(numbers), CHUNKS_PER_DOCUMENT)):
                title = article["title"].replace("_", " ")
                source = f"squad/{article['title']}/{group}"
                templates.append(Template(source, title, numbers[start : start + CHUNKS_PER_DOCUMENT]))
    return Corpus(paragraphs, templates)


def load_questions(data: Path, count: int) -> list[str]:
    dev = json.loads((data / SOURCES[0]).read_text(encoding="utf-8"))["data"]
    questions = [qa["question"] for article in dev for p in article["paragraphs"] for qa in p["qas"]]
    return random.Random(SEED).sample(questions, count)


def document(corpus: Corpus, template: Template, copy: int, paragraphs: list[int]) -> DocumentIn:
    chunks, parts, offset = [], [], 0
    for ordinal, number in enumerate(paragraphs):
        body = corpus.paragraphs[number]
        chunks.append(ChunkIn(ordinal, offset, offset + len(body), body))
        parts.append(body)
        offset += len(body) + 2
    doc_text = "\n\n".join([*parts, f"(copy {copy})"])
    return DocumentIn(
        source=f"{template.source}#copy{copy}",
        text=doc_text,
        content_hash=hashlib.sha256(doc_text.encode("utf-8")).hexdigest(),
        chunks=chunks,
        title=template.title,
        metadata={"article": template.title, "copy": copy},
    )


def batches(
    corpus: Corpus, base: np.ndarray, total: int, batch_chunks: int
) -> Iterator[tuple[list[DocumentIn], np.ndarray]]:
    """Batches of whole documents of about `batch_chunks` chunks, with one vector per chunk, until `total`."""
    rng = np.random.default_rng(SEED)
    docs: list[DocumentIn] = []
    numbers: list[int] = []
    made, copy = 0, 0
    while made < total:
        for template in corpus.templates:
            take = template.paragraphs[: total - made]
            docs.append(document(corpus, template, copy, take))
            numbers.extend(take)
            made += len(take)
            if len(numbers) >= batch_chunks or made >= total:
                vectors = base[numbers] + rng.normal(0.0, NOISE, (len(numbers), base.shape[1])).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                yield docs, vectors
                docs, numbers = [], []
            if made >= total:
                return
        copy += 1


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "n": len(ms)}


def timed(calls: list[Callable[[], Any]], budget_s: float, warmup: int = 2) -> dict[str, float]:
    """Latency of each call after a few warm-up calls; stops early (n says how many ran) past `budget_s`."""
    for call in calls[:warmup]:
        call()
    seconds: list[float] = []
    for call in calls:
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
        if sum(seconds) > budget_s:
            break
    return percentiles(seconds)


def ingest(store: Store, corpus: Corpus, base: np.ndarray, total: int, batch_chunks: int) -> dict[str, Any]:
    add_s, chunks, documents, marks = 0.0, 0, 0, []
    started = time.perf_counter()
    with store.writing():
        for docs, vectors in batches(corpus, base, total, batch_chunks):
            begun = time.perf_counter()
            result = store.add(docs, save=False, embedded=(np.ones(len(vectors), dtype=np.int64), vectors))
            add_s += time.perf_counter() - begun
            chunks, documents = chunks + result.chunks, documents + result.added
            if chunks * 10 // total > len(marks):
                marks.append({"chunks": chunks, "add_s": round(add_s, 2)})
                print(f"  {chunks:>9,} chunks  {chunks / add_s:8.0f} chunks/s so far", file=sys.stderr, flush=True)
        loop_s = time.perf_counter() - started
    save_s = time.perf_counter() - started - loop_s
    tenths, previous = [], {"chunks": 0, "add_s": 0.0}
    for mark in marks:
        rate = (mark["chunks"] - previous["chunks"]) / max(mark["add_s"] - previous["add_s"], 1e-9)
        tenths.append({"up_to_chunks": mark["chunks"], "chunks_per_s": round(rate)})
        previous = mark
    return {
        "chunks": chunks,
        "documents": documents,
        "add_s": add_s,
        "loop_s": loop_s,
        "vector_save_s": save_s,
        "chunks_per_s": chunks / add_s,
        "documents_per_s": documents / add_s,
        "by_tenth": tenths,
    }


def database_size(store: Store) -> dict[str, int]:
    """Bytes on disk: the whole database, and the keyword index's share of it."""
    with store.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            files = [store.root / name for name in ("store.db", "store.db-wal", "store.db-shm")]
            keyword_sql = "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'chunks_fts%'"
            return {
                "total_bytes": sum(path.stat().st_size for path in files if path.exists()),
                "keyword_index_bytes": int(connection.exec_driver_sql(keyword_sql).scalar() or 0),
            }
        total_sql = "SELECT pg_database_size(current_database())"
        # The GIN index and the stored tsvectors it indexes.
        keyword_sql = "SELECT pg_relation_size('ix_chunks_tsv_all') + (SELECT sum(pg_column_size(tsv)) FROM chunks)"
        return {
            "total_bytes": int(connection.exec_driver_sql(total_sql).scalar()),
            "keyword_index_bytes": int(connection.exec_driver_sql(keyword_sql).scalar()),
        }


def queries(store: Store, questions: list[str], trials: int, budget_s: float) -> dict[str, Any]:
    rng = random.Random(SEED)
    with store.session() as session:
        low, high = session.execute(text("SELECT min(id), max(id) FROM chunks")).one()
        sources = [row[0] for row in session.execute(text("SELECT source FROM documents ORDER BY id")).all()]
        cid = store._collection_id(session, "default")
    id_sets = [[(rng.randint(low, high), 0.0) for _ in range(10)] for _ in range(trials)]
    picked = [rng.choice(sources) for _ in range(trials)]

    def filtered(source: str) -> Callable[[], Any]:
        def run() -> Any:
            with store.session() as session:
                return store._filtered_chunk_ids(session, cid, {"source": source})

        return run

    print("timing lookups and keyword queries", file=sys.stderr, flush=True)
    return {
        "passages_10_ids": timed([lambda ids=ids: store.passages(ids) for ids in id_sets], budget_s),
        "source_filter": timed([filtered(source) for source in picked], budget_s),
        "keyword_search": timed([lambda q=q: store.keyword_search(q, 10) for q in questions], budget_s),
    }


@contextmanager
def scratch_database(url: str | None, name: str) -> Iterator[str | None]:
    """A fresh PostgreSQL database on the server `url` points at, dropped afterwards; nothing for SQLite."""
    if url is None:
        yield None
        return
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def paragraph_vectors(store: Store, corpus: Corpus, path: Path | None) -> np.ndarray:
    """Each distinct paragraph's vector; kept in `path` (.npy) when given and reused while its shape fits."""
    if path is not None and path.exists():
        base = np.load(path)
        if base.shape == (len(corpus.paragraphs), store.embedder.dimension):
            return base
    base = store.embedder.embed_documents(corpus.paragraphs)
    if path is not None:
        np.save(path, base)
    return base


def run(args: argparse.Namespace) -> dict[str, Any]:
    corpus = load_corpus(args.data)
    questions = load_questions(args.data, args.questions)
    root = Path(tempfile.mkdtemp(prefix="rag-sql-scale-", dir=args.work))
    with scratch_database(args.database_url, args.scratch_database) as url, Store.open(root, database_url=url) as store:
        backend = store.engine.dialect.name
        started = time.perf_counter()
        base = paragraph_vectors(store, corpus, args.paragraph_vectors)
        vectors_s = time.perf_counter() - started
        print(f"{backend}: {len(base):,} paragraph vectors in {vectors_s:.0f} s; ingesting", file=sys.stderr)
        result = {
            "backend": backend,
            "distinct_paragraphs": len(corpus.paragraphs),
            "documents_per_round": len(corpus.templates),
            "paragraph_vectors_s": vectors_s,
            "ingest": ingest(store, corpus, base, args.chunks, args.batch_chunks),
        }
        result["size"] = database_size(store)
        result["queries"] = queries(store, questions, args.trials, args.budget_s)
        with store.session() as session:
            result["sql_chunks"] = int(session.execute(text("SELECT count(*) FROM chunks")).scalar())
            result["keyword_chunks"] = keyword.count(session, store._collection_id(session, "default"))
    if not args.keep:
        shutil.rmtree(root)
    return result


def table(result: dict[str, Any]) -> str:
    run, size, q = result["ingest"], result["size"], result["queries"]
    first, last = run["by_tenth"][0]["chunks_per_s"], run["by_tenth"][-1]["chunks_per_s"]
    rows = [
        ("backend", result["backend"]),
        ("chunks / documents", f"{run['chunks']:,} / {run['documents']:,}"),
        ("Store.add, all batches", f"{run['add_s']:.0f} s"),
        ("ingest chunks/s (first / last tenth)", f"{run['chunks_per_s']:,.0f} ({first:,} / {last:,})"),
        ("ingest documents/s", f"{run['documents_per_s']:,.0f}"),
        ("vector file save at the end (not SQL)", f"{run['vector_save_s']:.0f} s"),
        ("database on disk (keyword index)", f"{gib(size['total_bytes'])} ({gib(size['keyword_index_bytes'])})"),
    ]
    for label, key in (
        ("keyword_search k=10", "keyword_search"),
        ("passages, 10 ids", "passages_10_ids"),
        ("chunk ids of one source", "source_filter"),
    ):
        rows.append((f"{label} p50 / p95", f"{q[key]['p50_ms']:.1f} / {q[key]['p95_ms']:.1f} ms (n={q[key]['n']})"))
    return "\n".join(["| measure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def gib(size: int) -> str:
    return f"{size / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server; default: SQLite in the store")
    parser.add_argument("--scratch-database", default="ragscale", help="dropped if present, created, and dropped after")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("--batch-chunks", type=int, default=512)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--trials", type=int, default=200, help="lookups timed for each lookup kind")
    parser.add_argument("--budget-s", type=float, default=600, help="stop timing one kind of query after this")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=None, help="where the temporary store goes")
    parser.add_argument("--paragraph-vectors", type=Path, default=None, help="a .npy cache of the embeddings")
    parser.add_argument("--keep", action="store_true", help="keep the store folder (SQLite: and its database)")
    args = parser.parse_args()
    result = run(args)
    result["command"] = "HF_HUB_OFFLINE=1 .venv/bin/python " + shlex.join(sys.argv)
    print(table(result))
    print(f"\n{result['command']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
