"""Which FAISS index a collection gets, by its size, and how one is rebuilt as another.

Below `EXACT_MAX_VECTORS` a collection is searched exactly ("Flat"). Above it, an IVF index with 8-bit scalar
codes ("IVF<nlist>,SQ8": a quarter of the memory, lists scanned per query chosen so chunk recall@10 against exact
search stays at or above `TARGET_RECALL`). The index is trained on a sample of the collection's own vectors and
rebuilt when the collection grows (or shrinks) `GROWTH` times past the size it was designed for. A factory string
a user asked for is kept through rebuilds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Protocol

import faiss
import numpy as np
from tqdm import tqdm

from index.manifest import IndexSpec
from index.vectors import SLOTS, FaissIndex, best_per_chunk, describe, new_faiss_index

log = logging.getLogger(__name__)

# Exact search scans every vector: about 7 ms per 100k vectors per query on 2 cores (benchmarks/index_scale.py).
EXACT_MAX_VECTORS = 262_144
GROWTH = 4  # rebuild when the collection holds this many times more (or fewer) vectors than it was built for
TARGET_RECALL = 0.95  # chunk recall@10 against exact search that the chosen nprobe must reach
TRAIN_PER_LIST = 39  # training vectors per IVF list: the fewest FAISS accepts without a warning
MAX_TRAIN = 262_144  # training vectors for list-free codes (SQ, PQ)
CALIBRATION_QUERIES = 256
# Without real queries, calibration uses the sum of two random stored vectors. Real questions find their neighbours
# in more lists than such stand-ins: on SQuAD dev questions of the split's train articles (IVF64,SQ8), the
# stand-ins reached recall 0.95 with 4 lists per query and the questions needed 16. So a stand-in's nprobe is
# multiplied by this.
STAND_IN_FACTOR = 4
BLOCK = 65_536  # vectors moved per step of a rebuild


class VectorSource(Protocol):
    """Vectors under FAISS ids that an index can be built from: another index, or a benchmark's generator."""

    @property
    def dimension(self) -> int: ...

    def __len__(self) -> int: ...

    def vector_ids(self) -> np.ndarray: ...

    def vectors_by_id(self, vector_ids: np.ndarray) -> np.ndarray: ...


def choose(n_vectors: int, exact_max_vectors: int = EXACT_MAX_VECTORS) -> str:
    """The factory string for a collection of `n_vectors` vectors."""
    if n_vectors < exact_max_vectors:
        return "Flat"
    nlist = 2 ** int(math.log2(2 * math.sqrt(n_vectors)))  # about 2 sqrt(n) lists, a power of two
    return f"IVF{min(max(nlist, 64), 65_536)},SQ8"


def rebuild_reason(index: FaissIndex, exact_max_vectors: int = EXACT_MAX_VECTORS) -> str | None:
    """Why a collection's index should be rebuilt now (None while it still fits its size)."""
    spec, n_vectors = index.spec, len(index)
    if spec.requested is not None:
        if describe(new_faiss_index(index.dimension, spec.requested)).factory != spec.factory:
            return f"it is {spec.factory} but {spec.requested} was asked for"
        if spec.factory != "Flat" and n_vectors > GROWTH * max(spec.design_vectors, 1):
            return f"it grew from {spec.design_vectors:,} to {n_vectors:,} vectors since it was trained"
        return None
    if spec.factory == "Flat":
        if n_vectors >= exact_max_vectors:
            return f"it holds {n_vectors:,} vectors, past exact search's {exact_max_vectors:,}"
        return None
    if n_vectors > GROWTH * spec.design_vectors or n_vectors * GROWTH < spec.design_vectors:
        return f"it went from {spec.design_vectors:,} to {n_vectors:,} vectors since it was trained"
    return None


def rebuild(
    source: VectorSource,
    factory: str | None = None,
    exact_max_vectors: int = EXACT_MAX_VECTORS,
    progress: bool = True,
    queries: np.ndarray | None = None,
) -> FaissIndex:
    """`source`'s vectors in a new index: `factory` if given (kept through later rebuilds), else chosen by size.

    Trains on a sample of the vectors, moves them across in blocks (decoded from their codes when `source` is
    compressed, so memory stays near the two indexes' own size), and for an approximate index measures chunk
    recall@10 against exact search over the same vectors, choosing the fewest IVF lists per query that reach
    `TARGET_RECALL` on `queries` (embedded real queries) or, without them, on stand-ins. The returned index's
    `spec` records all of it.
    """
    n = len(source)
    target = factory or choose(n, exact_max_vectors)
    index = FaissIndex.create(source.dimension, factory=target)
    vector_ids = np.sort(source.vector_ids())  # chunk order: a chunk's vectors stay together
    rng = np.random.default_rng(0)
    if not index.is_trained:
        sample = source.vectors_by_id(_sample(vector_ids, _training_size(index.spec), rng))
        try:
            index.train(sample)
        except RuntimeError as exc:  # fewer vectors than lists, say
            raise ValueError(f"cannot train {target} on {len(sample):,} vectors: {_faiss_message(exc)}") from exc
    stand_ins = queries is None
    exact = None
    if target != "Flat" and n:
        queries = _stand_in_queries(source, vector_ids, rng) if stand_ins else queries
        exact = ExactTopK(queries)
    bar = tqdm(total=n, desc=f"index {target}", unit="vec", disable=not progress or n < 4 * BLOCK)
    for ids, vectors in _blocks(source, vector_ids):
        index.add_vectors(ids, vectors)
        if exact is not None:
            exact.add(ids, vectors)
        bar.update(len(ids))
    bar.close()
    nprobe, recall, calibration = None, 1.0, ""
    if exact is not None:
        nprobe, recall = _calibrate(index, queries, exact.chunk_ids(), STAND_IN_FACTOR if stand_ins else 1)
        calibration = "stand-in queries" if stand_ins else f"{len(queries)} queries"
    index.spec = replace(
        index.spec, requested=factory, design_vectors=n, nprobe=nprobe, recall_at_10=recall, calibration=calibration
    )
    log.info("built %s over %d vectors (nprobe %s, recall@10 %s)", target, n, nprobe, recall)
    return index


def _faiss_message(exc: RuntimeError) -> str:
    """The reason in a FAISS error, without the C++ location it starts with."""
    text = " ".join(str(exc).split())
    return text.rsplit("failed: ", 1)[-1].rsplit("Error: ", 1)[-1][:200]


def _training_size(spec: IndexSpec) -> int:
    """Enough vectors for the lists and for the codes (8-bit PQ fits 256 centroids per sub-vector)."""
    return min(MAX_TRAIN, max(TRAIN_PER_LIST * spec.nlist, TRAIN_PER_LIST * 256)) if spec.nlist else MAX_TRAIN


def _sample(vector_ids: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    if len(vector_ids) <= size:
        return vector_ids
    return np.sort(rng.choice(vector_ids, size=size, replace=False))


def _blocks(source: VectorSource, vector_ids: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for start in range(0, len(vector_ids), BLOCK):
        ids = vector_ids[start : start + BLOCK]
        yield ids, source.vectors_by_id(ids)


def _stand_in_queries(source: VectorSource, vector_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sums of two random stored vectors: queries that lie among the collection's vectors without matching one."""
    pairs = _sample(vector_ids, 2 * CALIBRATION_QUERIES, rng)
    queries = source.vectors_by_id(rng.permutation(pairs)).reshape(-1, 2, source.dimension).sum(axis=1)
    return queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)


class ExactTopK:
    """Exact top vectors of each query over the blocks seen so far, kept without holding the blocks."""

    def __init__(self, queries: np.ndarray, k_vectors: int = 4 * SLOTS) -> None:
        self.queries, self.k = queries, k_vectors
        self.heap = faiss.ResultHeap(len(queries), k_vectors, keep_max=True)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        scores, positions = faiss.knn(self.queries, vectors, min(self.k, len(vectors)), faiss.METRIC_INNER_PRODUCT)
        found = np.where(positions >= 0, ids[np.maximum(positions, 0)], -1)
        if scores.shape[1] < self.k:  # a short last block: pad to the heap's width
            pad = self.k - scores.shape[1]
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            found = np.pad(found, ((0, 0), (0, pad)), constant_values=-1)
        self.heap.add_result(np.ascontiguousarray(scores), np.ascontiguousarray(found))

    def chunk_ids(self, k: int = 10) -> np.ndarray:
        self.heap.finalize()
        return best_per_chunk(self.heap.D, self.heap.I, k)[1]


def chunk_recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's exact top chunks that were found."""
    hits = [
        len(set(f[f >= 0]) & set(t[t >= 0])) / max(int((t >= 0).sum()), 1) for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits))


def _calibrate(index: FaissIndex, queries: np.ndarray, truth: np.ndarray, factor: int = 1) -> tuple[int | None, float]:
    """The fewest IVF lists per query whose recall@10 reaches the target (all lists if none does) times `factor`,
    and the recall measured there."""
    nlist = index.spec.nlist
    if nlist is None:
        return None, round(chunk_recall(index.search(queries, truth.shape[1])[1], truth), 4)
    nprobe = 1
    while nprobe < nlist:
        index.set_nprobe(nprobe)
        if chunk_recall(index.search(queries, truth.shape[1])[1], truth) >= TARGET_RECALL:
            break
        nprobe *= 2
    chosen = min(nprobe * factor, nlist)
    index.set_nprobe(chosen)
    return chosen, round(chunk_recall(index.search(queries, truth.shape[1])[1], truth), 4)
