"""Long-form answer scores: ROUGE-L and BLEU pinned to rouge-score and sacrebleu called directly, golden values
worked out by hand, and groundedness on constructed answers, citations and result rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from eval import longform as lf
from eval.report import compute_metrics
from index import Passage
from rag.types import Answer, Citation

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

# (prediction, references): sentence answers against SQuAD-style references, with stemming, case, repeats.
CASES = [
    ("The cats were running", ["a cat runs"]),
    ("Denver Broncos", ["Denver Broncos", "Denver Broncos", "The Denver Broncos"]),
    (
        "The Broncos defeated the Panthers 24-10 to earn their third Super Bowl title.",
        ["The Denver Broncos defeated the Carolina Panthers 24–10 to earn their third Super Bowl title.", "Broncos"],
    ),
    ("Santa Clara, California", ["Levi's Stadium in the San Francisco Bay Area at Santa Clara, California.", "x"]),
    ("nothing in common", ["completely different words"]),
    ("", ["an answer"]),
]


def reference_rouge(prediction: str, references: list[str]) -> float:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return max(scorer.score(ref, prediction)["rougeL"].fmeasure for ref in references)


@pytest.mark.parametrize(("prediction", "references"), CASES)
def test_row_scores_are_the_libraries_own(prediction: str, references: list[str]) -> None:
    scores = lf.row_scores(prediction, references)
    assert scores.rouge_l == pytest.approx(reference_rouge(prediction, references), abs=1e-12)
    assert scores.bleu == pytest.approx(sacrebleu.sentence_bleu(prediction, references).score, abs=1e-9)


def test_golden_values() -> None:
    sentence = "The Broncos won Super Bowl 50 in Santa Clara."
    assert lf.rouge_l(sentence, [sentence]) == pytest.approx(1.0)
    assert lf.sentence_bleu(sentence, [sentence]) == pytest.approx(100.0)
    assert lf.corpus_bleu([sentence], [[sentence]]) == pytest.approx(100.0)
    # Stemmed tokens: reference [the, cat, were, run], prediction [a, cat, run]; LCS 2, P 2/3, R 2/4.
    assert lf.rouge_l("a cat runs", ["The cats were running"]) == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    # The best reference: [a, cat, is, run] against [a, cat, run]; LCS 3, P 1, R 3/4.
    assert lf.rouge_l("a cat runs", ["The cats were running", "A cat is running"]) == pytest.approx(6 / 7)
    assert lf.rouge_l("", ["an answer"]) == 0.0
    assert lf.sentence_bleu("zebra", ["an answer"]) == 0.0


def test_corpus_bleu_with_a_varying_number_of_references() -> None:
    predictions = [p for p, _ in CASES]
    references = [refs for _, refs in CASES]
    width = max(map(len, references))
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    expected = sacrebleu.corpus_bleu(predictions, streams).score
    assert lf.corpus_bleu(predictions, references) == pytest.approx(expected, abs=1e-9)
    # Filling the gaps by repeating a reference changes nothing: BLEU takes the max count over references.
    repeated = [[refs[min(i, len(refs) - 1)] for refs in references] for i in range(width)]
    assert lf.corpus_bleu(predictions, references) == pytest.approx(sacrebleu.corpus_bleu(predictions, repeated).score)
    with pytest.raises(ValueError, match="at least one reference"):
        lf.corpus_bleu(["a"], [[]])


def test_groundedness_counts_normalized_answer_tokens_found_in_cited_text() -> None:
    passage = "Paris is home to the Eiffel Tower, finished 1889."
    # Normalized answer tokens: eiffel, tower, is, in, paris; "in" is not in the passage (a/an/the are dropped).
    assert lf.groundedness("The Eiffel Tower is in Paris.", [passage]) == pytest.approx(4 / 5)
    assert lf.groundedness("Eiffel Tower, 1889!", [passage]) == 1.0
    assert lf.groundedness("paris paris london", [passage]) == pytest.approx(2 / 3)  # every occurrence counts
    assert lf.groundedness("It was built in 1889.", ["other text", passage]) == pytest.approx(1 / 5)
    assert lf.groundedness("Eiffel Tower", []) == 0.0  # cites nothing
    assert lf.groundedness("The", [passage]) is None  # no token left after normalization


def passage(chunk_id: int, text: str) -> Passage:
    return Passage(chunk_id, chunk_id, f"doc{chunk_id}.txt", "", text, 0, len(text), 0, "default", {}, 1.0)


def cite(number: int, chunk_id: int) -> Citation:
    return Citation(number, chunk_id, chunk_id, f"doc{chunk_id}.txt", "", 0, 5, "quote")


def test_cited_texts_are_the_whole_cited_passages() -> None:
    context = [passage(7, "first passage text"), passage(9, "second passage text")]
    answer = Answer("q?", "second", [cite(2, 9)], context, {})
    assert lf.cited_texts(answer, context) == ["second passage text"]
    wrong_chunk = Answer("q?", "second", [cite(2, 7), cite(3, 9)], context, {})
    assert lf.cited_texts(wrong_chunk, context) == []  # a number that does not point at its chunk counts for nothing


def test_metrics_over_constructed_rows() -> None:
    rows = [
        {"id": "1", "prediction": "The Broncos won.", "golds": ["The Broncos won."], "groundedness": 1.0},
        {
            "id": "2",
            "prediction": "It rained in Paris.",
            "golds": ["It was sunny in Paris.", "sunny"],
            "groundedness": 0.5,
        },
        {"id": "3", "prediction": "", "golds": ["an answer"], "abstained": True, "groundedness": None},
        {"id": "4", "prediction": None, "golds": ["retrieval only"], "groundedness": None},
    ]
    base = {"exact": 0.0, "f1": 0.0, "abstained": False, "answer_in_context": True, "latency": {}, "hits": None}
    rows = [{**base, **row} for row in rows]
    metrics = compute_metrics(rows, v2=False)
    answered = rows[:3]
    rouge = [reference_rouge(r["prediction"], r["golds"]) for r in answered]
    assert metrics["rouge_l"] == pytest.approx(100 * sum(rouge) / 3)
    expected_bleu = sacrebleu.corpus_bleu(
        [r["prediction"] for r in answered],
        [["The Broncos won.", "It was sunny in Paris.", "an answer"], [None, "sunny", None]],
    ).score
    assert metrics["bleu"] == pytest.approx(expected_bleu)
    assert metrics["groundedness"] == pytest.approx(75.0)  # rows 1 and 2; the abstention holds none
    assert metrics["grounded_questions"] == 2


NO_NETWORK = """
import socket
def refuse(*args, **kwargs):
    raise OSError("network refused by the test")
socket.socket.connect = socket.socket.connect_ex = socket.create_connection = socket.getaddrinfo = refuse
from eval.longform import rouge_l
print(rouge_l("cats running", ["The cat runs"]))
"""


def test_rouge_needs_no_network_and_no_nltk_data(tmp_path: Path) -> None:
    env = {**os.environ, "NLTK_DATA": str(tmp_path)}  # an empty nltk data folder: nothing to find, nothing fetched
    done = subprocess.run([sys.executable, "-c", NO_NETWORK], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(0.8)
    assert list(tmp_path.iterdir()) == []
