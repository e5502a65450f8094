"""FAISS vector index keyed by chunk id: IndexIDMap2 over inner product on normalised vectors.

The CPU index is the master copy (it is what gets persisted); when the GPU build of FAISS and a GPU
are present, searches run on a GPU clone that is refreshed after writes.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import faiss
import numpy as np

log = logging.getLogger(__name__)


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

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
        self._gpu_index = None

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64))))
        self._gpu_index = None
        return removed

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def reconstruct(self, chunk_id: int) -> np.ndarray:
        return self._index.reconstruct(int(chunk_id))

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; ids are -1 where fewer than k vectors qualify."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, len(self))) if len(self) else 1
        if len(self) == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if allowed_ids is not None:
            # Filtered search runs on the CPU copy: GPU indexes take no ID selector.
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype=np.int64)))
            return self._index.search(queries, k, params=params)
        return self._searcher().search(queries, k)

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
