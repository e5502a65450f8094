"""Pure evaluation metrics: SQuAD v1.1 and v2.0 answer scores, retrieval recall/MRR, and latency summaries.

The SQuAD functions reproduce the official ``evaluate-v1.1.py`` and ``evaluate-v2.0.py`` number for number
(the golden tests in ``tests/eval`` pin them to copies of the official code on the full dev sets). Where the
official scripts print and skip, or crash, the behaviour chosen here is documented on the function.

Nothing here reads files or loads models: callers pass question id -> gold answer texts and question id ->
prediction mappings, and get frozen dataclasses back.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

# ASCII punctuation only, as the official scripts: unicode dashes and curly quotes are kept.
_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


class QuestionScores(NamedTuple):
    """One question's scores, each in [0, 1]: the max over its gold answers."""

    exact: float
    f1: float


@dataclass(frozen=True)
class SquadScores:
    """SQuAD v1.1 dataset scores in percent, over all ``total`` questions (``missing`` had no prediction)."""

    exact_match: float
    f1: float
    total: int
    missing: int


@dataclass(frozen=True)
class SquadV2Breakdown:
    """Exact and F1 in percent over ``total`` questions (the official ``make_eval_dict``)."""

    exact: float
    f1: float
    total: int


@dataclass(frozen=True)
class BestThresholds:
    """The official ``find_all_best_thresh`` results: best scores in percent and the na_prob thresholds."""

    best_exact: float
    best_exact_thresh: float
    best_f1: float
    best_f1_thresh: float


@dataclass(frozen=True)
class SquadV2Scores:
    """SQuAD v2.0 scores. ``has_ans``/``no_ans`` are None when the dataset has no such question (the official
    script omits them then); ``best`` is None unless no-answer probabilities were given."""

    overall: SquadV2Breakdown
    has_ans: SquadV2Breakdown | None
    no_ans: SquadV2Breakdown | None
    missing: int
    best: BestThresholds | None


class BestThreshold(NamedTuple):
    """One official ``find_best_thresh`` result: best score in percent and its na_prob threshold."""

    score: float
    thresh: float


@dataclass(frozen=True)
class LatencySummary:
    """Latency statistics in seconds; all zeros with ``n == 0`` for no samples."""

    n: int
    mean: float
    p50: float
    p95: float
    max: float


# ---------------------------------------------------------------- SQuAD v1.1


def normalize_answer(s: str) -> str:
    """Lower text and remove ASCII punctuation, the words a/an/the and extra whitespace (official order)."""
    text = s.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _token_f1(pred_tokens: Sequence[str], gold_tokens: Sequence[str]) -> float:
    common = Counter(pred_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:  # also covers empty token lists, which would otherwise divide by zero
        return 0.0
    # Same operation order as the official code, so sums agree bit for bit.
    precision = 1.0 * num_same / len(pred_tokens)
    recall = 1.0 * num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def f1_score(prediction: str, ground_truth: str) -> float:
    """Official v1.1 token F1; 0 when no token is shared (so two empty strings score 0, as in v1.1)."""
    return _token_f1(normalize_answer(prediction).split(), normalize_answer(ground_truth).split())


def exact_match_score(prediction: str, ground_truth: str) -> float:
    """Official v1.1 exact match: 1.0 when the normalized strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def metric_max_over_ground_truths(
    metric_fn: Callable[[str, str], float], prediction: str, ground_truths: Sequence[str]
) -> float:
    """The best ``metric_fn(prediction, gold)`` over the gold answers."""
    _check_answers(ground_truths, "ground_truths")
    if not ground_truths:
        raise ValueError("ground_truths is empty: SQuAD v1.1 needs at least one gold answer per question")
    return max(float(metric_fn(prediction, gold)) for gold in ground_truths)


def squad_v1_question_scores(prediction: str, ground_truths: Sequence[str]) -> QuestionScores:
    """One question's v1.1 (exact, f1), each the max over its gold answers."""
    return QuestionScores(
        exact=metric_max_over_ground_truths(exact_match_score, prediction, ground_truths),
        f1=metric_max_over_ground_truths(f1_score, prediction, ground_truths),
    )


def squad_v1_scores(dataset_qas: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> SquadScores:
    """Official v1.1 ``evaluate``: 100 x mean EM and F1 over all questions of ``dataset_qas``.

    A question without a prediction scores 0 but still counts in the total (the official script skips it
    and divides by the total). Predictions for ids not in ``dataset_qas`` are ignored.
    """
    _check_dataset(dataset_qas)
    exact = f1 = 0.0
    missing = 0
    for qid, golds in dataset_qas.items():
        prediction = _prediction(predictions, qid)
        if prediction is None:
            missing += 1
            continue
        scores = squad_v1_question_scores(prediction, golds)
        exact += scores.exact
        f1 += scores.f1
    total = len(dataset_qas)
    return SquadScores(exact_match=100.0 * exact / total, f1=100.0 * f1 / total, total=total, missing=missing)


# ---------------------------------------------------------------- SQuAD v2.0


def get_tokens(s: str) -> list[str]:
    """Official v2.0 tokens: the normalized answer split on whitespace; [] for an empty string."""
    if not s:
        return []
    return normalize_answer(s).split()


def compute_exact(a_gold: str, a_pred: str) -> int:
    """Official v2.0 exact match (gold first, as in the official signature)."""
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold: str, a_pred: str) -> float:
    """Official v2.0 F1: when either side has no tokens, 1.0 if both have none, else 0.0."""
    gold_toks = get_tokens(a_gold)
    pred_toks = get_tokens(a_pred)
    if not gold_toks or not pred_toks:
        return float(gold_toks == pred_toks)
    return _token_f1(pred_toks, gold_toks)


def squad_v2_gold_answers(answers: Sequence[str]) -> list[str]:
    """Gold answers as v2.0 scores them: drop those that normalize to empty; none left means ``[""]``."""
    _check_answers(answers, "answers")
    return [a for a in answers if normalize_answer(a)] or [""]


def squad_v2_question_scores(prediction: str, gold_answers: Sequence[str]) -> QuestionScores:
    """One question's raw v2.0 (exact, f1), before any no-answer threshold."""
    golds = squad_v2_gold_answers(gold_answers)
    return QuestionScores(
        exact=float(max(compute_exact(a, prediction) for a in golds)),
        f1=max(compute_f1(a, prediction) for a in golds),
    )


def apply_no_ans_threshold(
    scores: Mapping[str, float],
    na_probs: Mapping[str, float],
    qid_to_has_ans: Mapping[str, bool],
    na_prob_thresh: float,
) -> dict[str, float]:
    """Official: a question whose na_prob exceeds the threshold is answered "no answer" and scores
    1.0 if it has no gold answer, else 0.0."""
    new_scores: dict[str, float] = {}
    for qid, score in scores.items():
        if na_probs[qid] > na_prob_thresh:
            new_scores[qid] = float(not qid_to_has_ans[qid])
        else:
            new_scores[qid] = score
    return new_scores


def _best_thresh_count(
    preds: Mapping[str, str],
    scores: Mapping[str, float],
    na_probs: Mapping[str, float],
    qid_to_has_ans: Mapping[str, bool],
) -> tuple[float, float]:
    """The official sweep: start with every question answered "no answer", then answer them one by one in
    order of rising na_prob. Returns (best summed score, its threshold)."""
    cur_score: float = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
    best_score = cur_score
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):  # stable: ties keep mapping order, as official
        if qid not in scores:
            continue
        # Answering a NoAns question loses its point unless the prediction is empty. Official quirk: this
        # tests the raw prediction string, not its normalized form.
        cur_score += scores[qid] if qid_to_has_ans[qid] else (-1 if preds[qid] else 0)
        if cur_score > best_score:
            best_score = cur_score
            best_thresh = na_probs[qid]
    return best_score, best_thresh


def find_best_thresh(
    preds: Mapping[str, str],
    scores: Mapping[str, float],
    na_probs: Mapping[str, float],
    qid_to_has_ans: Mapping[str, bool],
) -> BestThreshold:
    """Official ``find_best_thresh``: best score in percent over ``scores`` and the na_prob giving it."""
    best_score, best_thresh = _best_thresh_count(preds, scores, na_probs, qid_to_has_ans)
    return BestThreshold(score=100.0 * best_score / len(scores), thresh=best_thresh)


def _breakdown(exact: Mapping[str, float], f1: Mapping[str, float], qids: Sequence[str]) -> SquadV2Breakdown:
    total = len(qids)
    return SquadV2Breakdown(
        exact=100.0 * sum(exact[k] for k in qids) / total,
        f1=100.0 * sum(f1[k] for k in qids) / total,
        total=total,
    )


def _best_thresholds(
    predictions: Mapping[str, str],
    raw: Mapping[str, QuestionScores],
    na_probs: Mapping[str, float],
    has_ans: Mapping[str, bool],
    total: int,
) -> BestThresholds:
    # Only answered questions take part in the sweep; missing ones stay at 0 but count in the total.
    answered_has_ans = {qid: has_ans[qid] for qid in raw}
    exact_raw = {qid: s.exact for qid, s in raw.items()}
    f1_raw = {qid: s.f1 for qid, s in raw.items()}
    best_exact, exact_thresh = _best_thresh_count(predictions, exact_raw, na_probs, answered_has_ans)
    best_f1, f1_thresh = _best_thresh_count(predictions, f1_raw, na_probs, answered_has_ans)
    return BestThresholds(
        best_exact=100.0 * best_exact / total,
        best_exact_thresh=exact_thresh,
        best_f1=100.0 * best_f1 / total,
        best_f1_thresh=f1_thresh,
    )


def squad_v2_scores(
    dataset_qas: Mapping[str, Sequence[str]],
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 1.0,
) -> SquadV2Scores:
    """Official v2.0 ``main``: overall, HasAns and NoAns scores; best thresholds when ``na_probs`` is given.

    A question is HasAns when its gold list is non-empty (before dropping answers that normalize to empty).
    ``na_probs`` must cover every answered question. A question without a prediction scores 0 at every
    threshold and counts in the totals (the official script cannot score that case; this extends the v1.1
    rule). With every question answered the numbers equal the official script's.
    """
    _check_dataset(dataset_qas)
    has_ans = {qid: bool(answers) for qid, answers in dataset_qas.items()}
    raw: dict[str, QuestionScores] = {}
    for qid, answers in dataset_qas.items():
        prediction = _prediction(predictions, qid)
        if prediction is not None:
            raw[qid] = squad_v2_question_scores(prediction, answers)
    probs = _checked_na_probs(na_probs, raw)
    # Missing questions are filled with 0.0 in dataset order: adding zeros keeps the official sums exact.
    exact = {qid: 0.0 for qid in dataset_qas} | apply_no_ans_threshold(
        {qid: s.exact for qid, s in raw.items()}, probs, has_ans, na_prob_thresh
    )
    f1 = {qid: 0.0 for qid in dataset_qas} | apply_no_ans_threshold(
        {qid: s.f1 for qid, s in raw.items()}, probs, has_ans, na_prob_thresh
    )
    has_ans_qids = [qid for qid, v in has_ans.items() if v]
    no_ans_qids = [qid for qid, v in has_ans.items() if not v]
    return SquadV2Scores(
        overall=_breakdown(exact, f1, list(dataset_qas)),
        has_ans=_breakdown(exact, f1, has_ans_qids) if has_ans_qids else None,
        no_ans=_breakdown(exact, f1, no_ans_qids) if no_ans_qids else None,
        missing=len(dataset_qas) - len(raw),
        best=None if na_probs is None else _best_thresholds(predictions, raw, probs, has_ans, len(dataset_qas)),
    )


def _checked_na_probs(na_probs: Mapping[str, float] | None, answered: Mapping[str, object]) -> dict[str, float]:
    if na_probs is None:  # official default: probability 0.0 for every prediction
        return {qid: 0.0 for qid in answered}
    lacking = [qid for qid in answered if qid not in na_probs]
    if lacking:
        raise ValueError(f"na_probs has no probability for {len(lacking)} answered question(s), e.g. {lacking[:3]}")
    return dict(na_probs)


# ---------------------------------------------------------------- argument checks


def _check_answers(answers: Sequence[str], name: str) -> None:
    # A bare string is a Sequence[str] too, and max() over its characters would silently score garbage.
    if isinstance(answers, str):
        raise TypeError(f"{name} must be a sequence of answer strings, got the string {answers!r}")


def _check_dataset(dataset_qas: Mapping[str, Sequence[str]]) -> None:
    if not dataset_qas:
        raise ValueError("dataset_qas is empty: there is nothing to score")
    for qid, answers in dataset_qas.items():
        if isinstance(answers, str):
            raise TypeError(f"gold answers for question {qid!r} must be a sequence of strings, got {answers!r}")


def _prediction(predictions: Mapping[str, str], qid: str) -> str | None:
    prediction = predictions.get(qid)
    if prediction is not None and not isinstance(prediction, str):
        raise TypeError(f"prediction for question {qid!r} must be a string, got {type(prediction).__name__}")
    return prediction


# ---------------------------------------------------------------- retrieval


def _first_relevant_rank(hits: Sequence[bool]) -> int | None:
    for rank, relevant in enumerate(hits, start=1):
        if relevant:
            return rank
    return None


def _first_ranks(ranked_hits: Sequence[Sequence[bool]]) -> list[int | None]:
    if len(ranked_hits) == 0:
        raise ValueError("ranked_hits is empty: there are no questions to score")
    return [_first_relevant_rank(hits) for hits in ranked_hits]


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def recall_at_k(ranked_hits: Sequence[Sequence[bool]], ks: Sequence[int] = (1, 3, 5, 10, 20)) -> dict[int, float]:
    """Percent of questions with a relevant result in the top k, for each k.

    ``ranked_hits[i][r]`` says whether question i's result at rank r + 1 is relevant.
    """
    for k in ks:
        _check_k(k)
    ranks = _first_ranks(ranked_hits)
    return {k: 100.0 * sum(1 for r in ranks if r is not None and r <= k) / len(ranks) for k in ks}


def mrr_at_k(ranked_hits: Sequence[Sequence[bool]], k: int = 10) -> float:
    """Mean reciprocal rank of the first relevant result, in [0, 1]; none in the top k adds 0."""
    _check_k(k)
    ranks = _first_ranks(ranked_hits)
    return sum(1.0 / r for r in ranks if r is not None and r <= k) / len(ranks)


def answer_in_text(answers: Sequence[str], text: str) -> bool:
    """Whether any answer occurs in ``text`` as whole tokens, both sides normalized as SQuAD answers.

    Containment is tested on the normalized strings padded with spaces, so "paris" matches "in paris france"
    but not "parisian". Answers that normalize to empty never match.
    """
    _check_answers(answers, "answers")
    padded_text = f" {normalize_answer(text)} "
    return any(norm and f" {norm} " in padded_text for norm in map(normalize_answer, answers))


# ---------------------------------------------------------------- cost


def latency_summary(seconds: Sequence[float]) -> LatencySummary:
    """Mean, median, 95th percentile (numpy linear interpolation) and max of latencies in seconds."""
    if len(seconds) == 0:
        return LatencySummary(n=0, mean=0.0, p50=0.0, p95=0.0, max=0.0)
    values = np.asarray(seconds, dtype=float)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("latencies must be finite and non-negative")
    p50, p95 = np.percentile(values, [50, 95])
    return LatencySummary(
        n=len(values), mean=float(values.mean()), p50=float(p50), p95=float(p95), max=float(values.max())
    )
