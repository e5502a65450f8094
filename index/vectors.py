"""FAISS vector index keyed by chunk id: IndexIDMap2 over inner product on normalised vectors.

A chunk may own several vectors (the whole chunk, then each of its sentences); FAISS ids are
`chunk_id * SLOTS + slot`, and a chunk scores the best of its vectors.

The CPU index is the master copy (it is what gets persisted); when the GPU build of FAISS and a GPU
are present, searches run on a GPU clone that is refreshed after writes.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

log = logging.getLogger(__name__)

SLOTS = 64  # vectors a chunk may own; FAISS ids are chunk_id * SLOTS + slot


def gpu_available() -> bool:
    """True when this FAISS build has GPU support and sees at least one GPU."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class FaissIndex:
    def __init__(self, index: faiss.Index, use_gpu: bool | None = None) -> None:
        self._index = index
        self._use_gpu = gpu_available() if use_gpu is None else use_gpu
        self._gpu_resources = None
        self._gpu_index: faiss.Index | None = None

    @classmethod
    def create(cls, dimension: int, use_gpu: bool | None = None) -> FaissIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)), use_gpu)

    @classmethod
    def load(cls, path: str | Path, use_gpu: bool | None = None) -> FaissIndex:
        return cls(faiss.read_index(str(path)), use_gpu)

    @classmethod
    def from_bytes(cls, data: np.ndarray, use_gpu: bool | None = None) -> FaissIndex:
        """An index from `to_bytes` output (uint8 array); RuntimeError when FAISS cannot parse it."""
        return cls(faiss.deserialize_index(data), use_gpu)

    def to_bytes(self) -> np.ndarray:
        return faiss.serialize_index(self._index)

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

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
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), keys * SLOTS + slots)
        self._gpu_index = None

    def remove(self, ids: np.ndarray) -> int:
        """Drop every vector of these chunk ids; returns how many chunks were present."""
        if len(ids) == 0 or len(self) == 0:
            return 0
        vector_ids = self._vector_ids()
        doomed = vector_ids[np.isin(vector_ids // SLOTS, np.asarray(ids, dtype=np.int64))]
        if len(doomed) == 0:
            return 0
        self._index.remove_ids(faiss.IDSelectorBatch(doomed))
        self._gpu_index = None
        return len(np.unique(doomed // SLOTS))

    def _vector_ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def ids(self) -> np.ndarray:
        """The chunk ids present, sorted."""
        return np.unique(self._vector_ids() // SLOTS)

    def vectors_of(self, chunk_ids: Sequence[int]) -> list[np.ndarray]:
        """Every vector of each chunk in slot order (its own first, then its sentences'); empty when absent."""
        keys = self._vector_ids()
        wanted = np.sort(keys[np.isin(keys // SLOTS, np.asarray(chunk_ids, dtype=np.int64))])
        found: dict[int, list[np.ndarray]] = {}
        for key in wanted.tolist():
            found.setdefault(key // SLOTS, []).append(self._index.reconstruct(key))
        empty = np.zeros((0, self.dimension), dtype=np.float32)
        return [np.stack(found[c]) if c in found else empty for c in map(int, chunk_ids)]

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
            vector_ids = self._vector_ids()
            allowed = vector_ids[np.isin(vector_ids // SLOTS, np.asarray(allowed_ids, dtype=np.int64))]
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        searcher = self._index if params is not None else self._searcher()
        # Fetch more vectors than chunks wanted, widening until each query has k distinct chunks or has run
        # out of vectors it may see (FAISS pads with -1).
        fetch = min(len(self), 4 * k)
        while True:
            scores, vector_ids = searcher.search(queries, fetch, params=params)
            top_scores, top_ids = _best_per_chunk(scores, vector_ids, k)
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


def _best_per_chunk(scores: np.ndarray, vector_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
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
