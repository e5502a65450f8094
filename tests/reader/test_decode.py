"""Span decoding, no-answer calibration and validation splits, on hand-made logits and examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from index.sentences import sentence_around
from reader.calibration import NoAnswerCalibration, fit_calibration
from reader.decode import SpanCandidate, rank_spans, window_spans
from reader.features import Window
from reader.squad_files import QAExample, split_validation

pytestmark = pytest.mark.unit

# [CLS] q q [SEP] t0 t1 t2 t3 [SEP]: passage "aa bb cc dd" at offsets 0-2, 3-5, 6-8, 9-11.
WINDOW = Window(0, list(range(9)), None, [None, None, None, None, (0, 2), (3, 5), (6, 8), (9, 11), None])


def logits(values: dict[int, float]) -> np.ndarray:
    out = np.full(9, -5.0)
    for i, v in values.items():
        out[i] = v
    return out


def test_best_span_is_the_highest_start_plus_end_within_the_passage() -> None:
    start = logits({0: 1.0, 1: 9.0, 5: 4.0})  # token 1 is the question: never a start
    end = logits({0: 1.0, 6: 3.0, 8: 9.0})  # token 8 is [SEP]: never an end
    spans = window_spans(WINDOW, start, end, n_best=3, max_answer_tokens=30)
    assert (spans[0].start, spans[0].end) == (3, 8)  # "bb cc"
    assert spans[0].score == pytest.approx(7.0)
    assert spans[0].margin == pytest.approx(7.0 - 2.0)  # minus the [CLS] null score
    assert all(s.start <= s.end for s in spans)


def test_answer_length_is_limited_and_ends_never_precede_starts() -> None:
    start = logits({4: 5.0})
    end = logits({7: 5.0, 4: 1.0})
    [best] = window_spans(WINDOW, start, end, n_best=1, max_answer_tokens=2)
    assert (best.start, best.end) == (0, 2)  # "aa dd" spans 4 tokens: over the limit


def test_same_span_from_overlapping_windows_is_kept_once_with_its_best_margin() -> None:
    ranked = rank_spans(
        [SpanCandidate(0, 3, 8, 5.0, 1.0), SpanCandidate(0, 3, 8, 6.0, 2.5), SpanCandidate(1, 0, 2, 9.0, 2.0)]
    )
    assert [(c.item, c.margin) for c in ranked] == [(0, 2.5), (1, 2.0)]


def test_calibration_is_monotone_and_fits_separable_margins() -> None:
    margins = [-4.0, -3.0, -2.5, -1.0, 1.0, 2.0, 3.5, 5.0]
    fitted = fit_calibration(margins, [True, True, True, True, False, False, False, False])
    probs = [fitted.probability(m) for m in margins]
    assert probs == sorted(probs, reverse=True)
    assert probs[0] > 0.9 and probs[-1] < 0.1
    assert fitted.probability(-math.inf) == 1.0
    assert NoAnswerCalibration(1.0, 0.0).probability(0.0) == pytest.approx(0.5)


def test_validation_holds_out_whole_articles_with_unanswerable_questions_first() -> None:
    examples = [
        QAExample(f"{t}{i}", t, "q?", "c", () if (t == "B" and i == 0) else (("c", 0),))
        for t in "ABCDEFGHIJ"
        for i in range(10)
    ]
    train, held = split_validation(examples, 0.1, seed=3)
    assert {e.title for e in held} == {"B"}
    assert not {e.title for e in held} & {e.title for e in train}
    assert len(train) + len(held) == len(examples)


def test_sentence_around_a_span() -> None:
    text = "Intro here. The default engine is sqlite. More text.\n\nA code block\nwith two lines"
    at = text.index("sqlite")
    start, end = sentence_around(text, at, at + 6)
    assert text[start:end] == "The default engine is sqlite."
    at = text.index("two")
    start, end = sentence_around(text, at, at + 3)
    assert text[start:end] == "A code block\nwith two lines"
