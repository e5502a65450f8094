"""report.html and report.md from constructed rows: the per-question table, its filters (parsed with lxml, then
clicked in a real browser with every request refused) and the gold-rank column."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from lxml import html as lxml_html

from eval.report import by_article, compute_metrics, render_markdown
from eval.report_html import render_html

CHROMIUM = Path("/usr/bin/chromium")
HEADER = {"run_id": "run-1", "dataset": "qa.jsonl", "dataset_sha256": "f" * 64, "config": {"mode": "closed"}}


def row(qid: str, prediction: str | None, exact: float | None, rank: int | None, **extra: Any) -> dict[str, Any]:
    hits = [False] * 20 if rank is None else [i == rank - 1 for i in range(max(rank, 3))]
    return {
        "id": qid,
        "question": f"question {qid}?",
        "golds": ["gold <b>answer</b>", "gold <b>answer</b>", "other"],
        "title": "T",
        "prediction": prediction,
        "exact": exact,
        "f1": exact,
        "rouge_l": None if prediction is None else 0.5,
        "bleu": None if prediction is None else 12.5,
        "groundedness": None,
        "abstained": None if prediction is None else prediction == "",
        "answer_in_context": True,
        "gold_rank": rank,
        "hits": hits,
        "latency": {"retrieve": 0.01, "total": 0.5},
        **extra,
    }


ROWS = [
    row("q1", "gold answer", 1.0, 1, groundedness=1.0),
    row("q2", "a wrong answer", 0.0, 3, groundedness=0.25),
    row("q3", "", 0.0, None),  # abstained
    row("q4", "another wrong one", 0.0, None, groundedness=0.0),
    row("q5", None, None, 2),  # retrieval only
]


@pytest.fixture(scope="module")
def page() -> str:
    metrics = compute_metrics(ROWS, v2=False)
    return render_html(HEADER, metrics, by_article(ROWS), ROWS)


@pytest.mark.unit
def test_table_has_filters_rank_and_scores(page: str) -> None:
    tree = lxml_html.fromstring(page)
    buttons = {b.get("data-filter"): b.text_content() for b in tree.xpath("//div[@id='filters']/button")}
    assert buttons == {
        "all": "all (5)",
        "answered": "answered (3)",
        "abstained": "abstained (1)",
        "wrong": "wrong (2)",
        "right": "right (1)",
    }
    headers = [th.text_content() for th in tree.xpath("//table[@id='questions']/thead/tr/th")]
    assert headers == ["id", "gold rank", "question", "prediction", "gold answers", "EM", "F1", "ROUGE-L", "BLEU"] + [
        "grounded"
    ]
    cells = {tr.xpath("td")[0].text_content(): tr for tr in tree.xpath("//table[@id='questions']/tbody/tr")}
    assert {qid: tr.get("data-tags") for qid, tr in cells.items()} == {
        "q1": "answered right",
        "q2": "answered wrong",
        "q3": "abstained",
        "q4": "answered wrong",
        "q5": "",
    }
    q2 = [td.text_content() for td in cells["q2"].xpath("td")]
    assert q2 == ["q2", "3", "question q2?", "a wrong answer", "gold <b>answer</b> / other", "0"] + [
        "0.00",
        "0.50",
        "12.5",
        "0.25",
    ]
    assert [td.text_content() for td in cells["q3"].xpath("td")][1] == "-"  # not retrieved within the depth


@pytest.mark.unit
def test_page_needs_nothing_from_elsewhere(page: str) -> None:
    tree = lxml_html.fromstring(page)
    assert not tree.xpath("//script[@src] | //link[@href] | //iframe")
    assert all(img.get("src").startswith("data:image/png;base64,") for img in tree.xpath("//img"))
    assert tree.xpath("//script[contains(., 'data-filter')]")  # the filter script is inline


@pytest.mark.unit
def test_markdown_misses_show_the_gold_rank() -> None:
    text = render_markdown(HEADER, compute_metrics(ROWS, v2=False), by_article(ROWS), ROWS)
    lines = text.splitlines()
    assert "| id | gold rank | question | gold | prediction |" in lines
    assert "| q2 | 3 | question q2? | gold <b>answer</b> / gold <b>answer</b> | a wrong answer |" in lines
    assert "| q4 | - | question q4? | gold <b>answer</b> / gold <b>answer</b> | another wrong one |" in lines


@pytest.mark.integration
def test_filters_work_in_a_browser_offline(page: str, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: run scripts/system-deps.sh")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    requested: list[str] = []

    def refuse_all_but_the_page(route: Any) -> None:
        if route.request.url == report.as_uri():
            route.continue_()
        else:
            requested.append(route.request.url)
            route.abort()

    def visible(browser_page: Any) -> list[str]:
        return browser_page.locator("#questions tbody tr:visible td:first-child").all_inner_texts()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"])
        try:
            browser_page = browser.new_page()
            browser_page.route("**/*", refuse_all_but_the_page)
            browser_page.goto(report.as_uri())
            shown = {"all": visible(browser_page)}
            for tag in ("wrong", "abstained", "right", "answered", "all"):
                browser_page.click(f"#filters button[data-filter={tag}]")
                shown[tag] = visible(browser_page)
            pressed = browser_page.locator("#filters button[aria-pressed=true]").all_inner_texts()
        finally:
            browser.close()
    assert shown == {
        "all": ["q1", "q2", "q3", "q4", "q5"],
        "wrong": ["q2", "q4"],
        "abstained": ["q3"],
        "right": ["q1"],
        "answered": ["q1", "q2", "q4"],
    }
    assert pressed == ["all (5)"]
    assert requested == []
