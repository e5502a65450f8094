"""Vector index at scale: a million chunks (about 6M vectors) indexed as the store would, on this machine.

HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/index_scale.py [--chunks 1000000] [--queries 1000] [--out FILE]

Embedding a million real chunks takes hours on 2 cores, so the vectors are made from real ones:
- real vectors: every SQuAD v1.1 dev and SQuAD 2.0 train-first10 paragraph as one chunk, embedded as the store
  embeds (the chunk, then each sentence under the article title): 2,761 chunks, about 16k vectors;
- synthetic chunk c takes real chunk p(c)'s vectors and adds, slot by slot, b(c) times those of real chunk q(c)
  and e(c) times those of real chunk r(c) (b, e uniform in [0, 0.8]; p, q, r and b, e hashed from c), plus
  Gaussian noise of norm 0.05, then normalises; it owns as many vectors as p(c). Every vector is a function of its
  id, so it can be regenerated block by block and never held all at once.
Queries are real: SQuAD v1.1 dev questions from the train articles of the dev split. Exact top-10 chunks come
from brute force over every vector. The index is built by `index.layouts.rebuild`, the code a store runs when a
collection outgrows exact search, with its automatic choice and calibration.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from index import layouts
from index.embedder import DEFAULT_EMBEDDER, SentenceTransformerEmbedder
from index.sentences import vector_texts
from index.vectors import SLOTS, FaissIndex

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "squad"
MIX = 0.8  # largest weight of the two partner chunks
NOISE = 0.05


def real_vectors(cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors, vectors per chunk, query vectors), embedded once and cached as a .npz (no pickles)."""
    if cache.exists():
        saved = np.load(cache, allow_pickle=False)
        return saved["vectors"], saved["counts"], saved["queries"]
    embedder = SentenceTransformerEmbedder(DEFAULT_EMBEDDER)
    texts: list[list[str]] = []
    for name in ("dev-v1.1.json", "train-v2.0-first10.json"):
        for article in json.loads((DATA / name).read_text(encoding="utf-8"))["data"]:
            texts += [vector_texts(p["context"], article["title"].replace("_", " ")) for p in article["paragraphs"]]
    counts = np.array([min(len(t), SLOTS) for t in texts], dtype=np.int64)
    vectors = embedder.embed_documents([text for group in texts for text in group[:SLOTS]])
    train = set(json.loads((DATA / "dev-split.json").read_text(encoding="utf-8"))["train"])
    dev = json.loads((DATA / "dev-v1.1.json").read_text(encoding="utf-8"))["data"]
    questions = [q["question"] for a in dev if a["title"] in train for p in a["paragraphs"] for q in p["qas"]]
    chosen = np.random.default_rng(0).choice(len(questions), size=2000, replace=False)
    queries = embedder.embed_queries([questions[i] for i in chosen])
    np.savez(cache, vectors=vectors, counts=counts, queries=queries)
    return vectors, counts, queries


class SyntheticChunks:
    """`n` chunks whose vectors are mixes of real chunks' vectors, each a pure function of its FAISS id."""

    def __init__(self, n: int, real: np.ndarray, counts: np.ndarray) -> None:
        self.real, self.counts, self.n = real, counts, n
        self.offsets = np.r_[0, np.cumsum(counts)[:-1]]
        self.noise = np.random.default_rng(1).standard_normal((65_537, real.shape[1])).astype(np.float32)
        self.noise *= NOISE / np.linalg.norm(self.noise, axis=1, keepdims=True)
        chunk_ids = np.arange(1, n + 1, dtype=np.int64)
        own = counts[self._pick(chunk_ids, 0)]
        self._ids = np.repeat(chunk_ids * SLOTS, own) + _ranks(own)

    @property
    def dimension(self) -> int:
        return int(self.real.shape[1])

    def __len__(self) -> int:
        return len(self._ids)

    def vector_ids(self) -> np.ndarray:
        return self._ids

    def _pick(self, chunk_ids: np.ndarray, salt: int) -> np.ndarray:
        return (_hash(chunk_ids, salt) % np.uint64(len(self.counts))).astype(np.int64)

    def vectors_by_id(self, vector_ids: np.ndarray) -> np.ndarray:
        chunks, slots = vector_ids // SLOTS, vector_ids % SLOTS
        out = self.real[self.offsets[self._pick(chunks, 0)] + slots].copy()
        for salt in (1, 2):
            partner = self._pick(chunks, salt)
            weight = (_hash(chunks, salt + 10) % np.uint64(1000)).astype(np.float32) / 1000 * MIX
            out += weight[:, None] * self.real[self.offsets[partner] + slots % self.counts[partner]]
        out += self.noise[(_hash(vector_ids, 3) % np.uint64(len(self.noise))).astype(np.int64)]
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _hash(values: np.ndarray, salt: int) -> np.ndarray:
    """A fixed integer hash (splitmix64) of each value."""
    x = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15 * (salt + 1) % 2**64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _ranks(counts: np.ndarray) -> np.ndarray:
    """0..count-1 for each count, concatenated."""
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(int(counts.sum())) - starts


def exact_top10(source: SyntheticChunks, queries: np.ndarray) -> np.ndarray:
    exact = layouts.ExactTopK(queries)
    ids = source.vector_ids()
    for start in range(0, len(ids), layouts.BLOCK * 4):
        block = ids[start : start + layouts.BLOCK * 4]
        exact.add(block, source.vectors_by_id(block))
    return exact.chunk_ids(10)


def latencies_ms(index: FaissIndex, queries: np.ndarray) -> np.ndarray:
    index.search(queries[:5], 10)  # warm up
    times = []
    for query in queries:
        started = time.perf_counter()
        index.search(query[None], 10)
        times.append((time.perf_counter() - started) * 1000)
    return np.array(times)


def percentiles(times_ms: np.ndarray) -> dict[str, float]:
    p50, p95 = np.percentile(times_ms, [50, 95])
    return {"p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1)}


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ragkit-index-scale-real.npz")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "ragkit-index-scale.json")
    parser.add_argument("--factory", default=None, help="FAISS factory string (default: the store's choice by size)")
    parser.add_argument("--exact-only", action="store_true", help="only time exact search by size")
    parser.add_argument("--exact-sizes", default="65536,131072,262144,524288,1048576")
    args = parser.parse_args()
    faiss.omp_set_num_threads(2)
    results: dict[str, object] = {"command": "benchmarks/index_scale.py " + " ".join(_argv(args))}

    real, counts, all_queries = real_vectors(args.cache)
    queries = all_queries[: args.queries]
    source = SyntheticChunks(args.chunks, real, counts)
    results.update(chunks=args.chunks, vectors=len(source), real_chunks=len(counts), real_vectors=len(real))
    print(f"{args.chunks:,} chunks, {len(source):,} vectors, from {len(counts):,} real chunks ({len(real):,} vectors)")

    # Exact search latency by size: where the store stops searching exactly.
    exact_rows = []
    for size in (int(s) for s in args.exact_sizes.split(",")):
        ids = source.vector_ids()[:size]
        flat = FaissIndex.create(source.dimension, use_gpu=False)
        for start in range(0, len(ids), layouts.BLOCK):
            block = ids[start : start + layouts.BLOCK]
            flat.add_vectors(block, source.vectors_by_id(block))
        exact_rows.append({"vectors": size, **percentiles(latencies_ms(flat, queries[:200]))})
        print(json.dumps(exact_rows[-1]))
        del flat
    results["exact_by_size"] = exact_rows
    if args.exact_only:
        args.out.write_text(json.dumps(results, indent=2))
        return

    started = time.perf_counter()
    truth = exact_top10(source, queries)
    results["exact_truth_s"] = round(time.perf_counter() - started, 1)
    print(f"exact top-10 of {len(queries)} queries by brute force: {results['exact_truth_s']} s")

    before = rss_mb()
    started = time.perf_counter()
    index = layouts.rebuild(source, args.factory, progress=True)
    build_s = time.perf_counter() - started
    index_mb = rss_mb() - before
    spec = index.spec
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "index.faiss"
        index.save(path)
        file_mb = path.stat().st_size / 2**20
    found = index.search(queries, 10)[1]
    times = latencies_ms(index, queries)
    row = {
        "factory": spec.factory,
        "nprobe": spec.nprobe,
        "build_s": round(build_s, 1),
        "calibration_recall": spec.recall_at_10,
        "recall_at_10": round(layouts.chunk_recall(found, truth), 4),
        **percentiles(times),
        "index_rss_mb": round(index_mb),
        "file_mb": round(file_mb),
        "bytes_per_chunk": round(file_mb * 2**20 / args.chunks),
    }
    results["default"] = row
    print(json.dumps(row))

    sweep = []
    for nprobe in sorted({max(1, spec.nprobe // 4), max(1, spec.nprobe // 2), spec.nprobe, spec.nprobe * 2}
                         if spec.nprobe else ()):  # fmt: skip
        index.set_nprobe(nprobe)
        recall = layouts.chunk_recall(index.search(queries, 10)[1], truth)
        times = latencies_ms(index, queries[:300])
        sweep.append({"nprobe": nprobe, "recall_at_10": round(recall, 4), **percentiles(times)})
        print(json.dumps(sweep[-1]))
    results["nprobe_sweep"] = sweep
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"figures in {args.out}")


def _argv(args: argparse.Namespace) -> list[str]:
    factory = [f"--factory '{args.factory}'"] if args.factory else []
    return [f"--chunks {args.chunks}", f"--queries {args.queries}", *factory]


if __name__ == "__main__":
    main()
