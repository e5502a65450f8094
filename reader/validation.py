"""Scoring a reader on held-out questions the way it will be used: each question reads its own paragraph
among up to `distractors` other paragraphs of the same article (those sharing the most words with it,
a stand-in for retrieval), so the no-answer calibration sees what deployment sees."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from eval.metrics import find_best_thresh, squad_v2_question_scores
from reader.calibration import NoAnswerCalibration, fit_calibration
from reader.model import SpanModel
from reader.squad_files import QAExample

_WORD = re.compile(r"\w+")


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def reading_contexts(examples: Sequence[QAExample], distractors: int) -> list[list[str]]:
    """Each example's paragraph first, then the article's other paragraphs that share most words with it."""
    by_title: dict[str, list[str]] = defaultdict(list)
    words: dict[str, set[str]] = {}
    for e in examples:
        if e.context not in by_title[e.title]:
            by_title[e.title].append(e.context)
        if e.context not in words:
            words[e.context] = _words(e.context)
    contexts = []
    for e in examples:
        asked = _words(e.question)
        others = [c for c in by_title[e.title] if c != e.context]
        others.sort(key=lambda c: len(asked & words[c]), reverse=True)
        contexts.append([e.context, *others[:distractors]])
    return contexts


ANSWER_RECALL = 0.95  # the default operating point: answer at least this share of answerable questions


def validate(model: SpanModel, examples: Sequence[QAExample], distractors: int) -> dict[str, Any]:
    """Best spans, a fitted no-answer calibration, and operating points on it: the threshold that maximises
    SQuAD 2.0 F1 on these questions (right where about half of all questions are unanswerable, as here), and
    those that still answer 90% / 95% of the answerable ones. The default is ANSWER_RECALL: most questions
    people ask of their own documents have answers, and the F1-best point abstains on four in five of them."""
    contexts = reading_contexts(examples, distractors)
    ranked = model.spans([e.question for e in examples], contexts)
    predictions, margins = {}, {}
    for e, texts, spans in zip(examples, contexts, ranked, strict=True):
        best = spans[0] if spans else None
        predictions[e.id] = texts[best.item][best.start : best.end] if best else ""
        margins[e.id] = best.margin if best else -math.inf
    has_ans = {e.id: not e.is_impossible for e in examples}
    golds = {e.id: [text for text, _ in e.answers] for e in examples}
    raw = {qid: squad_v2_question_scores(predictions[qid], golds[qid]) for qid in predictions}
    answerable = [qid for qid in raw if has_ans[qid]]
    result: dict[str, Any] = {
        "questions": len(examples),
        "unanswerable": len(examples) - len(answerable),
        "distractors": distractors,
        "has_ans_exact": 100.0 * sum(raw[q].exact for q in answerable) / max(1, len(answerable)),
        "has_ans_f1": 100.0 * sum(raw[q].f1 for q in answerable) / max(1, len(answerable)),
    }
    if len(answerable) in (0, len(examples)):
        result["calibration"] = NoAnswerCalibration(threshold=1.0).to_dict()
        return result
    fitted = fit_calibration([margins[q] for q in raw], [not has_ans[q] for q in raw])
    probs = {qid: fitted.probability(margins[qid]) for qid in raw}
    best = find_best_thresh(predictions, {q: s.f1 for q, s in raw.items()}, probs, has_ans)
    answerable_probs = sorted(probs[q] for q in answerable)

    def keeping(recall: float) -> float:
        """The threshold that still answers `recall` of the answerable questions."""
        return answerable_probs[min(len(answerable_probs) - 1, math.ceil(recall * len(answerable)) - 1)]

    no_ans = [q for q in raw if not has_ans[q]]
    result.update(
        calibration=NoAnswerCalibration(fitted.temperature, fitted.shift, keeping(ANSWER_RECALL)).to_dict(),
        best_f1=best.score,
        no_answer_auc=_auc([probs[q] for q in no_ans], [probs[q] for q in answerable]),
    )
    points = {"best_f1": best.thresh, "answer_recall_0.9": keeping(0.9), "answer_recall_0.95": keeping(0.95)}
    for name, threshold in points.items():
        abstained = {q for q in raw if probs[q] > threshold}
        answered_f1 = sum(raw[q].f1 for q in answerable if q not in abstained)
        result[f"at_{name}"] = {
            "threshold": threshold,
            "has_ans_f1": 100.0 * answered_f1 / len(answerable),
            "no_ans_accuracy": 100.0 * sum(q in abstained for q in no_ans) / len(no_ans),
            "f1": 100.0 * (answered_f1 + sum(q in abstained for q in no_ans)) / len(raw),
        }
    return result


def _auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """ROC AUC by ranks (Mann-Whitney U), ties counted half."""
    pairs = sorted([(p, 1) for p in positives] + [(n, 0) for n in negatives])
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        average = (i + j + 1) / 2
        rank_sum += average * sum(label for _, label in pairs[i:j])
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
