"""Evaluation runs end to end through `rag eval`, with the real packaged embedder and generator, on a small
slice of the SQuAD v1.1 dev set (first two articles, 15 paragraphs): files, official scores, the SQL record,
list/compare, resuming, bad input and the JSONL format."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from eval.metrics import squad_v1_scores
from eval.report import OUTPUT_FILES

pytestmark = pytest.mark.integration

SQUAD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "squad" / "dev-v1.1.json"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def transformers_backend() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAG_BACKEND", "transformers")
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("RAG_MAX_NEW_TOKENS", "12")  # SQuAD answers are short; this bounds the slowest batch on CPU
        yield


@pytest.fixture(scope="module")
def small_squad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SQUAD.is_file():
        pytest.skip(f"SQuAD dev set missing: {SQUAD}")
    articles = json.loads(SQUAD.read_text(encoding="utf-8"))["data"][:2]
    data = [{"title": a["title"], "paragraphs": a["paragraphs"][:n]} for a, n in zip(articles, (8, 7), strict=True)]
    path = tmp_path_factory.mktemp("data") / "small-dev.json"
    path.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("evalstore")


def rag(*args: str | Path) -> Result:
    from rag.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def eval_squad(data: Path, store: Path, *args: str) -> Result:
    return rag("eval", "squad", "--data", data, "--store", store, "--no-progress", *args)


def squad_golds(path: Path) -> dict[str, list[str]]:
    obj = json.loads(path.read_text(encoding="utf-8"))
    return {
        qa["id"]: [a["text"] for a in qa["answers"]]
        for article in obj["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    }


def sql(store: Path, query: str, *params: object) -> list[tuple]:
    with sqlite3.connect(store / "store.db") as db:
        return db.execute(query, params).fetchall()


@pytest.fixture(scope="module")
def closed_run(small_squad: Path, store: Path) -> Path:
    result = eval_squad(small_squad, store, "--limit", "6", "--seed", "1", "--run-id", "closed-1")
    assert result.exit_code == 0, result.output
    return store / "eval-runs" / "closed-1"


def test_closed_run_files_match_official_scores(closed_run: Path, small_squad: Path, store: Path) -> None:
    assert sorted(p.name for p in closed_run.iterdir()) == sorted(OUTPUT_FILES)
    golds = squad_golds(small_squad)
    sampled = sorted(random.Random(1).sample(list(golds), 6))
    predictions = json.loads((closed_run / "predictions.json").read_text(encoding="utf-8"))
    assert sorted(predictions) == sampled

    metrics = json.loads((closed_run / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    official = squad_v1_scores({qid: golds[qid] for qid in sampled}, predictions)
    assert metrics["exact_match"] == pytest.approx(official.exact_match)
    assert metrics["f1"] == pytest.approx(official.f1)
    assert metrics["recall@20"] >= metrics["recall@5"] >= metrics["recall@1"]
    assert 0 <= metrics["mrr@10"] <= 1
    assert [row["id"] for row in results(closed_run)] == sampled
    assert "<img" in (closed_run / "report.html").read_text(encoding="utf-8")
    assert sql(store, "SELECT status FROM eval_runs WHERE id = 'closed-1'") == [("finished",)]
    assert sql(store, "SELECT count(*) FROM eval_rows WHERE run_id = 'closed-1'") == [(6,)]


def results(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def test_gold_rank_is_where_retrieval_puts_the_gold_paragraph(closed_run: Path, store: Path) -> None:
    """Asked again through the public API, each question's first gold-paragraph document sits at the row's rank."""
    from rag.api import RAG

    [eval_store] = (store / "eval-stores").iterdir()
    qa = RAG.open(eval_store)
    try:
        for row in results(closed_run):
            documents: list[int] = []
            rank = None
            for passage in qa.retrieve(row["question"], k=20):
                if passage.document_id not in documents:
                    documents.append(passage.document_id)
                    if rank is None and row["id"] in passage.metadata.get("question_ids", ()):
                        rank = len(documents)
            assert row["gold_rank"] == rank, row["id"]
    finally:
        qa.close()
    assert any(row["gold_rank"] == 1 for row in results(closed_run))


def test_real_run_long_form_scores_and_report(closed_run: Path) -> None:
    from lxml import html as lxml_html

    rows = results(closed_run)
    metrics = json.loads((closed_run / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    assert 0 <= metrics["rouge_l"] <= 100 and 0 <= metrics["bleu"] <= 100
    spans = [row for row in rows if not row["abstained"]]
    # The extractive reader copies its answer out of the passage it cites: every word is grounded.
    assert [row["groundedness"] for row in spans] == [1.0] * len(spans)
    if spans:
        assert metrics["groundedness"] == 100.0 and metrics["grounded_questions"] == len(spans)

    tree = lxml_html.fromstring((closed_run / "report.html").read_text(encoding="utf-8"))
    assert [b.get("data-filter") for b in tree.xpath("//div[@id='filters']/button")] == [
        "all",
        "answered",
        "abstained",
        "wrong",
        "right",
    ]
    headers = [th.text_content() for th in tree.xpath("//table[@id='questions']/thead/tr/th")]
    assert headers[:2] == ["id", "gold rank"] and "ROUGE-L" in headers
    shown = {tr.xpath("td")[0].text_content(): tr.xpath("td")[1].text_content() for tr in tree.xpath("//tbody/tr")}
    assert shown == {row["id"]: "-" if row["gold_rank"] is None else str(row["gold_rank"]) for row in rows}


def test_gold_mode_list_and_compare(closed_run: Path, small_squad: Path, store: Path) -> None:
    result = eval_squad(small_squad, store, "--limit", "6", "--seed", "1", "--mode", "gold", "--run-id", "gold-1")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("peak_memory_mb")  # the metrics table comes last
    metrics = json.loads((store / "eval-runs" / "gold-1" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    assert metrics["answer_in_context"] == 100.0  # the generator saw the gold paragraph
    assert len(list((store / "eval-stores").iterdir())) == 1  # the dataset's store was built once and reused

    listed = rag("eval", "list", "--store", store)
    assert listed.exit_code == 0, listed.output
    assert "closed-1" in listed.output and "gold-1" in listed.output
    compared = rag("eval", "compare", "closed-1", "gold-1", "--store", store)
    assert compared.exit_code == 0, compared.output
    assert "closed-1" in compared.output and "gold-1" in compared.output
    assert "exact_match" in compared.output and "EM 0 -> 1" in compared.output


def test_resume_answers_only_missing_questions(closed_run: Path, small_squad: Path, store: Path) -> None:
    before = json.loads((closed_run / "predictions.json").read_text(encoding="utf-8"))
    sql(
        store,
        "DELETE FROM eval_rows WHERE run_id = 'closed-1' AND question_id IN "
        "(SELECT question_id FROM eval_rows WHERE run_id = 'closed-1' ORDER BY question_id LIMIT 3)",
    )
    sql(store, "UPDATE eval_runs SET status = 'running' WHERE id = 'closed-1'")

    result = eval_squad(small_squad, store, "--limit", "6", "--seed", "1", "--run-id", "closed-1")
    assert result.exit_code == 0, result.output
    assert "3 questions already stored, 3 to do" in result.output
    assert "processed 3 questions now, 6 in all" in result.output
    after = json.loads((closed_run / "predictions.json").read_text(encoding="utf-8"))
    assert sorted(after) == sorted(before)
    assert len((closed_run / "results.jsonl").read_text(encoding="utf-8").splitlines()) == 6
    assert sql(store, "SELECT status FROM eval_runs WHERE id = 'closed-1'") == [("finished",)]


def test_resume_with_other_settings_is_refused(closed_run: Path, small_squad: Path, store: Path) -> None:
    result = eval_squad(small_squad, store, "--limit", "5", "--seed", "1", "--run-id", "closed-1")
    assert result.exit_code == 2
    assert "cannot be resumed" in result.output


def test_resume_under_other_answer_settings_is_refused(
    small_squad: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ("--limit", "2", "--seed", "3", "--run-id", "mixed-1")
    first = eval_squad(small_squad, store, *args)
    assert first.exit_code == 0, first.output

    with monkeypatch.context() as patch:
        patch.setenv("RAG_FUSION", "rrf")
        patch.setenv("RAG_DENSE_WEIGHT", "0.7")
        refused = eval_squad(small_squad, store, *args)
    assert refused.exit_code == 2, refused.output
    [line] = [line for line in refused.output.splitlines() if "cannot be resumed" in line]
    assert "fusion: 'zscore' -> 'rrf'" in line and "dense_weight: 0.5 -> 0.7" in line
    assert sql(store, "SELECT status, json_extract(config, '$.fusion') FROM eval_runs WHERE id = 'mixed-1'") == [
        ("finished", "zscore")
    ]

    resumed = eval_squad(small_squad, store, *args)
    assert resumed.exit_code == 0, resumed.output
    assert "2 questions already stored, 0 to do" in resumed.output


def test_malformed_dataset_exits_2_and_leaves_no_run(small_squad: Path, store: Path, tmp_path: Path) -> None:
    obj = json.loads(small_squad.read_text(encoding="utf-8"))
    del obj["data"][1]["paragraphs"][2]["qas"][0]["question"]
    bad = tmp_path / "broken.json"
    bad.write_text(json.dumps(obj), encoding="utf-8")
    out = tmp_path / "out"

    result = eval_squad(bad, store, "--run-id", "broken-1", "--out", str(out))
    assert result.exit_code == 2
    assert "broken.json: data[1].paragraphs[2].qas[0]: missing 'question'" in result.output
    assert sql(store, "SELECT count(*) FROM eval_runs WHERE id = 'broken-1'") == [(0,)]
    assert not out.exists()


def test_jsonl_with_contexts_in_gold_mode(small_squad: Path, store: Path, tmp_path: Path) -> None:
    article = json.loads(small_squad.read_text(encoding="utf-8"))["data"][0]
    records = [
        {
            "id": qa["id"],
            "question": qa["question"],
            "answers": [a["text"] for a in qa["answers"]],
            "context": paragraph["context"],
            "source": article["title"],
        }
        for paragraph in article["paragraphs"][:2]
        for qa in paragraph["qas"][:2]
    ]
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "run"

    result = rag("eval", "jsonl", "--data", data, "--store", store, "--mode", "gold", "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    predictions = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    assert sorted(predictions) == sorted(r["id"] for r in records)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    official = squad_v1_scores({r["id"]: r["answers"] for r in records}, predictions)
    assert metrics["f1"] == pytest.approx(official.f1)
    assert metrics["recall@20"] >= metrics["recall@1"] > 0


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = (
        "import sys, rag.cli; "
        "heavy = {'torch', 'sentence_transformers', 'matplotlib', 'transformers'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
