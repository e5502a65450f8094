"""report.html: one self-contained page (no CDN, no external file) with the metrics, plots as inline PNGs, and
every question in a table that inline vanilla JavaScript filters (all / answered / abstained / wrong / right).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eval.rows import KS, TAGS, Row, answered_rows, fmt, gold_rank_text, row_tags

Metrics = Mapping[str, Any]
Articles = Mapping[str, Mapping[str, float]]

STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:auto}td,th{padding:2px 8px;vertical-align:top}"
    "table{border-collapse:collapse}tr:nth-child(even){background:#f3f3f3}img{max-width:100%}"
    "#filters button[aria-pressed=true]{font-weight:bold}td.num{text-align:right}"
)
# Shows only the rows whose data-tags hold the pressed button's tag; works with JavaScript's oldest DOM API.
FILTER_SCRIPT = """
(function () {
  var buttons = document.querySelectorAll("#filters button");
  var rows = document.querySelectorAll("#questions tbody tr");
  function show(tag) {
    for (var i = 0; i < rows.length; i++) {
      var tags = " " + rows[i].getAttribute("data-tags") + " ";
      rows[i].hidden = tag !== "all" && tags.indexOf(" " + tag + " ") < 0;
    }
    for (var j = 0; j < buttons.length; j++) {
      buttons[j].setAttribute("aria-pressed", String(buttons[j].getAttribute("data-filter") === tag));
    }
  }
  for (var k = 0; k < buttons.length; k++) {
    buttons[k].addEventListener("click", function () { show(this.getAttribute("data-filter")); });
  }
})();
"""


def _score(value: Any) -> str:  # noqa: ANN401 - a row's score or None
    return "-" if value is None else f"{float(value):.2f}"


# The per-question columns: header, cell text, the row key that decides whether the run has the column at all.
COLUMNS: tuple[tuple[str, Callable[[Row], str], str], ...] = (
    ("id", lambda r: str(r["id"]), "id"),
    ("gold rank", gold_rank_text, "hits"),
    ("question", lambda r: str(r["question"]), "question"),
    ("prediction", lambda r: "" if r.get("prediction") is None else str(r["prediction"]), "prediction"),
    ("gold answers", lambda r: " / ".join(dict.fromkeys(r.get("golds") or [])), "golds"),
    ("EM", lambda r: "-" if r.get("exact") is None else str(int(r["exact"])), "exact"),
    ("F1", lambda r: _score(r.get("f1")), "f1"),
    ("ROUGE-L", lambda r: _score(r.get("rouge_l")), "rouge_l"),
    ("BLEU", lambda r: "-" if r.get("bleu") is None else f"{float(r['bleu']):.1f}", "bleu"),
    ("grounded", lambda r: _score(r.get("groundedness")), "groundedness"),
)
NUMERIC = frozenset({"gold rank", "EM", "F1", "ROUGE-L", "BLEU", "grounded"})


def question_table(rows: Sequence[Row]) -> str:
    """Filter buttons and one table row per question (``data-tags`` from ``row_tags``); columns the run holds
    no value for are left out. "gold rank" is the rank of the first retrieved relevant document, "-" when none
    was within the retrieval depth."""
    if not rows:
        return ""
    esc = html.escape
    columns = [c for c in COLUMNS if any(row.get(c[2]) is not None for row in rows)]
    tagged = [(row, row_tags(row)) for row in rows]
    counts = {tag: sum(tag in tags for _, tags in tagged) for tag in TAGS}
    buttons = f'<button type="button" data-filter="all" aria-pressed="true">all ({len(rows)})</button>' + "".join(
        f'<button type="button" data-filter="{tag}" aria-pressed="false">{tag} ({counts[tag]})</button>' for tag in TAGS
    )
    head = "".join(f"<th>{esc(name)}</th>" for name, _, _ in columns)
    body = "".join(
        f'<tr data-tags="{" ".join(tags)}">'
        + "".join(f"<td{' class=num' if name in NUMERIC else ''}>{esc(cell(row))}</td>" for name, cell, _ in columns)
        + "</tr>"
        for row, tags in tagged
    )
    return (
        f'<h2>Questions</h2><div id="filters" role="group" aria-label="show questions">{buttons}</div>'
        f'<table id="questions"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        f"<script>{FILTER_SCRIPT}</script>"
    )


def render_html(header: Mapping[str, Any], metrics: Metrics, articles: Articles, rows: Sequence[Row]) -> str:
    esc = html.escape
    metric_rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(fmt(v))}</td></tr>" for k, v in metrics.items())
    images = "".join(
        f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(name)}</figcaption></figure>"
        for name, data in plots(metrics, articles, rows).items()
    )
    plot_section = f"<h2>Plots</h2>{images}" if images else ""
    config = esc(json.dumps(header.get("config", {}), indent=2, default=str))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation {esc(header['run_id'])}</title>"
        f"<style>{STYLE}</style></head><body><h1>Evaluation run {esc(header['run_id'])}</h1>"
        f"<p>Dataset <code>{esc(str(header['dataset']))}</code>, sha256 {esc(str(header['dataset_sha256'])[:12])}</p>"
        f"<h2>Metrics</h2><table>{metric_rows}</table>{plot_section}{question_table(rows)}"
        f"<h2>Configuration</h2><pre>{config}</pre></body></html>\n"
    )


# ---------------------------------------------------------------- plots


def plots(metrics: Metrics, articles: Articles, rows: Sequence[Row]) -> dict[str, str]:
    """Base64 PNGs: recall against k, F1 by article, latency histogram (those the run has data for)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # the Agg backend, without touching pyplot
    from matplotlib.figure import Figure

    def render(fig: Figure) -> str:
        FigureCanvasAgg(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    out = {}
    if "recall@1" in metrics:
        fig = Figure(figsize=(5, 3.2))
        ax = fig.add_subplot()
        ax.plot(KS, [metrics[f"recall@{k}"] for k in KS], marker="o")
        ax.set(xlabel="k", ylabel="recall@k (%)", title="Retrieval recall", ylim=(0, 100), xticks=KS)
        out["recall against k"] = render(fig)
    if articles:
        fig = Figure(figsize=(7, max(2.5, 0.25 * len(articles))))
        ax = fig.add_subplot()
        ax.barh(list(articles), [a["f1"] for a in articles.values()])
        ax.set(xlabel="F1 (%)", title="F1 by article", xlim=(0, 100))
        ax.invert_yaxis()
        out["F1 by article"] = render(fig)
    stage = "total" if answered_rows(rows) else "retrieve"
    values = [row["latency"][stage] for row in rows if stage in row.get("latency", {})]
    if values:
        fig = Figure(figsize=(5, 3.2))
        ax = fig.add_subplot()
        ax.hist(values, bins=30)
        ax.set(xlabel=f"{stage} latency per question (s)", ylabel="questions", title="Latency")
        out["latency histogram"] = render(fig)
    return out
