"""SQuAD v1.1/v2.0 files: one document per paragraph, knowing which questions it answers."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ingest.errors import LoadError
from ingest.loaders._io import read_bytes
from ingest.types import SourceDoc


def is_squad(obj: object) -> bool:
    """True for a SQuAD-shaped object: {"data": [{"title": ..., "paragraphs": [...]}, ...]}."""
    if not isinstance(obj, Mapping):
        return False
    data = obj.get("data")
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(article, Mapping) and isinstance(article.get("paragraphs"), list) for article in data)
    )


def squad_paragraphs(obj: Mapping[str, Any], path: Path) -> list[SourceDoc]:
    """Documents of a parsed SQuAD object; `source` is f"{path}#{title}/{paragraph_index}".

    The fragment derives from content (article title, position within that title), not from the
    article's position in the file, so the same paragraph keeps its source across file versions.
    Articles that share a title continue its paragraph numbering, which keeps sources unique.
    """
    if not is_squad(obj):
        raise LoadError('not a SQuAD file: expected {"data": [{"title", "paragraphs"}, ...]}')
    docs: list[SourceDoc] = []
    next_index: dict[str, int] = {}
    for article_index, article in enumerate(obj["data"]):
        title = str(article.get("title") or f"article_{article_index}")
        for paragraph in article["paragraphs"]:
            index = next_index.get(title, 0)
            next_index[title] = index + 1
            context = paragraph.get("context") if isinstance(paragraph, Mapping) else None
            if not isinstance(context, str):
                raise LoadError(f"SQuAD article {title!r} paragraph {index}: missing 'context' text")
            if not context.strip():
                continue
            qas = paragraph.get("qas") or []
            metadata = {
                "article": title,
                "paragraph_index": index,
                "question_ids": [str(qa["id"]) for qa in qas if isinstance(qa, Mapping) and "id" in qa],
            }
            docs.append(SourceDoc(f"{path}#{title}/{index}", context, title.replace("_", " "), metadata))
    return docs


def iter_squad_paragraphs(path: Path) -> Iterator[SourceDoc]:
    """Read a SQuAD json file and yield its paragraphs (the whole file is parsed first)."""
    try:
        obj = json.loads(read_bytes(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LoadError(f"invalid JSON: {exc}") from exc
    return iter(squad_paragraphs(obj, path))


class SquadLoader:
    """SQuAD `.json` files, for callers that know the file is SQuAD (JsonLoader also detects it)."""

    suffixes: tuple[str, ...] = (".json",)

    def load(self, path: Path) -> Iterator[SourceDoc]:
        return iter_squad_paragraphs(path)
