"""The FAISS vector index against the VectorIndex contract: ids are chunk ids, deletes never shift them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.types import VectorIndex
from index.vectors import FaissIndex

pytestmark = pytest.mark.unit


def unit_vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture()
def index() -> FaissIndex:
    created = FaissIndex.create(16, use_gpu=False)
    created.add(np.array([10, 20, 30, 40]), unit_vectors(4))
    return created


def test_satisfies_protocol(index: FaissIndex) -> None:
    assert isinstance(index, VectorIndex)


def test_search_returns_own_id_first(index: FaissIndex) -> None:
    scores, ids = index.search(unit_vectors(4)[[2]], k=2)
    assert ids[0, 0] == 30
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_remove_keeps_other_ids(index: FaissIndex) -> None:
    assert index.remove(np.array([20, 99])) == 1
    assert sorted(index.ids().tolist()) == [10, 30, 40]
    _, ids = index.search(unit_vectors(4)[[3]], k=1)
    assert ids[0, 0] == 40


def test_filtered_search_only_returns_allowed_ids(index: FaissIndex) -> None:
    _, ids = index.search(unit_vectors(4)[[0]], k=4, allowed_ids=np.array([20, 40]))
    assert set(ids[0][ids[0] >= 0].tolist()) == {20, 40}


def test_save_is_atomic_and_round_trips(index: FaissIndex, tmp_path: Path) -> None:
    path = tmp_path / "vectors" / "c.faiss"
    index.save(path)
    index.save(path)  # replacing an existing file leaves no temp files behind
    assert [p.name for p in path.parent.iterdir()] == ["c.faiss"]
    loaded = FaissIndex.load(path, use_gpu=False)
    assert sorted(loaded.ids().tolist()) == [10, 20, 30, 40]
    assert np.allclose(loaded.reconstruct(30), unit_vectors(4)[2])


def test_empty_index_searches_to_nothing() -> None:
    scores, ids = FaissIndex.create(16, use_gpu=False).search(unit_vectors(1), k=5)
    assert ids.shape == (1, 0)


def test_a_chunk_owns_several_vectors_and_scores_its_best() -> None:
    vectors = unit_vectors(5)
    index = FaissIndex.create(16, use_gpu=False)
    index.add(np.array([7, 7, 7, 8, 8]), vectors)
    assert index.ids().tolist() == [7, 8]
    scores, ids = index.search(vectors[[4]], k=2)
    assert ids[0].tolist() == [8, 7]  # one hit per chunk, though chunk 7 has three vectors
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert scores[0, 1] == pytest.approx(float(np.max(vectors[:3] @ vectors[4])), abs=1e-5)
    assert np.allclose(index.reconstruct(8), vectors[3])
    assert index.remove(np.array([7])) == 1
    assert len(index) == 2


def test_filtered_search_covers_every_vector_of_an_allowed_chunk() -> None:
    vectors = unit_vectors(4)
    index = FaissIndex.create(16, use_gpu=False)
    index.add(np.array([1, 1, 2, 2]), vectors)
    scores, ids = index.search(vectors[[1]], k=2, allowed_ids=np.array([1]))
    assert ids[0].tolist() == [1, -1]
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)  # its second vector, not just its first
