"""Evaluation datasets: SQuAD v1.1/v2.0 files and a generic JSONL format, loaded into frozen dataclasses.

Every record is checked as it is read; a bad one raises ``DatasetError`` naming the file and the record
(``dev.json: data[3].paragraphs[2].qas[0]: missing 'question'``), so a run never starts on half a dataset.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from eval.errors import DatasetError
from ingest.errors import LoadError
from ingest.loaders.json_loader import iter_jsonl

DatasetFormat = Literal["squad", "jsonl"]


@dataclass(frozen=True)
class EvalQuestion:
    """One question with its gold answers; ``context`` is its gold passage where the dataset has one."""

    id: str
    question: str
    answers: tuple[str, ...]
    is_impossible: bool = False
    context: str | None = None
    source: str | None = None
    title: str = ""


@dataclass(frozen=True)
class EvalDataset:
    path: Path
    format: DatasetFormat
    sha256: str
    questions: tuple[EvalQuestion, ...]

    @property
    def v2(self) -> bool:
        """Whether scoring follows SQuAD v2.0: some question is unanswerable."""
        return any(q.is_impossible or not q.answers for q in self.questions)

    @property
    def has_contexts(self) -> bool:
        return all(q.context is not None for q in self.questions)

    def gold_answers(self) -> dict[str, list[str]]:
        return {q.id: list(q.answers) for q in self.questions}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def select_questions(questions: Sequence[EvalQuestion], limit: int | None, seed: int) -> list[EvalQuestion]:
    """All questions, or a seeded sample of ``limit`` of them (``random.Random(seed).sample`` of the ids in
    dataset order), sorted by id so the selection is stable."""
    if limit is None or limit >= len(questions):
        return sorted(questions, key=lambda q: q.id)
    if limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit}")
    chosen = set(random.Random(seed).sample([q.id for q in questions], limit))
    return sorted((q for q in questions if q.id in chosen), key=lambda q: q.id)


def split_questions(questions: Sequence[EvalQuestion], split_file: Path, split: str) -> list[EvalQuestion]:
    """The questions of the articles that an article-split file lists under `split` (e.g. "test")."""
    from reader.errors import TrainingDataError
    from reader.squad_files import load_split_articles

    try:
        titles = load_split_articles(split_file, split)
    except TrainingDataError as exc:
        raise DatasetError(str(exc)) from exc
    chosen = [q for q in questions if q.title in titles]
    if not chosen:
        raise DatasetError(f"{split_file}: no question of this dataset is in a {split!r} article")
    return chosen


def load_dataset(path: str | Path, fmt: DatasetFormat) -> EvalDataset:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    loaders = {"squad": _squad_questions, "jsonl": _jsonl_questions}
    if fmt not in loaders:
        raise DatasetError(f"unknown dataset format {fmt!r}; choose one of {sorted(loaders)}")
    questions = loaders[fmt](path)
    if not questions:
        raise DatasetError(f"{path}: no questions found")
    _check_unique(path, questions)
    return EvalDataset(path=path, format=fmt, sha256=file_sha256(path), questions=tuple(questions))


def _check_unique(path: Path, questions: Sequence[EvalQuestion]) -> None:
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise DatasetError(f"{path}: duplicate question id {q.id!r}")
        seen.add(q.id)


# ---------------------------------------------------------------- SQuAD


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: invalid JSON: {exc}") from exc


def _field(path: Path, where: str, record: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(record, Mapping):
        raise DatasetError(f"{path}: {where}: expected a JSON object, got {type(record).__name__}")
    if key not in record:
        raise DatasetError(f"{path}: {where}: missing {key!r}")
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise DatasetError(f"{path}: {where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _squad_questions(path: Path) -> list[EvalQuestion]:
    obj = _read_json(path)
    articles = _field(path, "top level", obj, "data", list)
    questions: list[EvalQuestion] = []
    for a, article in enumerate(articles):
        paragraphs = _field(path, f"data[{a}]", article, "paragraphs", list)
        title = str(article.get("title") or f"article_{a}")
        for p, paragraph in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(path, where, paragraph, "context", str)
            for i, qa in enumerate(_field(path, where, paragraph, "qas", list)):
                questions.append(_squad_question(path, f"{where}.qas[{i}]", qa, context, title))
    return questions


def _squad_question(path: Path, where: str, qa: Any, context: str, title: str) -> EvalQuestion:
    qid = _field(path, where, qa, "id", (str, int))
    question = _field(path, where, qa, "question", str)
    answers = _field(path, where, qa, "answers", list)
    texts = tuple(_field(path, f"{where}.answers[{j}]", ans, "text", str) for j, ans in enumerate(answers))
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        raise DatasetError(f"{path}: {where}: 'is_impossible' must be true or false")
    if impossible and texts:
        raise DatasetError(f"{path}: {where}: is_impossible is true but the question has answers")
    return EvalQuestion(
        id=str(qid),
        question=question,
        answers=texts,
        is_impossible=impossible or not texts,
        context=context,
        title=title,
    )


# ---------------------------------------------------------------- JSONL


def _jsonl_questions(path: Path) -> list[EvalQuestion]:
    try:
        records = list(iter_jsonl(path.read_bytes()))
    except LoadError as exc:
        raise DatasetError(f"{path}: {exc}") from exc
    questions = [_jsonl_question(path, f"line {n}", record, i) for i, (n, record) in enumerate(records)]
    with_context = sum(q.context is not None for q in questions)
    if 0 < with_context < len(questions):
        raise DatasetError(f"{path}: {with_context} of {len(questions)} records have a 'context'; all or none must")
    return questions


def _jsonl_question(path: Path, where: str, record: Any, index: int) -> EvalQuestion:
    question = _field(path, where, record, "question", str)
    answers = _field(path, where, record, "answers", list)
    if not all(isinstance(a, str) for a in answers):
        raise DatasetError(f"{path}: {where}: 'answers' must be a list of strings")
    qid = record.get("id", str(index))
    context = record.get("context")
    source = record.get("source")
    kinds = (("id", qid, (str, int)), ("context", context, str), ("source", source, str))
    for key, value, kind in kinds:
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise DatasetError(f"{path}: {where}: {key!r} has the wrong type ({type(value).__name__})")
    return EvalQuestion(
        id=str(qid),
        question=question,
        answers=tuple(answers),
        is_impossible=not answers,
        context=context,
        source=source,
        title=str(record.get("title") or source or ""),
    )
