"""Scores for answers longer than a SQuAD phrase: ROUGE-L, BLEU and groundedness.

ROUGE-L is Google's ``rouge-score`` (the F-measure, Porter stemming, the best reference); BLEU is ``sacrebleu``
(corpus BLEU over every reference, sentence BLEU for one row). Neither is re-implemented here, so the numbers
are the libraries' own. Groundedness is ours, defined on ``groundedness``.

Per-row scores are fractions in [0, 1] like the rows' ``exact`` and ``f1``, except sentence BLEU, which keeps
sacrebleu's 0-100 scale; dataset metrics are all percentages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from eval.metrics import normalize_answer
from index import Passage
from rag.types import Answer


class RowScores(NamedTuple):
    """One answer against its references; both None when the question has no reference answer."""

    rouge_l: float | None  # ROUGE-L F-measure in [0, 1], the max over references
    bleu: float | None  # sentence BLEU in [0, 100] against all references


@lru_cache(maxsize=1)
def _rouge() -> Any:  # noqa: ANN401 - rouge_score.rouge_scorer.RougeScorer, imported lazily
    # Plain rougeL never calls nltk's sentence splitter, so no nltk data is needed (nothing is downloaded).
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, references: Sequence[str]) -> float:
    """ROUGE-L F-measure of ``prediction`` against its best reference (rouge-score's ``score_multi``)."""
    if not references:
        raise ValueError("rouge_l needs at least one reference")
    return float(_rouge().score_multi(list(references), prediction)["rougeL"].fmeasure)


def sentence_bleu(prediction: str, references: Sequence[str]) -> float:
    """sacrebleu's sentence BLEU (exponential smoothing, effective order) against all references, 0-100."""
    import sacrebleu

    if not references:
        raise ValueError("sentence_bleu needs at least one reference")
    return float(sacrebleu.sentence_bleu(prediction, list(references)).score)


def corpus_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """sacrebleu's corpus BLEU, 0-100. Rows may have different numbers of references: sacrebleu takes one
    stream per reference position, and a row with fewer references fills its gaps with None."""
    import sacrebleu

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists")
    if not predictions:
        raise ValueError("corpus_bleu needs at least one prediction")
    if any(not refs for refs in references):
        raise ValueError("every prediction needs at least one reference")
    width = max(len(refs) for refs in references)
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    return float(sacrebleu.corpus_bleu(list(predictions), streams).score)


def row_scores(prediction: str, references: Sequence[str]) -> RowScores:
    if not references:
        return RowScores(None, None)
    distinct = _distinct(references)
    return RowScores(rouge_l(prediction, distinct), sentence_bleu(prediction, distinct))


# ---------------------------------------------------------------- groundedness


def groundedness(answer: str, cited: Sequence[str]) -> float | None:
    """The share of the answer's tokens found in the text it cites.

    Tokens are SQuAD-normalized words (``eval.metrics.normalize_answer``: lower case, ASCII punctuation and
    the words a/an/the removed, split on whitespace), on both sides. Every occurrence of a token in the answer
    counts; it is grounded when the same token occurs anywhere in any of the ``cited`` texts. So 1.0 means
    every word of the answer appears in its cited passages (an extractive span always scores 1.0), 0.0 that
    none does, and an answer citing nothing scores 0.0. None when the answer has no token at all.
    """
    tokens = normalize_answer(answer).split()
    if not tokens:
        return None
    available = {token for text in cited for token in normalize_answer(text).split()}
    return sum(token in available for token in tokens) / len(tokens)


def cited_texts(answer: Answer, context: Sequence[Passage]) -> list[str]:
    """The whole text of every passage the answer cites. A citation's ``number`` is its passage's 1-based
    place in the context the reader read; the chunk id must agree, or the citation is not counted."""
    texts = []
    for citation in answer.citations:
        index = citation.number - 1
        if 0 <= index < len(context) and context[index].chunk_id == citation.chunk_id:
            texts.append(context[index].text)
    return texts


# ---------------------------------------------------------------- dataset metrics


def longform_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """ROUGE-L (mean, %) and corpus BLEU over answered rows that have references (an abstention is the empty
    answer, as in EM/F1), and groundedness (mean, %) over rows that hold one. A row's stored ROUGE-L is used;
    a row stored before the field existed is scored from its prediction and golds."""
    out: dict[str, float] = {}
    scored = [row for row in rows if row.get("prediction") is not None and row.get("golds")]
    if scored:
        predictions = [str(row["prediction"]) for row in scored]
        references = [_distinct(row["golds"]) for row in scored]
        rouge = [
            row["rouge_l"] if row.get("rouge_l") is not None else rouge_l(prediction, refs)
            for row, prediction, refs in zip(scored, predictions, references, strict=True)
        ]
        out["rouge_l"] = 100.0 * sum(rouge) / len(rouge)
        out["bleu"] = corpus_bleu(predictions, references)
    grounded = [float(row["groundedness"]) for row in rows if row.get("groundedness") is not None]
    if grounded:
        out["groundedness"] = 100.0 * sum(grounded) / len(grounded)
        out["grounded_questions"] = len(grounded)
    return out


def _distinct(golds: Sequence[str]) -> list[str]:
    """SQuAD repeats a gold answer once per annotator; the scores take the max or the union, so one copy is
    enough and keeps sacrebleu's reference streams short."""
    return list(Counter(golds))
