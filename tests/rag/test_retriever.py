"""Score fusion: exact small cases for both fusion rules."""

from __future__ import annotations

import pytest

from rag.retriever import reciprocal_rank_fusion, zscore_fusion

pytestmark = pytest.mark.unit


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = dict(reciprocal_rank_fusion([[1, 2, 3], [3, 1]], rrf_k=60))
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert [i for i, _ in reciprocal_rank_fusion([[1, 2, 3], [3, 1]])] == [1, 3, 2]


def test_zscore_fusion_weights_and_imputes_missing_ids() -> None:
    dense = [(1, 0.9), (2, 0.5), (3, 0.1)]
    keyword = [(3, 10.0), (4, 2.0)]
    fused = dict(zscore_fusion([dense, keyword], [0.5, 0.5]))
    # dense z: 1 -> 1.2247, 2 -> 0.0, 3 -> -1.2247 ; keyword z: 3 -> 1, 4 -> -1 (missing ids get the list's min)
    assert fused[1] == pytest.approx(0.5 * 1.224745 + 0.5 * -1.0, abs=1e-5)
    assert fused[3] == pytest.approx(0.5 * -1.224745 + 0.5 * 1.0, abs=1e-5)
    assert fused[4] == pytest.approx(0.5 * -1.224745 + 0.5 * -1.0, abs=1e-5)
    assert [i for i, _ in zscore_fusion([dense, keyword], [1.0, 0.0])][:3] == [1, 2, 3]


def test_zscore_fusion_handles_an_empty_list_and_ties() -> None:
    assert zscore_fusion([[(5, 1.0), (6, 1.0)], []], [0.5, 0.5]) == [(5, 0.0), (6, 0.0)]
