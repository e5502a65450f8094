"""FAISS vector index keyed by chunk id: inner product on normalised vectors.

A chunk may own several vectors (the whole chunk, then each of its sentences); FAISS ids are
`chunk_id * SLOTS + slot`, and a chunk scores the best of its vectors. Two families hold those ids:
an `IndexIDMap2` around an index that stores vectors in order (exact "Flat", or "SQ8"/"PQ" codes), and an
IVF index, which keeps ids in its own inverted lists (with a hash table from id to position, so vectors can be
read back and removed by id). `index.layouts` chooses between them by size.

The CPU index is the master copy (it is what gets persisted); when the GPU build of FAISS and a GPU
are present, searches run on a GPU clone that is refreshed after writes.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np

from index.manifest import IndexSpec

log = logging.getLogger(__name__)

SLOTS = 64  # vectors a chunk may own; FAISS ids are chunk_id * SLOTS + slot


def gpu_available() -> bool:
    """True when this FAISS build has GPU support and sees at least one GPU."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class FaissIndex:
    def __init__(self, index: faiss.Index, use_gpu: bool | None = None, spec: IndexSpec | None = None) -> None:
        self._index = index
        self._ivf = _ivf_of(index)
        self._use_gpu = gpu_available() and use_gpu is not False  # asked for or not, only where there is one
        self._gpu_resources = None
        self._gpu_index: faiss.Index | None = None
        built = describe(index)  # what the index is; how it was made comes from the manifest's `spec`
        structure = {name: getattr(built, name) for name in ("factory", "nlist", "nprobe", "code_bytes")}
        self.spec = built if spec is None else replace(spec, **structure)

    @classmethod
    def create(cls, dimension: int, use_gpu: bool | None = None, factory: str = "Flat") -> FaissIndex:
        """An empty index; one whose factory needs training (IVF, SQ8, PQ) must be trained before vectors go in."""
        return cls(new_faiss_index(dimension, factory), use_gpu)

    @classmethod
    def load(cls, path: str | Path, use_gpu: bool | None = None, spec: IndexSpec | None = None) -> FaissIndex:
        return cls(faiss.read_index(str(path)), use_gpu, spec)

    def sharing(self, use_gpu: bool) -> FaissIndex:
        """The same vectors (not a copy), searched on the GPU or on the CPU."""
        return FaissIndex(self._index, use_gpu, self.spec)

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def train(self, vectors: np.ndarray) -> None:
        """Fit the coarse lists and codes of an IVF, SQ or PQ index to a sample of the vectors it will hold."""
        self._index.train(np.ascontiguousarray(vectors, dtype=np.float32))

    def set_nprobe(self, nprobe: int) -> None:
        """Lists an IVF index searches per query (saved with the index)."""
        if self._ivf is not None:
            self._ivf.nprobe = int(nprobe)
            self._gpu_index = None

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors keyed by chunk id. A chunk's vectors come together, in one call; its first is its own."""
        if len(ids) == 0:
            return
        keys = np.asarray(ids, dtype=np.int64)
        # Slot = position among this call's vectors of the same key (keys arrive grouped).
        starts = np.r_[0, np.flatnonzero(keys[1:] != keys[:-1]) + 1]
        slots = np.arange(len(keys)) - np.repeat(starts, np.diff(np.r_[starts, len(keys)]))
        if slots.max() >= SLOTS:
            raise ValueError(f"a chunk may own at most {SLOTS} vectors")
        self.add_vectors(keys * SLOTS + slots, vectors)

    def add_vectors(self, vector_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under their FAISS ids (`chunk_id * SLOTS + slot`), as `vector_ids()` lists them."""
        self._index.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(vector_ids, dtype=np.int64)
        )
        self._gpu_index = None

    def remove(self, ids: np.ndarray) -> int:
        """Drop every vector of these chunk ids; returns how many chunks were present."""
        if len(ids) == 0 or len(self) == 0:
            return 0
        doomed = self._vector_ids_of(ids)
        if len(doomed) == 0:
            return 0
        # An IVF index's id hash table removes from an explicit list; a batch selector is a fast membership test.
        selector = faiss.IDSelectorArray(doomed) if self._ivf is not None else faiss.IDSelectorBatch(doomed)
        self._index.remove_ids(selector)
        self._gpu_index = None
        return len(np.unique(doomed // SLOTS))

    def vector_ids(self) -> np.ndarray:
        """Every FAISS id held (`chunk_id * SLOTS + slot`), in storage order."""
        if self._ivf is None:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
        lists = self._ivf.invlists
        held = [
            faiss.rev_swig_ptr(lists.get_ids(number), size).copy()
            for number in range(lists.nlist)
            if (size := lists.list_size(number))
        ]
        return np.concatenate(held).astype(np.int64) if held else np.zeros(0, dtype=np.int64)

    def _vector_ids_of(self, chunk_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The FAISS ids held for these chunks."""
        held = self.vector_ids()
        return held[np.isin(held // SLOTS, np.asarray(chunk_ids, dtype=np.int64))]

    def vectors_by_id(self, vector_ids: np.ndarray) -> np.ndarray:
        """The stored vectors under these FAISS ids (decoded from their codes when compressed)."""
        return self._index.reconstruct_batch(np.ascontiguousarray(vector_ids, dtype=np.int64))

    def as_stored(self, vectors: np.ndarray) -> np.ndarray:
        """`vectors` as this index would give them back: through its codes when it compresses them."""
        coder = _coder(self._index)
        return coder.sa_decode(coder.sa_encode(np.ascontiguousarray(vectors, dtype=np.float32)))

    def ids(self) -> np.ndarray:
        """The chunk ids present, sorted."""
        return np.unique(self.vector_ids() // SLOTS)

    def vectors_of(self, chunk_ids: Sequence[int]) -> list[np.ndarray]:
        """Every vector of each chunk in slot order (its own first, then its sentences'); empty when absent."""
        wanted = np.sort(self._vector_ids_of(chunk_ids))
        vectors = self.vectors_by_id(wanted) if len(wanted) else np.zeros((0, self.dimension), np.float32)
        owners = wanted // SLOTS
        empty = np.zeros((0, self.dimension), dtype=np.float32)
        return [vectors[owners == c] if c in owners else empty for c in map(int, chunk_ids)]

    def reconstruct(self, chunk_id: int) -> np.ndarray:
        """The chunk's own vector (its first)."""
        return self._index.reconstruct(int(chunk_id) * SLOTS)

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, chunk ids) per query, a chunk scored by its best vector; ids are -1 past the last hit."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if len(self) == 0 or k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        params = None
        if allowed_ids is not None:
            # Filtered search runs on the CPU copy: GPU indexes take no ID selector.
            selector = faiss.IDSelectorBatch(self._vector_ids_of(allowed_ids))
            if self._ivf is not None:
                params = faiss.SearchParametersIVF(sel=selector, nprobe=self._ivf.nprobe)
            else:
                params = faiss.SearchParameters(sel=selector)
        searcher = self._index if params is not None else self._searcher()
        # Fetch more vectors than chunks wanted, widening until each query has k distinct chunks or has run
        # out of vectors it may see (FAISS pads with -1).
        fetch = min(len(self), 4 * k)
        while True:
            scores, vector_ids = searcher.search(queries, fetch, params=params)
            top_scores, top_ids = best_per_chunk(scores, vector_ids, k)
            done = (top_ids[:, -1] >= 0) | (vector_ids[:, -1] < 0)
            if fetch >= len(self) or done.all():
                return top_scores, top_ids
            fetch = min(len(self), fetch * 4)

    def _searcher(self) -> faiss.Index:
        if not self._use_gpu:
            return self._index
        if self._gpu_index is None:
            try:
                if self._gpu_resources is None:
                    self._gpu_resources = faiss.StandardGpuResources()
                self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._index)
            except RuntimeError as exc:  # an index type without a GPU twin: stay on the CPU
                log.warning("FAISS GPU search unavailable (%s); searching on the CPU", exc)
                self._use_gpu = False
                return self._index
        return self._gpu_index

    def save(self, path: str | Path) -> None:
        """Write atomically: a temp file in the same folder, fsync, then rename over the old file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            faiss.write_index(self._index, tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def best_per_chunk(scores: np.ndarray, vector_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Collapse ranked vector hits to the k best distinct chunks per query (hits arrive best first)."""
    out_scores = np.full((len(scores), k), -np.inf, dtype=np.float32)
    out_ids = np.full((len(scores), k), -1, dtype=np.int64)
    for row, (row_scores, row_ids) in enumerate(zip(scores, vector_ids, strict=True)):
        valid = row_ids >= 0
        chunk_ids = row_ids[valid] // SLOTS
        _, first = np.unique(chunk_ids, return_index=True)  # a chunk's first hit is its best
        best = np.sort(first)[:k]
        out_scores[row, : len(best)] = row_scores[valid][best]
        out_ids[row, : len(best)] = chunk_ids[best]
    return out_scores, out_ids


def new_faiss_index(dimension: int, factory: str) -> faiss.Index:
    """An empty inner-product index for `factory`, keyed by FAISS ids that can be removed and read back.

    IVF indexes keep ids themselves (with a hash table from id to list position); every other kind is wrapped
    in an IndexIDMap2. Kinds that cannot remove vectors (HNSW, for one) are refused: deletes must work.
    """
    body = factory.strip()
    for prefix in ("IDMap2,", "IDMap,"):
        body = body.removeprefix(prefix)
    try:
        inner = faiss.index_factory(dimension, body, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ValueError(f"FAISS cannot build index {factory!r}: {' '.join(str(exc).split())[:200]}") from exc
    ivf = faiss.try_extract_index_ivf(inner)
    if ivf is not None:
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        index = inner
    elif isinstance(inner, faiss.IndexFlatCodes):
        index = faiss.IndexIDMap2(inner)
    else:
        raise ValueError(
            f"index {factory!r} ({type(inner).__name__}) cannot remove vectors, so deletes and repairs would "
            "break; choose Flat, SQ8, PQ<m> or an IVF<n>,<codes> factory"
        )
    return index


def describe(index: faiss.Index) -> IndexSpec:
    """The structural part of an index's spec: its factory string, lists, probes and bytes per vector."""
    ivf = _ivf_of(index)
    if ivf is None:
        coder = _coder(index)
        return IndexSpec(factory=_codes_name(coder), code_bytes=int(coder.sa_code_size()))
    codes = _codes_name(ivf)
    return IndexSpec(
        factory=f"IVF{ivf.nlist},{codes}",
        nlist=int(ivf.nlist),
        nprobe=int(ivf.nprobe),
        code_bytes=int(ivf.code_size),
    )


def _ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    """The IVF index keeping these ids itself, or None for an IndexIDMap2 (whatever it wraps)."""
    return None if isinstance(index, faiss.IndexIDMap2) else faiss.try_extract_index_ivf(index)


def _coder(index: faiss.Index) -> faiss.Index:
    """The index that encodes the vectors: the one an IndexIDMap2 wraps, else the index itself."""
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index


def _codes_name(index: faiss.Index) -> str:
    """How an index (or an IVF index's lists) stores each vector, as a factory string names it."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexFlat):
        return "Flat"
    quantizer = getattr(index, "sq", None)
    if quantizer is not None:
        kinds = faiss.ScalarQuantizer
        names = {kinds.QT_8bit: "SQ8", kinds.QT_4bit: "SQ4", kinds.QT_fp16: "SQfp16"}
        return names.get(quantizer.qtype, "SQ")
    pq = getattr(index, "pq", None)
    if pq is not None:
        return f"PQ{pq.M}x{pq.nbits}"
    return "Flat" if isinstance(index, faiss.IndexIVFFlat) else type(index).__name__
