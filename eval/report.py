"""Summaries of a run's result rows: the metrics, and the five files of an output folder.

``compute_metrics`` reads only result rows (as stored in eval_rows and results.jsonl); the writers read only
rows and metrics (report.html is ``eval.report_html``). Files are written to temporary names and renamed, so a
folder never holds half a report.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eval.longform import longform_metrics
from eval.metrics import latency_summary, mrr_at_k, recall_at_k, squad_v1_scores, squad_v2_scores
from eval.report_html import Articles, Metrics, render_html
from eval.rows import KS, Row, answered_rows, fmt, gold_rank_text

STAGES = ("retrieve", "generate", "total")
OUTPUT_FILES = ("predictions.json", "results.jsonl", "metrics.json", "report.md", "report.html")


# ---------------------------------------------------------------- metrics


def compute_metrics(rows: Sequence[Row], v2: bool, cost: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Flat metrics: answer scores (official SQuAD; ROUGE-L, BLEU, groundedness), retrieval recall/MRR,
    answer-in-context, latencies."""
    answered = answered_rows(rows)
    metrics: dict[str, Any] = {"questions": len(rows), "answered": len(answered)}
    if answered:
        metrics.update(_answer_scores(answered, v2))
        with_gold = [row for row in answered if row["golds"]]
        if with_gold:
            metrics["answer_in_context"] = 100.0 * sum(bool(r["answer_in_context"]) for r in with_gold) / len(with_gold)
        metrics.update(longform_metrics(answered))
    metrics.update(_retrieval_scores(rows))
    metrics.update(_latencies(rows))
    metrics.update(cost or {})
    return metrics


def _answer_scores(rows: Sequence[Row], v2: bool) -> dict[str, Any]:
    golds = {row["id"]: list(row["golds"]) for row in rows}
    predictions = {row["id"]: row["prediction"] for row in rows}
    if not v2:
        scores = squad_v1_scores(golds, predictions)
        return {"exact_match": scores.exact_match, "f1": scores.f1}
    with_probs = all(row.get("no_answer_score") is not None for row in rows)
    na_probs = {row["id"]: float(row["no_answer_score"]) for row in rows} if with_probs else None
    v2_scores = squad_v2_scores(golds, predictions, na_probs)
    out: dict[str, Any] = {"exact_match": v2_scores.overall.exact, "f1": v2_scores.overall.f1}
    for name, part in (("has_ans", v2_scores.has_ans), ("no_ans", v2_scores.no_ans)):
        if part is not None:
            out.update({f"{name}_exact": part.exact, f"{name}_f1": part.f1, f"{name}_total": part.total})
    if v2_scores.best is not None:
        best = v2_scores.best
        out.update(
            best_exact=best.best_exact,
            best_exact_thresh=best.best_exact_thresh,
            best_f1=best.best_f1,
            best_f1_thresh=best.best_f1_thresh,
        )
    return out


def _retrieval_scores(rows: Sequence[Row]) -> dict[str, Any]:
    hits = [row["hits"] for row in rows if row.get("hits") is not None]
    if not hits:
        return {}
    out: dict[str, Any] = {f"recall@{k}": value for k, value in recall_at_k(hits, KS).items()}
    out["mrr@10"] = mrr_at_k(hits, 10)
    out["retrieval_questions"] = len(hits)
    return out


def _latencies(rows: Sequence[Row]) -> dict[str, float]:
    out = {}
    answered = answered_rows(rows)
    for stage in STAGES:
        pool = rows if stage == "retrieve" else answered
        values = [row["latency"][stage] for row in pool if stage in row.get("latency", {})]
        if values:
            summary = latency_summary(values)
            out[f"latency_{stage}_p50_s"] = summary.p50
            out[f"latency_{stage}_p95_s"] = summary.p95
    return out


def by_article(rows: Sequence[Row]) -> dict[str, dict[str, float]]:
    """Per title: answered questions, EM and F1 in percent (unthresholded per-question scores)."""
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in answered_rows(rows):
        groups[row.get("title") or "(untitled)"].append(row)
    return {
        title: {
            "n": len(group),
            "exact": 100.0 * sum(r["exact"] for r in group) / len(group),
            "f1": 100.0 * sum(r["f1"] for r in group) / len(group),
        }
        for title, group in sorted(groups.items())
    }


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """A compact two-column table for the terminal."""
    width = max(len(key) for key in metrics)
    return "\n".join(f"{key:<{width}}  {fmt(value)}" for key, value in metrics.items())


# ---------------------------------------------------------------- files


def write_outputs(out_dir: Path, header: Mapping[str, Any], rows: Sequence[Row], metrics: Mapping[str, Any]) -> None:
    """predictions.json, results.jsonl, metrics.json, report.md and report.html, each replaced atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    articles = by_article(rows)
    predictions = {row["id"]: row["prediction"] for row in answered_rows(rows)}
    summary = {**header, "metrics": dict(metrics), "by_article": articles}
    contents = {
        "predictions.json": json.dumps(predictions, ensure_ascii=False, indent=1),
        "results.jsonl": "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
        "metrics.json": json.dumps(summary, ensure_ascii=False, indent=2, default=str),
        "report.md": render_markdown(header, metrics, articles, rows),
        "report.html": render_html(header, metrics, articles, rows),
    }
    temps: dict[str, str] = {}
    try:
        for name, text in contents.items():
            fd, temps[name] = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(temps[name], 0o644)  # mkstemp makes 0600 files; reports are for reading
        for name, temp in temps.items():
            os.replace(temp, out_dir / name)
    finally:
        for temp in temps.values():
            if os.path.exists(temp):
                os.unlink(temp)


def _misses(rows: Sequence[Row], limit: int = 20) -> list[Row]:
    return [row for row in answered_rows(rows) if not row["exact"]][:limit]


def render_markdown(header: Mapping[str, Any], metrics: Metrics, articles: Articles, rows: Sequence[Row]) -> str:
    sha = str(header["dataset_sha256"])[:12]
    lines = [f"# Evaluation run {header['run_id']}", ""]
    lines += [f"Dataset: `{header['dataset']}` (sha256 {sha}), mode {header['config'].get('mode')}.", ""]
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {key} | {fmt(value)} |" for key, value in metrics.items()]
    if articles:
        lines += ["", "## By article", "", "| article | n | EM | F1 |", "|---|---|---|---|"]
        lines += [f"| {t} | {a['n']} | {a['exact']:.1f} | {a['f1']:.1f} |" for t, a in articles.items()]
    misses = _misses(rows)
    if misses:
        lines += ["", "## Some misses", "", "| id | gold rank | question | gold | prediction |", "|" + "---|" * 5]
        lines += [
            f"| {r['id']} | {gold_rank_text(r)} | {_md(r['question'])} | {_md(' / '.join(r['golds'][:2]))} "
            f"| {_md(r['prediction'])} |"
            for r in misses
        ]
    if rows:
        lines += ["", "Gold rank: the rank of the first retrieved relevant document (- when not retrieved)."]
        lines += ["Plots and every question, filterable: see report.html."]
    return "\n".join([*lines, ""])


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
