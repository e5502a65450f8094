"""The store an evaluation retrieves from: a dataset with contexts gets its own, built once and reused.

It lives in ``<store>/eval-stores/<dataset-sha256[:12]>-<chunking-config-hash>/``; a marker file written after a
complete ingest says the folder is ready. One document per paragraph (the SQuAD loader), whose metadata
``question_ids`` names the questions it answers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from eval.datasets import EvalDataset
from eval.errors import EvalError
from index import DEFAULT_COLLECTION, DEFAULT_EMBEDDER
from index.embedder import canonical_name
from index.manifest import write_atomic
from rag.api import RAG
from rag.config import RagSettings

MARKER = "eval-store.json"


def chunking_config(settings: RagSettings) -> dict[str, Any]:
    return {
        "embedder": canonical_name(settings.embedder or DEFAULT_EMBEDDER),
        "chunk_tokens": settings.chunk_tokens,
        "overlap_tokens": settings.overlap_tokens,
        "documents": "one per paragraph (SQuAD loader)",
    }


def eval_store_dir(settings: RagSettings, dataset: EvalDataset) -> Path:
    chunking = json.dumps(chunking_config(settings), sort_keys=True).encode()
    digest = hashlib.sha256(chunking).hexdigest()[:12]
    return Path(settings.store).expanduser().resolve() / "eval-stores" / f"{dataset.sha256[:12]}-{digest}"


def open_qa(dataset: EvalDataset, settings: RagSettings, progress: bool) -> RAG:
    """A RAG over the dataset's own store (built on first use), or over ``settings.store`` without contexts."""
    if not dataset.has_contexts:
        return RAG.open(settings=settings)
    root = eval_store_dir(settings, dataset)
    qa = RAG.open(settings=settings.with_overrides(store=root, database_url=None, collection=DEFAULT_COLLECTION))
    try:
        _ensure_ingested(qa, dataset, settings, progress)
    except BaseException:
        qa.close()
        raise
    return qa


def _ensure_ingested(qa: RAG, dataset: EvalDataset, settings: RagSettings, progress: bool) -> None:
    from ingest.chunking import TokenChunker
    from ingest.pipeline import ingest_paths

    root, expected = qa.store.root, {"dataset_sha256": dataset.sha256, "chunking": chunking_config(settings)}
    marker = root / MARKER
    if marker.is_file():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        if all(recorded.get(key) == value for key, value in expected.items()):
            return
    source = dataset.path if dataset.format == "squad" else _write_contexts(dataset, root)
    embedder = qa.store.embedder
    limit = embedder.max_tokens - 2  # type: ignore[attr-defined]
    tokenizer = embedder.tokenizer  # type: ignore[attr-defined]
    chunker = TokenChunker(tokenizer, min(settings.chunk_tokens, limit), min(settings.overlap_tokens, limit // 2))
    report = ingest_paths(qa.store, [source], chunker=chunker, progress=progress)
    if report.errors or not report.documents:
        reasons = "; ".join(f"{e.path}: {e.reason}" for e in report.errors) or "no documents"
        raise EvalError(f"could not build the evaluation store {root}: {reasons}")
    summary = {**expected, "dataset": str(dataset.path), "documents": report.documents, "chunks": report.chunks}
    write_atomic(marker, json.dumps(summary, indent=2))


def _write_contexts(dataset: EvalDataset, root: Path) -> Path:
    """A JSONL dataset's contexts as a SQuAD-shaped file, so one loader makes paragraphs know their questions."""
    grouped: dict[str, dict[str, list[str]]] = {}
    for q in dataset.questions:
        grouped.setdefault(q.source or q.title or "contexts", {}).setdefault(q.context or "", []).append(q.id)
    data = [
        {"title": title, "paragraphs": [{"context": c, "qas": [{"id": i} for i in ids]} for c, ids in paras.items()]}
        for title, paras in grouped.items()
    ]
    path = root / "contexts.json"
    write_atomic(path, json.dumps({"version": "contexts", "data": data}, ensure_ascii=False))
    return path
