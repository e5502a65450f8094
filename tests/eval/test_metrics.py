"""Golden tests for eval.metrics: SQuAD scores pinned to the official scripts, plus retrieval and latency cases.

The reference is ``official_squad.py`` next to this file: copies of the official evaluate-v1.1.py and
evaluate-v2.0.py functions. Edge cases are compared one by one; the full dev sets are compared with seeded,
deterministic perturbations of the gold answers as predictions.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import official_squad as ref
import pytest

from eval import metrics as m

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SQUAD_DIR = REPO.parent / "shared" / "data" / "squad"
TOL = 1e-9

# (prediction, gold) pairs that stress normalization and token F1.
EDGE_PAIRS = [
    ("The Eiffel Tower", "eiffel tower"),
    ("theatre", "the atre"),
    ("theatre", "atre"),
    ("answer", "an swer"),
    ("an answer", "answer"),
    ("Another", "other"),
    ("THE", ""),
    ("a", "an"),
    ("(the)", ""),
    ("an-the", "anthe"),
    ("the's", "thes"),
    ("", ""),
    ("", "Paris"),
    ("Paris", ""),
    ("...", ""),
    ("U.S.", "US"),
    ("1,000", "1000"),
    ("1 000", "1000"),
    ("3.14", "314"),
    ("1990s", "the 1990s"),
    ("em\u2014dash", "em dash"),
    ("em\u2013dash", "emdash"),
    ("\u201cquoted\u201d", "quoted"),
    ("\u2018single\u2019", "single"),
    ("it\u2019s", "its"),
    ("it's", "its"),
    ("x-ray", "xray"),
    ("x-ray", "x ray"),
    ("na\u00efve caf\u00e9", "naive cafe"),
    ("\u00dcber", "\u00fcber"),
    ("\u0130stanbul", "istanbul"),
    ("non\u00a0breaking", "non breaking"),
    ("  spaced\tout\nanswer ", "spaced out answer"),
    ("the the the", "the"),
    ("cat cat cat", "cat"),
    ("cat cat", "cat"),
    ("a a b b", "a b b c"),
    ("b b c", "b c c"),
    ("one two three", "three two one"),
    ("New York City", "new york"),
]


def _as_squad(qas: Mapping[str, Sequence[str]]) -> list[dict]:
    """A one-paragraph SQuAD ``data`` list holding the given questions, for the reference scripts."""
    questions = [{"id": qid, "answers": [{"text": t} for t in answers]} for qid, answers in qas.items()]
    return [{"title": "t", "paragraphs": [{"context": "", "qas": questions}]}]


def _qas(data: list[dict]) -> dict[str, list[str]]:
    return {
        qa["id"]: [a["text"] for a in qa["answers"]]
        for article in data
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    }


def _load(name: str) -> list[dict]:
    path = SQUAD_DIR / name
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return json.loads(path.read_text(encoding="utf-8"))["data"]


@pytest.fixture(scope="module")
def dev_v1() -> list[dict]:
    return _load("dev-v1.1.json")


@pytest.fixture(scope="module")
def dev_v2() -> list[dict]:
    return _load("dev-v2.0.json")


# ---------------------------------------------------------------- perturbed predictions

_EXTRA_WORDS = ("the", "a", "an", "in", "of", "city", "1990", "Answer", "and")
_PUNCT = (".", ",", "!", "?", '"', "'", "(", ")", "-", ";", ":", "$", "%")
_UNICODE = ("\u2014", "\u2013", "\u201c", "\u201d", "\u2019", "\u00a0", "\u00e9", "\u2026")
_NEAR_EMPTY = (".", " ", "the", "a.", "An!", "\u2014", "")


def _add_words(rng: random.Random, words: list[str]) -> list[str]:
    out = list(words)
    for _ in range(rng.randint(1, 3)):
        out.insert(rng.randint(0, len(out)), rng.choice(_EXTRA_WORDS))
    return out


def _perturb(rng: random.Random, golds: Sequence[str], pool: Sequence[str]) -> str | None:
    """A deterministic (given ``rng``) prediction near one of ``golds``; None means no prediction."""
    gold = rng.choice(golds) if golds else ""
    words = gold.split()
    kind = rng.randrange(13)
    variants = {
        0: lambda: gold,
        1: lambda: None,
        2: lambda: "",
        3: lambda: " ".join(words[: rng.randint(0, max(len(words) - 1, 0))]),
        4: lambda: " ".join(words[1:]),
        5: lambda: " ".join(_add_words(rng, words)),
        6: lambda: rng.choice(_PUNCT) + gold + rng.choice(_PUNCT) * rng.randint(1, 2),
        7: lambda: rng.choice(pool),
        8: lambda: "  ".join(w.upper() if rng.random() < 0.5 else w for w in words) + "\t",
        9: lambda: " ".join(words + words[:1]),
        10: lambda: rng.choice(_UNICODE).join(words) if len(words) > 1 else gold + rng.choice(_UNICODE),
        11: lambda: rng.choice(_NEAR_EMPTY),
        12: lambda: gold.replace(" ", rng.choice(_PUNCT), 1),
    }
    return variants[kind]()


def _predictions(qas: Mapping[str, Sequence[str]], seed: int, allow_missing: bool) -> dict[str, str]:
    rng = random.Random(seed)
    pool = [a for answers in qas.values() for a in answers] or ["x"]
    preds: dict[str, str] = {}
    for qid, golds in qas.items():
        pred = _perturb(rng, golds, pool)
        if pred is None and not allow_missing:
            pred = rng.choice(pool)
        if pred is not None:
            preds[qid] = pred
    return preds


def _na_probs(qids: Sequence[str], seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    # Two-decimal values give many ties, which exercise the sweep's stable ordering.
    return {qid: round(rng.random(), 2) if rng.random() < 0.5 else rng.random() for qid in qids}


# ---------------------------------------------------------------- normalization and per-pair scores


@pytest.mark.parametrize(("prediction", "gold"), EDGE_PAIRS)
def test_pair_scores_match_official(prediction: str, gold: str) -> None:
    for text in (prediction, gold):
        assert m.normalize_answer(text) == ref.v1_normalize_answer(text) == ref.v2_normalize_answer(text)
        assert m.get_tokens(text) == ref.get_tokens(text)
    assert m.exact_match_score(prediction, gold) == float(ref.v1_exact_match_score(prediction, gold))
    assert m.f1_score(prediction, gold) == ref.v1_f1_score(prediction, gold)
    assert m.compute_exact(gold, prediction) == ref.compute_exact(gold, prediction)
    assert m.compute_f1(gold, prediction) == ref.compute_f1(gold, prediction)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("theatre answer", "theatre answer"),
        ("An apple, a pear and THE plum.", "apple pear and plum"),
        ("em\u2014dash \u201cquoted\u201d", "em\u2014dash \u201cquoted\u201d"),
        ("U.S.-born", "usborn"),
        ("  a\tb\n c ", "b c"),
        ("", ""),
    ],
)
def test_normalize_answer_values(text: str, expected: str) -> None:
    assert m.normalize_answer(text) == expected


def test_f1_values() -> None:
    assert m.f1_score("cat cat", "cat") == pytest.approx(2 / 3)
    assert m.f1_score("a cat", "the cat") == 1.0
    assert m.f1_score("", "") == 0.0  # v1.1 has no empty special case
    assert m.compute_f1("", "") == 1.0  # v2.0 does
    assert m.compute_f1("the", "") == 1.0  # "the" has no tokens after normalization
    assert m.compute_f1("Paris", "") == 0.0
    assert m.exact_match_score("", "") == 1.0


def test_question_scores_take_max_over_golds() -> None:
    assert m.squad_v1_question_scores("Paris", ["London", "paris."]) == (1.0, 1.0)
    scores = m.squad_v1_question_scores("the dog barks", ["a cat", "dog"])
    assert scores.exact == 0.0
    assert scores.f1 == pytest.approx(2 / 3)
    assert m.squad_v2_gold_answers(["the", ".", "Rome"]) == ["Rome"]
    assert m.squad_v2_gold_answers(["the", "."]) == [""]
    assert m.squad_v2_question_scores("", ["the", "."]) == (1.0, 1.0)
    assert m.squad_v2_question_scores("the", []) == (1.0, 1.0)  # "the" has no tokens: a no-answer


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="sequence"):
        m.squad_v1_question_scores("Paris", "Paris")
    with pytest.raises(ValueError, match="empty"):
        m.squad_v1_question_scores("Paris", [])
    with pytest.raises(ValueError, match="empty"):
        m.squad_v1_scores({}, {})
    with pytest.raises(TypeError, match="'q1'"):
        m.squad_v1_scores({"q1": "Paris"}, {"q1": "Paris"})
    with pytest.raises(TypeError, match="'q1'"):
        m.squad_v2_scores({"q1": ["Paris"]}, {"q1": 3})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="na_probs"):
        m.squad_v2_scores({"q1": ["Paris"], "q2": []}, {"q1": "x", "q2": ""}, na_probs={"q1": 0.5})


# ---------------------------------------------------------------- dataset scores, small


def test_v1_small_dataset() -> None:
    qas = {"q1": ["Paris"], "q2": ["a dog", "dog"], "q3": ["x"]}
    preds = {"q1": "paris", "q2": "the dog barks", "q4": "ignored"}
    scores = m.squad_v1_scores(qas, preds)
    assert scores == m.SquadScores(exact_match=100 / 3, f1=100 * (1 + 2 / 3) / 3, total=3, missing=1)
    official = ref.v1_evaluate(_as_squad(qas), preds)
    assert scores.exact_match == official["exact_match"]
    assert scores.f1 == official["f1"]


def test_v2_small_dataset_with_threshold() -> None:
    qas = {"a": ["Paris"], "b": [], "c": ["."]}  # c is HasAns, but its only gold normalizes to empty
    preds = {"a": "Paris", "b": "", "c": ""}
    na_probs = {"a": 0.9, "b": 0.8, "c": 0.1}
    scores = m.squad_v2_scores(qas, preds, na_probs=na_probs, na_prob_thresh=0.5)
    assert scores.overall == m.SquadV2Breakdown(exact=200 / 3, f1=200 / 3, total=3)
    assert scores.has_ans == m.SquadV2Breakdown(exact=50.0, f1=50.0, total=2)
    assert scores.no_ans == m.SquadV2Breakdown(exact=100.0, f1=100.0, total=1)
    assert scores.missing == 0
    _assert_v2_equal(scores, ref.v2_evaluate(_as_squad(qas), preds, na_probs, 0.5))


def test_v2_optional_parts() -> None:
    scores = m.squad_v2_scores({"a": ["Paris"]}, {"a": "paris"})
    assert scores.no_ans is None
    assert scores.best is None
    assert scores.has_ans == scores.overall == m.SquadV2Breakdown(exact=100.0, f1=100.0, total=1)
    only_no_ans = m.squad_v2_scores({"b": []}, {})
    assert only_no_ans.has_ans is None
    assert only_no_ans.overall == m.SquadV2Breakdown(exact=0.0, f1=0.0, total=1)
    assert only_no_ans.missing == 1


def test_find_best_thresh_official_quirk() -> None:
    # "." normalizes to empty, so it scores 1 on a NoAns question, yet the sweep counts it as an answer.
    qas = {"h": ["Rome"], "n": []}
    preds = {"h": "Rome", "n": "."}
    na_probs = {"h": 0.3, "n": 0.6}
    scores = m.squad_v2_scores(qas, preds, na_probs=na_probs)
    assert scores.overall.exact == 100.0
    assert scores.best == m.BestThresholds(best_exact=100.0, best_exact_thresh=0.3, best_f1=100.0, best_f1_thresh=0.3)
    _assert_v2_equal(scores, ref.v2_evaluate(_as_squad(qas), preds, na_probs))
    raw = {"h": 1.0, "n": 1.0}
    assert m.find_best_thresh(preds, raw, na_probs, {"h": True, "n": False}) == (100.0, 0.3)


def test_apply_no_ans_threshold() -> None:
    out = m.apply_no_ans_threshold(
        {"h": 0.5, "n": 0.0}, {"h": 0.7, "n": 0.7}, {"h": True, "n": False}, na_prob_thresh=0.5
    )
    assert out == {"h": 0.0, "n": 1.0}


# ---------------------------------------------------------------- dataset scores, full dev sets


@pytest.mark.parametrize("seed", [11, 12])
def test_v1_dev_set_matches_official(dev_v1: list[dict], seed: int) -> None:
    qas = _qas(dev_v1)
    assert len(qas) == 10_570
    preds = _predictions(qas, seed, allow_missing=True)
    assert 0 < len(qas) - len(preds) < len(qas) // 5
    scores = m.squad_v1_scores(qas, preds)
    official = ref.v1_evaluate(dev_v1, preds)
    assert scores.exact_match == pytest.approx(official["exact_match"], abs=TOL, rel=0)
    assert scores.f1 == pytest.approx(official["f1"], abs=TOL, rel=0)
    assert (scores.total, scores.missing) == (len(qas), len(qas) - len(preds))
    assert 10 < scores.exact_match < scores.f1 < 90  # the perturbations make a real spread


def test_v1_gold_predictions_score_100(dev_v1: list[dict]) -> None:
    preds = {qid: answers[0] for qid, answers in _qas(dev_v1).items()}
    scores = m.squad_v1_scores(_qas(dev_v1), preds)
    assert (scores.exact_match, scores.f1) == (100.0, 100.0)


def test_v1_per_question_matches_official(dev_v1: list[dict]) -> None:
    qas = _qas(dev_v1)
    preds = _predictions(qas, 13, allow_missing=False)
    for qid, golds in qas.items():
        ours = m.squad_v1_question_scores(preds[qid], golds)
        assert ours.exact == float(ref.v1_metric_max_over_ground_truths(ref.v1_exact_match_score, preds[qid], golds))
        assert ours.f1 == ref.v1_metric_max_over_ground_truths(ref.v1_f1_score, preds[qid], golds)


def _assert_v2_equal(scores: m.SquadV2Scores, official: Mapping[str, float], scale: float = 1.0) -> None:
    """Compare with the official dict; ``scale`` converts our percentages to the official denominators."""
    parts = {"": scores.overall, "HasAns_": scores.has_ans, "NoAns_": scores.no_ans}
    for prefix, part in parts.items():
        if part is None:
            assert f"{prefix}total" not in official
            continue
        part_scale = scale if prefix == "" else 1.0
        assert part.exact * part_scale == pytest.approx(official[f"{prefix}exact"], abs=TOL, rel=0)
        assert part.f1 * part_scale == pytest.approx(official[f"{prefix}f1"], abs=TOL, rel=0)
    if scores.best is None:
        assert "best_exact" not in official
        return
    assert scores.best.best_exact * scale == pytest.approx(official["best_exact"], abs=TOL, rel=0)
    assert scores.best.best_f1 * scale == pytest.approx(official["best_f1"], abs=TOL, rel=0)
    assert scores.best.best_exact_thresh == official["best_exact_thresh"]
    assert scores.best.best_f1_thresh == official["best_f1_thresh"]


@pytest.mark.parametrize(("seed", "thresh"), [(21, 1.0), (22, 0.5), (23, 0.0)])
def test_v2_dev_set_matches_official(dev_v2: list[dict], seed: int, thresh: float) -> None:
    qas = _qas(dev_v2)
    assert len(qas) == 11_873
    preds = _predictions(qas, seed, allow_missing=False)
    na_probs = _na_probs(list(qas), seed)
    scores = m.squad_v2_scores(qas, preds, na_probs=na_probs, na_prob_thresh=thresh)
    official = ref.v2_evaluate(dev_v2, preds, na_probs, thresh)
    assert (scores.overall.total, scores.has_ans.total, scores.no_ans.total) == (11_873, 5_928, 5_945)
    _assert_v2_equal(scores, official)
    plain = m.squad_v2_scores(qas, preds)
    _assert_v2_equal(plain, ref.v2_evaluate(dev_v2, preds))


def _without(data: list[dict], keep: set[str]) -> list[dict]:
    """A copy of a SQuAD ``data`` list holding only the questions in ``keep``."""
    return [
        {"paragraphs": [{"qas": [qa for qa in p["qas"] if qa["id"] in keep]} for p in article["paragraphs"]]}
        for article in data
    ]


def test_v2_dev_set_missing_predictions_score_zero(dev_v2: list[dict]) -> None:
    # The official script crashes on missing predictions; ours scores them 0 at every threshold. That equals
    # the official score on the answered questions, rescaled to the full question count.
    qas = _qas(dev_v2)
    preds = _predictions(qas, 31, allow_missing=True)
    na_probs = _na_probs(list(qas), 31)
    scores = m.squad_v2_scores(qas, preds, na_probs=na_probs, na_prob_thresh=0.4)
    assert scores.missing == len(qas) - len(preds) > 0
    answered = _without(dev_v2, set(preds))
    official = ref.v2_evaluate(answered, preds, na_probs, 0.4)
    _assert_v2_equal_rescaled(scores, official, qas, set(preds))


def _assert_v2_equal_rescaled(
    scores: m.SquadV2Scores, official: Mapping[str, float], qas: Mapping[str, Sequence[str]], answered: set[str]
) -> None:
    _assert_v2_equal(
        m.SquadV2Scores(
            overall=scores.overall,
            has_ans=_rescaled(scores.has_ans, sum(1 for q in answered if qas[q])),
            no_ans=_rescaled(scores.no_ans, sum(1 for q in answered if not qas[q])),
            missing=scores.missing,
            best=scores.best,
        ),
        official,
        scale=len(qas) / len(answered),
    )


def _rescaled(part: m.SquadV2Breakdown | None, answered: int) -> m.SquadV2Breakdown | None:
    if part is None:
        return None
    factor = part.total / answered
    return m.SquadV2Breakdown(exact=part.exact * factor, f1=part.f1 * factor, total=answered)


# ---------------------------------------------------------------- retrieval

RANKED = [
    [False, True, False],  # first relevant at rank 2
    [True],  # rank 1
    [False, False, False, False, True],  # rank 5
    [],  # nothing retrieved
    [False] * 25,  # nothing relevant
]


def test_recall_at_k() -> None:
    assert m.recall_at_k(RANKED) == {1: 20.0, 3: 40.0, 5: 60.0, 10: 60.0, 20: 60.0}
    assert m.recall_at_k([[False, True, True]], ks=(1, 2)) == {1: 0.0, 2: 100.0}


def test_mrr_at_k() -> None:
    assert m.mrr_at_k(RANKED) == pytest.approx((1 / 2 + 1 + 1 / 5) / 5)
    assert m.mrr_at_k(RANKED, k=3) == pytest.approx((1 / 2 + 1) / 5)
    assert m.mrr_at_k(RANKED, k=1) == pytest.approx(0.2)
    assert m.mrr_at_k([[False, True, True]]) == 0.5  # only the first relevant result counts


@pytest.mark.parametrize("bad_k", [0, -1, 1.5, True])
def test_retrieval_rejects_bad_k(bad_k: object) -> None:
    with pytest.raises(ValueError, match="k must be"):
        m.recall_at_k(RANKED, ks=(1, bad_k))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        m.mrr_at_k(RANKED, k=bad_k)  # type: ignore[arg-type]


def test_retrieval_rejects_no_questions() -> None:
    with pytest.raises(ValueError, match="empty"):
        m.recall_at_k([])
    with pytest.raises(ValueError, match="empty"):
        m.mrr_at_k([])


@pytest.mark.parametrize(
    ("answers", "text", "expected"),
    [
        (["Paris"], "He lives in Paris, France.", True),
        (["paris"], "Parisian food", False),
        (["The Louvre"], "the louvre museum", True),
        (["London", "Paris"], "paris", True),
        (["New York"], "new  york city", True),
        (["york new"], "new york", False),
        (["U.S."], "born in the US", True),
        (["em\u2014dash"], "an em dash", False),
        ([""], "anything", False),
        (["."], "...", False),
        ([], "anything", False),
    ],
)
def test_answer_in_text(answers: list[str], text: str, expected: bool) -> None:
    assert m.answer_in_text(answers, text) is expected


def test_answer_in_text_rejects_bare_string() -> None:
    with pytest.raises(TypeError):
        m.answer_in_text("Paris", "Paris")


# ---------------------------------------------------------------- latency


def test_latency_summary() -> None:
    summary = m.latency_summary([4.0, 1.0, 3.0, 2.0])
    assert summary.n == 4
    assert summary.mean == 2.5
    assert summary.p50 == 2.5
    assert summary.p95 == pytest.approx(3.85)  # linear: 1 + 0.95 * 3
    assert summary.max == 4.0
    assert m.latency_summary([0.5]) == m.LatencySummary(n=1, mean=0.5, p50=0.5, p95=0.5, max=0.5)


def test_latency_summary_empty() -> None:
    assert m.latency_summary([]) == m.LatencySummary(n=0, mean=0.0, p50=0.0, p95=0.0, max=0.0)


@pytest.mark.parametrize("bad", [[1.0, -0.1], [float("nan")], [float("inf")]])
def test_latency_summary_rejects_bad_values(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="finite"):
        m.latency_summary(bad)
