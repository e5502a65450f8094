"""SQuAD-format training files (v1.1, or v2.0 with `is_impossible`) read into frozen examples.

Every record is checked as it is read; a bad one raises `TrainingDataError` naming the file, the article and
the question id, so training never starts on half a file.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reader.errors import TrainingDataError


@dataclass(frozen=True)
class QAExample:
    """One question over its paragraph. `answers` are (text, character start) pairs; empty when unanswerable."""

    id: str
    title: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]

    @property
    def is_impossible(self) -> bool:
        return not self.answers


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_split_articles(split_file: Path, name: str) -> frozenset[str]:
    """The article titles that an article-split file (`{"train": [...], "test": [...]}`) lists under `name`."""
    try:
        split = json.loads(Path(split_file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainingDataError(f"{split_file}: cannot read the split file: {exc}") from exc
    titles = split.get(name) if isinstance(split, dict) else None
    if not isinstance(titles, list) or not all(isinstance(t, str) for t in titles):
        names = sorted(k for k, v in split.items() if isinstance(v, list)) if isinstance(split, dict) else []
        raise TrainingDataError(f"{split_file}: no list of article titles named {name!r}; it has {names}")
    return frozenset(titles)


def read_squad_file(path: Path, exclude_titles: frozenset[str] = frozenset()) -> list[QAExample]:
    """Every question of one SQuAD file, skipping the articles in `exclude_titles`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TrainingDataError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainingDataError(f"{path}: not a readable SQuAD JSON file: {exc}") from exc
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise TrainingDataError(f"{path}: expected a JSON object with a 'data' list of articles")
    examples: list[QAExample] = []
    for a, article in enumerate(articles):
        where = f"{path}: data[{a}]"
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise TrainingDataError(f"{where}: an article needs a 'paragraphs' list")
        title = str(article.get("title", ""))
        if title in exclude_titles:
            continue
        for p, paragraph in enumerate(article["paragraphs"]):
            examples.extend(_paragraph_examples(paragraph, title, f"{where} ({title!r}).paragraphs[{p}]"))
    return examples


def _paragraph_examples(paragraph: Any, title: str, where: str) -> Iterable[QAExample]:
    if not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str):
        raise TrainingDataError(f"{where}: a paragraph needs a 'context' string")
    if not isinstance(paragraph.get("qas"), list):
        raise TrainingDataError(f"{where}: a paragraph needs a 'qas' list")
    context = paragraph["context"]
    for q, qa in enumerate(paragraph["qas"]):
        yield _example(qa, title, context, f"{where}.qas[{q}]")


def _example(qa: Any, title: str, context: str, where: str) -> QAExample:
    if not isinstance(qa, dict):
        raise TrainingDataError(f"{where}: a question must be a JSON object")
    qid, question = qa.get("id"), qa.get("question")
    where = f"{where} (id {qid!r})"
    if not isinstance(qid, str) or not qid:
        raise TrainingDataError(f"{where}: missing 'id'")
    if not isinstance(question, str) or not question.strip():
        raise TrainingDataError(f"{where}: missing 'question'")
    raw = qa.get("answers", [])
    if not isinstance(raw, list):
        raise TrainingDataError(f"{where}: 'answers' must be a list")
    impossible = bool(qa.get("is_impossible", False))
    if impossible:
        return QAExample(qid, title, question.strip(), context, ())
    if not raw:
        raise TrainingDataError(f"{where}: no answers, and 'is_impossible' is not true")
    answers = []
    for n, answer in enumerate(raw):
        text = answer.get("text") if isinstance(answer, dict) else None
        start = answer.get("answer_start") if isinstance(answer, dict) else None
        if not isinstance(text, str) or not isinstance(start, int):
            raise TrainingDataError(f"{where}: answers[{n}] needs 'text' and an integer 'answer_start'")
        if context[start : start + len(text)] != text:
            raise TrainingDataError(f"{where}: answers[{n}] {text!r} is not at answer_start {start} of the context")
        answers.append((text, start))
    return QAExample(qid, title, question.strip(), context, tuple(answers))


def read_training_files(paths: Sequence[Path], exclude_titles: frozenset[str] = frozenset()) -> list[QAExample]:
    """All files' questions, the first occurrence of each question id kept (the SQuAD 2.0 dev set repeats the
    v1.1 dev questions under the same ids)."""
    seen: set[str] = set()
    examples = []
    for path in paths:
        for example in read_squad_file(path, exclude_titles):
            if example.id not in seen:
                seen.add(example.id)
                examples.append(example)
    if not examples:
        raise TrainingDataError(f"no questions left to train on in {', '.join(map(str, paths))}")
    return examples


def training_split(
    paths: Sequence[Path], split_file: Path | None, exclude_split: str, fraction: float, seed: int
) -> tuple[list[QAExample], list[QAExample], int]:
    """(training, validation) questions of `paths` with the split file's `exclude_split` articles left out,
    and how many articles that split names."""
    excluded = load_split_articles(split_file, exclude_split) if split_file else frozenset()
    train, held = split_validation(read_training_files(paths, excluded), fraction, seed)
    return train, held, len(excluded)


def split_validation(
    examples: Sequence[QAExample], fraction: float, seed: int
) -> tuple[list[QAExample], list[QAExample]]:
    """Hold out whole articles (seeded) until `fraction` of the questions are held out. Articles with
    unanswerable questions are preferred, so the no-answer calibration sees both kinds."""
    if not 0.0 <= fraction < 1.0:
        raise TrainingDataError(f"validation fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return list(examples), []
    titles = sorted({e.title for e in examples})
    random.Random(seed).shuffle(titles)
    with_null = {e.title for e in examples if e.is_impossible}
    titles.sort(key=lambda t: t not in with_null)  # stable: the shuffled order within each group
    wanted, held = fraction * len(examples), set()
    counts = {t: 0 for t in titles}
    for e in examples:
        counts[e.title] += 1
    total = 0
    for title in titles:
        if total >= wanted or len(held) == len(titles) - 1:
            break
        held.add(title)
        total += counts[title]
    return [e for e in examples if e.title not in held], [e for e in examples if e.title in held]
