"""Evaluation runs: retrieve (and answer) every selected question in batches, store rows per batch, report.

A dataset with contexts gets its own store under ``<store>/eval-stores/<dataset-sha[:12]>-<chunking-hash>/``,
built once and reused. Closed mode answers from retrieval; gold mode hands the generator the question's own
paragraph. Rows are committed per batch, so a run interrupted for any reason resumes under the same id.
"""

from __future__ import annotations

import logging
import platform
import resource
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from eval import runs
from eval.datasets import EvalDataset, EvalQuestion, select_questions, split_questions
from eval.errors import EvalError
from eval.longform import cited_texts, groundedness, row_scores
from eval.metrics import answer_in_text, squad_v1_question_scores, squad_v2_question_scores
from eval.report import compute_metrics, write_outputs
from eval.stores import chunking_config, open_qa
from index import Passage, Store
from index.manifest import library_versions
from rag.api import RAG
from rag.config import RagSettings
from rag.types import Answer

log = logging.getLogger(__name__)

EvalMode = Literal["closed", "gold"]
METRIC_DEPTH = 20  # retrieval metrics read the top max(20, k) chunks


@dataclass(frozen=True)
class EvalConfig:
    mode: EvalMode = "closed"
    k: int | None = None  # passages handed to the generator in closed mode; default: settings.k
    limit: int | None = None
    seed: int = 0
    split: str | None = None  # only the questions of this split's articles (e.g. "test")
    split_file: Path | None = None  # default: dev-split.json beside the dataset
    retrieval_only: bool = False
    batch_size: int = 16
    run_id: str | None = None
    out: Path | None = None
    progress: bool = True


@dataclass(frozen=True)
class RunResult:
    run_id: str
    out_dir: Path
    metrics: dict[str, Any]
    answered_now: int  # questions processed by this call
    resumed_from: int  # questions the run already held


@dataclass(frozen=True)
class _Plan:
    """What one batch needs to know."""

    qa: RAG
    config: EvalConfig
    k: int
    depth: int
    by_question_id: bool  # relevance: the paragraph holding the question (else: a chunk holding an answer)
    v2: bool


# ---------------------------------------------------------------- entry point


def run_evaluation(
    dataset: EvalDataset,
    config: EvalConfig,
    settings: RagSettings,
    echo: Callable[[str], None] | None = None,
) -> RunResult:
    """Run (or resume) one evaluation and write its files; the run is stored in ``settings.store``'s SQL."""
    _validate(dataset, config)
    echo = echo or log.info
    pool = dataset.questions
    if config.split:
        pool = split_questions(pool, config.split_file or dataset.path.parent / "dev-split.json", config.split)
    selected = select_questions(pool, config.limit, config.seed)
    qa = open_qa(dataset, settings, config.progress)
    own_store = qa.store.root != Path(settings.store).expanduser().resolve()
    run_store = Store.open(settings.store, database_url=settings.database_url) if own_store else qa.store
    try:
        plan = _Plan(
            qa,
            config,
            config.k or settings.k,
            max(METRIC_DEPTH, config.k or settings.k),
            dataset.has_contexts,
            dataset.v2,
        )
        return _execute(plan, dataset, selected, run_store, echo)
    finally:
        qa.close()
        if own_store:
            run_store.close()


def _validate(dataset: EvalDataset, config: EvalConfig) -> None:
    if config.mode not in ("closed", "gold"):
        raise EvalError(f"unknown mode {config.mode!r}; choose closed or gold")
    if config.mode == "gold" and not dataset.has_contexts:
        raise EvalError(f"{dataset.path}: gold mode needs a 'context' for every question")
    for name in ("k", "limit", "batch_size"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise EvalError(f"{name} must be a positive integer, got {value}")


def _execute(
    plan: _Plan, dataset: EvalDataset, selected: Sequence[EvalQuestion], run_store: Store, echo: Callable[[str], None]
) -> RunResult:
    config, engine = plan.config, run_store.engine
    run_id = config.run_id or new_run_id(dataset, config)
    done = runs.start_run(engine, run_id, str(dataset.path), dataset.sha256, run_config(plan, dataset))
    todo = [q for q in selected if q.id not in done]
    if done:
        echo(f"resuming run {run_id}: {len(done)} questions already stored, {len(todo)} to do")
    try:
        wall = _process(plan, todo, engine, run_id)
        wanted = {q.id for q in selected}
        rows = [row for row in runs.load_rows(engine, run_id) if row["id"] in wanted]
        metrics = compute_metrics(rows, dataset.v2, _cost(len(todo), wall))
        out_dir = Path(config.out) if config.out else Path(run_store.root) / "eval-runs" / run_id
        header = {
            "run_id": run_id,
            "dataset": str(dataset.path),
            "dataset_sha256": dataset.sha256,
            "config": runs.get_run(engine, run_id).config,
        }
        write_outputs(out_dir, header, rows, metrics)
        runs.set_status(engine, run_id, "finished", metrics)
    except KeyboardInterrupt:
        runs.set_status(engine, run_id, "interrupted")
        raise
    except BaseException:
        runs.set_status(engine, run_id, "failed")
        raise
    echo(f"run {run_id}: processed {len(todo)} questions now, {len(rows)} in all; files in {out_dir}")
    return RunResult(run_id, out_dir, metrics, len(todo), len(done))


def new_run_id(dataset: EvalDataset, config: EvalConfig) -> str:
    mode = "retrieval" if config.retrieval_only else config.mode
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{dataset.path.stem}-{mode}-{secrets.token_hex(2)}"


def versions() -> dict[str, str]:
    """Versions of the libraries that shape a run's numbers, recorded with it."""
    found = library_versions()
    for package in ("transformers", "numpy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    found["python"] = platform.python_version()
    return found


def run_config(plan: _Plan, dataset: EvalDataset) -> dict[str, Any]:
    """Everything that decides a run's numbers: how each answer is made (``RAG.to_dict``) and which questions are
    asked how; stored with the run, compared on resume (``runs.MAY_DIFFER`` lists the keys that may change)."""
    return {
        **plan.qa.to_dict(),
        "format": dataset.format,
        "dataset_path": str(dataset.path),
        "v2": dataset.v2,
        "mode": plan.config.mode,
        "k": plan.k,
        "retrieval_k": plan.depth,
        "limit": plan.config.limit,
        "seed": plan.config.seed,
        "split": plan.config.split,
        "split_file": str(plan.config.split_file) if plan.config.split_file else None,
        "retrieval_only": plan.config.retrieval_only,
        "retrieval_store": str(plan.qa.store.root),
        "chunking": chunking_config(plan.qa.settings) if plan.by_question_id else None,
        "relevance": "gold paragraph" if plan.by_question_id else "answer in chunk",
        "batch_size": plan.config.batch_size,
        "versions": versions(),
    }


def _cost(answered_now: int, wall: float) -> dict[str, Any]:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    peak_mb = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
    qps = answered_now / wall if answered_now and wall > 0 else None
    return {"processed_now": answered_now, "wall_seconds": wall, "questions_per_second": qps, "peak_memory_mb": peak_mb}


# ---------------------------------------------------------------- the loop


def _process(plan: _Plan, todo: Sequence[EvalQuestion], engine: Any, run_id: str) -> float:
    """Answer (or only retrieve for) ``todo`` in batches, committing each batch; returns the loop's wall time."""
    if not todo:
        return 0.0
    plan.qa.store.embedder.embed_queries(["warm up"])
    if not plan.config.retrieval_only:
        plan.qa.reader.load()
    started = time.perf_counter()
    size = plan.config.batch_size
    with tqdm(total=len(todo), desc="eval", unit="q", disable=not plan.config.progress) as bar:
        for start in range(0, len(todo), size):
            batch = todo[start : start + size]
            runs.save_rows(engine, run_id, _batch_rows(plan, batch))
            bar.update(len(batch))
    return time.perf_counter() - started


def _batch_rows(plan: _Plan, batch: Sequence[EvalQuestion]) -> list[dict[str, Any]]:
    qa, questions = plan.qa, [q.question for q in batch]
    started = time.perf_counter()
    retrieved = qa.retriever.retrieve_many(questions, plan.depth, qa.settings.collection)
    retrieve_s = (time.perf_counter() - started) / len(batch)
    if plan.config.retrieval_only:
        return [_row(plan, q, hits, None, {"retrieve": retrieve_s}) for q, hits in zip(batch, retrieved, strict=True)]
    gold = plan.config.mode == "gold"
    given = [[gold_passage(q)] for q in batch] if gold else [hits[: plan.k] for hits in retrieved]
    answers = qa.answer_from_passages(questions, given, retrieve_s=retrieve_s)
    return [
        _row(plan, q, hits, answer, dict(answer.timings))
        for q, hits, answer in zip(batch, retrieved, answers, strict=True)
    ]


def gold_passage(q: EvalQuestion) -> Passage:
    """The question's own paragraph as a passage that is in no store (chunk and document id -1)."""
    text = q.context or ""
    return Passage(
        chunk_id=-1,
        document_id=-1,
        source=q.source or f"gold:{q.title}",
        title=q.title,
        text=text,
        start=0,
        end=len(text),
        ordinal=0,
        collection="gold",
        metadata={"question_ids": [q.id]},
        score=1.0,
    )


def document_hits(plan: _Plan, q: EvalQuestion, retrieved: Sequence[Passage]) -> tuple[list[bool] | None, list[str]]:
    """Relevance per retrieved document (a document ranks at its first chunk), and those documents' sources."""
    if not plan.by_question_id and not q.answers:
        return None, []
    docs: dict[int, bool] = {}
    sources: dict[int, str] = {}
    for p in retrieved:
        if plan.by_question_id:
            relevant = q.id in p.metadata.get("question_ids", ())
        else:
            relevant = answer_in_text(q.answers, p.text)
        docs[p.document_id] = docs.get(p.document_id, False) or relevant
        sources.setdefault(p.document_id, p.source)
    return list(docs.values()), list(sources.values())


def _row(
    plan: _Plan, q: EvalQuestion, retrieved: Sequence[Passage], answer: Answer | None, latency: dict[str, float]
) -> dict[str, Any]:
    hits, sources = document_hits(plan, q, retrieved)
    row: dict[str, Any] = {
        "id": q.id,
        "question": q.question,
        "golds": list(q.answers),
        "title": q.title,
        "prediction": None,
        "exact": None,
        "f1": None,
        "rouge_l": None,
        "bleu": None,
        "groundedness": None,
        "abstained": None,
        "retrieved": sources[:5],
        # Rank of the first relevant document within the top `depth` chunks (documents rank at their first chunk).
        "gold_rank": hits.index(True) + 1 if hits and any(hits) else None,
        "hits": hits,
        "latency": latency,
    }
    if answer is None:
        return row
    prediction = "" if answer.abstained else answer.text
    scores = (squad_v2_question_scores if plan.v2 else squad_v1_question_scores)(prediction, q.answers)
    context = plan.qa.context(answer.passages)
    longform = row_scores(prediction, q.answers)
    row.update(
        prediction=prediction,
        exact=scores.exact,
        f1=scores.f1,
        rouge_l=longform.rouge_l,
        bleu=longform.bleu,
        groundedness=None if answer.abstained else groundedness(answer.text, cited_texts(answer, context)),
        abstained=answer.abstained,
        no_answer_score=answer.no_answer_score,
        answer_in_context=any(answer_in_text(q.answers, p.text) for p in context) if q.answers else None,
    )
    return row
