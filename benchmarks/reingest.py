"""Re-ingest benchmark: ragkit against LangChain's indexing API on one corpus of text files, in three steps.

HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/reingest.py [--data PATH] [--fraction 0.01] [--out PATH]

The corpus is one .txt file per SQuAD v2.0 dev paragraph (1,204 files in 35 article folders). Steps: a first
ingest, a re-ingest of the unchanged files, and a re-ingest after a sentence is appended to `--fraction` of them.
Both sides load files with ragkit's loaders, split them with ragkit's default chunker (so they hold the same
chunks) and embed with one shared all-MiniLM-L6-v2 model, counted per side. ragkit runs `ingest_paths` on a
`Store` opened from disk for each step; LangChain runs `index(cleanup="incremental", source_id_key="source")`
with a SQLite `SQLRecordManager` and a FAISS vector store loaded from and saved to disk for each step.
Needs the `bench` extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from index import SentenceTransformerEmbedder, Store
from index.models import Chunk, Document
from ingest.loaders import load_file
from ingest.pipeline import default_chunker, ingest_paths
from ingest.types import Chunker
from ingest.walk import iter_files

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "squad" / "dev-v2.0.json"
DEFAULT_OUT = Path(tempfile.gettempdir()) / "ragkit-reingest.json"
EDIT = "\n\nThis paragraph was revised for the re-ingest benchmark (edit {n})."
STEPS = ("first ingest", "unchanged re-ingest", "re-ingest, {pct} of files edited")
NAMESPACE = "reingest-bench"


class CountingEmbedder:
    """ragkit's Embedder protocol around a shared model, counting the texts it embeds and the time it takes."""

    def __init__(self, model: SentenceTransformerEmbedder) -> None:
        self.model = model
        self.name = model.name
        self.texts = 0
        self.seconds = 0.0

    @property
    def dimension(self) -> int:
        return self.model.dimension

    @property
    def max_tokens(self) -> int:
        return self.model.max_tokens

    @property
    def tokenizer(self):  # noqa: ANN201 - a transformers tokenizer
        return self.model.tokenizer

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        vectors = self.model.embed_documents(texts)
        self.seconds += time.perf_counter() - started
        self.texts += len(texts)
        return vectors

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.embed_queries(texts)

    def reset(self) -> None:
        self.texts, self.seconds = 0, 0.0


def langchain_embeddings(counter: CountingEmbedder) -> Any:
    """The same counted model as a `langchain_core.embeddings.Embeddings`."""
    from langchain_core.embeddings import Embeddings

    class SharedModelEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return counter.embed_documents(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return counter.embed_queries([text])[0].tolist()

    return SharedModelEmbeddings()


@dataclass(frozen=True)
class StepResult:
    system: str
    step: str
    wall_s: float
    cpu_s: float  # this process's CPU time, all threads: steadier than wall time on a shared machine
    embed_s: float
    chunks_embedded: int
    texts_embedded: int
    documents_added: int
    documents_replaced: int
    documents_unchanged: int
    chunks_deleted: int
    chunks_stored: int


@dataclass(frozen=True)
class Leftovers:
    """What an edited file's old version left in a store after the last step."""

    system: str
    stale_chunks: int  # stored chunks of edited files whose text is not a chunk of the file's new version
    extra_chunks: int  # stored chunks of edited files beyond the new version's chunk count
    indexes_agree: bool  # every index of the store holds the same chunk ids


# ---- corpus -----------------------------------------------------------------------------------


def build_corpus(squad: Path, folder: Path) -> list[Path]:
    """One .txt file per paragraph, in one folder per article: `<Title>/<Title>_<nnn>.txt`."""
    files = []
    for article in json.loads(squad.read_text(encoding="utf-8"))["data"]:
        title = re.sub(r"[^\w().,'-]+", "_", article["title"])
        (folder / title).mkdir(parents=True, exist_ok=True)
        for i, paragraph in enumerate(article["paragraphs"]):
            path = folder / title / f"{title}_{i:03d}.txt"
            path.write_text(paragraph["context"], encoding="utf-8")
            files.append(path)
    return files


def edit_files(files: Sequence[Path], fraction: float, seed: int) -> list[Path]:
    """Append one sentence to a seeded sample of `fraction` of the files (at least one); the edited paths."""
    count = max(1, round(len(files) * fraction))
    chosen = sorted(random.Random(seed).sample(sorted(files), count))
    for n, path in enumerate(chosen, 1):
        with path.open("a", encoding="utf-8") as handle:
            handle.write(EDIT.format(n=n))
    return chosen


def chunk_texts(path: Path, chunker: Chunker) -> list[str]:
    return [span.text for doc in load_file(path) for span in chunker.split(doc.text)]


# ---- ragkit -----------------------------------------------------------------------------------


class RagkitSide:
    def __init__(self, folder: Path, embedder: CountingEmbedder) -> None:
        self.folder, self.embedder = folder, embedder

    def step(self, corpus: Path, step: str) -> StepResult:
        before = self._stored()
        self.embedder.reset()
        started, cpu = time.perf_counter(), time.process_time()
        with Store.open(self.folder, embedder=self.embedder) as store:  # type: ignore[arg-type]
            report = ingest_paths(store, [corpus], progress=False)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        after = self._stored()
        return StepResult(
            "ragkit", step, wall, cpu, self.embedder.seconds, report.chunks, self.embedder.texts, report.added,
            report.replaced, report.unchanged, before + report.chunks - after, after,
        )  # fmt: skip

    def _stored(self) -> int:
        if not self.folder.exists():
            return 0
        with Store.open(self.folder, embedder=self.embedder) as store:  # type: ignore[arg-type]
            return sum(d.chunks for d in store.documents())

    def leftovers(self, edited: Sequence[Path], chunker: Chunker) -> Leftovers:
        with Store.open(self.folder, embedder=self.embedder) as store:  # type: ignore[arg-type]
            stored = self._chunks(store, edited)
            agree = all(r.consistent for r in store.check())
        return _leftovers("ragkit", stored, edited, chunker, agree)

    @staticmethod
    def _chunks(store: Store, sources: Sequence[Path]) -> list[tuple[str, str]]:
        with store.session() as db:
            rows = db.execute(
                select(Document.source, Chunk.text)
                .join(Chunk, Chunk.document_id == Document.id)
                .where(Document.source.in_([str(s) for s in sources]))
            ).all()
        return [(source, text) for source, text in rows]


# ---- LangChain --------------------------------------------------------------------------------


def _langchain() -> Any:
    try:
        from langchain_classic.indexes import SQLRecordManager
        from langchain_community.vectorstores import FAISS
        from langchain_core.indexing import index
    except ImportError as exc:
        raise SystemExit(f"{exc}: install the benchmark extra with pip install -e '.[bench]'") from exc
    return SQLRecordManager, FAISS, index


class LangChainSide:
    def __init__(self, folder: Path, counter: CountingEmbedder, chunker: Chunker, batch_size: int) -> None:
        self.folder, self.counter, self.chunker, self.batch_size = folder, counter, chunker, batch_size
        self.embeddings = langchain_embeddings(counter)
        _langchain()  # imported before any timing
        self.db_url = f"sqlite:///{folder / 'records.sqlite'}"
        self.faiss_dir = folder / "faiss"

    def documents(self, corpus: Path) -> Iterator[Any]:
        """Each file's chunks as LangChain documents, in file order, from ragkit's loaders and chunker."""
        from langchain_core.documents import Document as LCDocument

        for path in iter_files([corpus]):
            for doc in load_file(path):
                for span in self.chunker.split(doc.text):
                    metadata = {"source": doc.source, "title": doc.title, "start": span.start, "end": span.end}
                    yield LCDocument(page_content=span.text, metadata=metadata)

    def _open(self) -> tuple[Any, Any]:
        import faiss
        from langchain_community.docstore.in_memory import InMemoryDocstore
        from langchain_community.vectorstores.utils import DistanceStrategy

        record_manager_cls, faiss_store, _ = _langchain()
        records = record_manager_cls(NAMESPACE, db_url=self.db_url)
        records.create_schema()
        if self.faiss_dir.exists():
            vectors = faiss_store.load_local(
                str(self.faiss_dir), self.embeddings, allow_dangerous_deserialization=True
            )  # LangChain's own files (a pickled docstore) written by this run
        else:
            empty = faiss.IndexFlatIP(self.counter.dimension)
            vectors = faiss_store(
                self.embeddings, empty, InMemoryDocstore(), {}, distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT
            )
        return records, vectors

    def step(self, corpus: Path, step: str) -> StepResult:
        _, _, index = _langchain()
        before = self._groups()
        self.counter.reset()
        started, cpu = time.perf_counter(), time.process_time()
        records, vectors = self._open()
        # Incremental cleanup runs per batch: a file whose chunks straddle a batch boundary loses its later chunks
        # to the earlier batch's cleanup and has them re-embedded on every run (langchain-ai/langchain#32612).
        result = index(
            self.documents(corpus), records, vectors, batch_size=self.batch_size, cleanup="incremental",
            source_id_key="source", key_encoder="sha256",
        )  # fmt: skip
        if result["num_added"] or result["num_deleted"]:
            vectors.save_local(str(self.faiss_dir))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        after = self._groups()
        changed = {g for g in before.keys() & after.keys() if before[g] != after[g]}
        return StepResult(
            "LangChain", step, wall, cpu, self.counter.seconds, result["num_added"], self.counter.texts,
            len(after.keys() - before.keys()), len(changed), len(before.keys() & after.keys()) - len(changed),
            result["num_deleted"], int(vectors.index.ntotal),
        )  # fmt: skip

    def _groups(self) -> dict[str, frozenset[str]]:
        """The record manager's keys per source, read from its table."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                if not conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE name = 'upsertion_record'").first():
                    return {}
                rows = conn.execute(
                    text("SELECT group_id, key FROM upsertion_record WHERE namespace = :ns"), {"ns": NAMESPACE}
                ).all()
        finally:
            engine.dispose()
        groups: dict[str, set[str]] = {}
        for group, key in rows:
            groups.setdefault(group, set()).add(key)
        return {g: frozenset(keys) for g, keys in groups.items()}

    def leftovers(self, edited: Sequence[Path]) -> Leftovers:
        records, vectors = self._open()
        docs = vectors.docstore._dict  # noqa: SLF001 - InMemoryDocstore keeps its documents here
        wanted = {str(p) for p in edited}
        stored = [(d.metadata["source"], d.page_content) for d in docs.values() if d.metadata["source"] in wanted]
        keys = set(records.list_keys())
        agree = vectors.index.ntotal == len(vectors.index_to_docstore_id) == len(docs) and keys == set(docs)
        return _leftovers("LangChain", stored, edited, self.chunker, agree)


def _leftovers(
    system: str, stored: Sequence[tuple[str, str]], edited: Sequence[Path], chunker: Chunker, agree: bool
) -> Leftovers:
    current = {str(p): chunk_texts(p, chunker) for p in edited}
    stale = sum(text not in current[source] for source, text in stored)
    extra = len(stored) - sum(len(texts) for texts in current.values())
    return Leftovers(system, stale, extra, agree)


# ---- report -----------------------------------------------------------------------------------


def table(results: Sequence[StepResult], leftovers: Sequence[Leftovers]) -> str:
    head = (
        "| step | system | wall s | CPU s | of the wall, embedding s | chunks embedded | texts embedded | docs added "
        "| docs replaced | docs unchanged | chunks deleted | chunks stored |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in results:
        lines.append(
            f"| {r.step} | {r.system} | {r.wall_s:.1f} | {r.cpu_s:.1f} | {r.embed_s:.1f} | {r.chunks_embedded:,} "
            f"| {r.texts_embedded:,} "
            f"| {r.documents_added:,} | {r.documents_replaced:,} | {r.documents_unchanged:,} | {r.chunks_deleted:,} "
            f"| {r.chunks_stored:,} |"
        )
    lines += ["", "| system | stale chunks of edited files | extra chunks of edited files | indexes agree |"]
    lines.append("|---|---|---|---|")
    lines += [f"| {x.system} | {x.stale_chunks} | {x.extra_chunks} | {x.indexes_agree} |" for x in leftovers]
    return "\n".join(lines)


def versions() -> dict[str, str]:
    names = ("langchain-core", "langchain-community", "langchain-classic", "faiss-cpu", "sentence-transformers")
    return {name: version(name) for name in (*names, "torch")}


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    corpus = work / "corpus"
    files = build_corpus(args.data, corpus)
    model = SentenceTransformerEmbedder()
    model.embed_queries(["load the model"])  # loaded once, before any timing, for both sides
    ragkit = RagkitSide(work / "ragkit", CountingEmbedder(model))
    lc_counter = CountingEmbedder(model)
    with Store.open(ragkit.folder, embedder=ragkit.embedder) as store:  # type: ignore[arg-type]
        chunker = default_chunker(store)  # what ingest_paths uses by default; LangChain gets the same
    langchain = LangChainSide(work / "langchain", lc_counter, chunker, args.langchain_batch)
    (work / "langchain").mkdir()

    results: list[StepResult] = []
    edited: list[Path] = []
    for i, template in enumerate(STEPS):
        step = template.format(pct=f"{args.fraction:.0%}")
        if i == 2:
            edited = edit_files(files, args.fraction, args.seed)
        for side in (ragkit, langchain):
            results.append(side.step(corpus, step))
            print(f"{results[-1].system:<10} {step:<32} {results[-1].wall_s:6.1f} s", file=sys.stderr)
    leftovers = [ragkit.leftovers(edited, chunker), langchain.leftovers(edited)]
    names = [str(p.relative_to(corpus)) for p in edited]
    return {
        "corpus": {"source": str(args.data), "files": len(files), "edited": names},
        "setup": {"chunker": f"ragkit default TokenChunker ({chunker.chunk_tokens} tokens, {chunker.overlap_tokens} "
                            "overlap) for both sides", "embedder": f"{model.name}, one shared instance"},
        "langchain": {"record_manager": "langchain_classic.indexes.SQLRecordManager (SQLite file)",
                      "vector_store": "langchain_community.vectorstores.FAISS (IndexFlatIP, save_local/load_local)",
                      "cleanup": "incremental", "source_id_key": "source", "batch_size": args.langchain_batch},
        "versions": versions(),
        "steps": [asdict(r) for r in results],
        "leftovers": [asdict(x) for x in leftovers],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a SQuAD-format JSON file")
    parser.add_argument("--fraction", type=float, default=0.01, help="share of files edited before the third step")
    parser.add_argument("--seed", type=int, default=0, help="picks the edited files")
    parser.add_argument("--langchain-batch", type=int, default=100, help="index()'s batch_size (its default: 100)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the figures as JSON")
    parser.add_argument("--work", type=Path, default=None, help="an empty folder to work in (default: a temporary one)")
    args = parser.parse_args()
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction must be in (0, 1], got {args.fraction}")
    if args.langchain_batch < 1:
        parser.error(f"--langchain-batch must be at least 1, got {args.langchain_batch}")
    command = "HF_HUB_OFFLINE=1 .venv/bin/python " + shlex.join(["benchmarks/reingest.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="rag-reingest-") as tmp:
        work = args.work or Path(tmp)
        load = os.getloadavg()[0]
        figures = run(args, work)
    figures["command"] = command
    figures["load_average_1min"] = {"start": load, "end": os.getloadavg()[0], "cores": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    steps = [StepResult(**s) for s in figures["steps"]]
    print(table(steps, [Leftovers(**x) for x in figures["leftovers"]]))
    load = figures["load_average_1min"]
    print(f"\n{figures['corpus']['files']:,} files; versions {figures['versions']}")
    print(f"load average (1 min) {load['start']:.1f} at the start, {load['end']:.1f} at the end; {load['cores']} cores")
    print(f"figures: {args.out}\ncommand: {command}")


if __name__ == "__main__":
    main()
