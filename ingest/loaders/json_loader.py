"""JSON and JSON Lines records: one document per record, fields chosen by LoaderOptions."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ingest.budget import MAX_JSON_BYTES, MAX_JSON_DEPTH
from ingest.errors import LoadError
from ingest.loaders._io import read_bytes
from ingest.loaders.options import LoaderOptions
from ingest.loaders.squad import is_squad, squad_paragraphs
from ingest.types import SourceDoc

_RECORD_LISTS = ("data", "documents", "records")
_SCALARS = (str, int, float, bool)


def iter_jsonl(data: bytes) -> Iterator[tuple[int, Any]]:
    """(1-based line number, value) for each non-blank line; a bad line is a LoadError naming its number."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(f"JSONL is not UTF-8: {exc}") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, _loads(line, f" on line {number}")
        except json.JSONDecodeError as exc:
            raise LoadError(f"invalid JSON on line {number}: {exc.msg} (column {exc.colno})") from exc


def parse_jsonl(data: bytes) -> list[Any]:
    """One JSON value per non-blank line."""
    return [value for _, value in iter_jsonl(data)]


def parse_json(data: bytes) -> Any:
    try:
        return _loads(data, "")  # bytes: json detects UTF-8/16/32 and a UTF-8 BOM itself
    except json.JSONDecodeError as exc:
        raise LoadError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise LoadError(f"JSON is not UTF-8/16/32: {exc}") from exc


def _loads(data: str | bytes, where: str) -> Any:
    """json.loads, with nesting past MAX_JSON_DEPTH and numbers Python refuses to read as LoadErrors (`where`
    names the line, for JSON Lines). JSONDecodeError and UnicodeDecodeError are left to the caller."""
    too_deep = f"JSON nested deeper than {MAX_JSON_DEPTH} levels{where}"
    try:
        value = json.loads(data)
    except RecursionError as exc:  # the parser recurses once per level and gives up near 1,000
        raise LoadError(too_deep) from exc
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError as exc:  # an integer of more digits than int() reads (sys.get_int_max_str_digits)
        raise LoadError(f"unreadable JSON value{where}: {' '.join(str(exc).split())}") from exc
    if json_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise LoadError(too_deep)
    return value


def json_depth(value: Any, stop: int) -> int:
    """How deeply arrays and objects nest in `value` (a scalar is 0, `[]` is 1), counted without recursion up to
    `stop` + 1 levels."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > stop:
            break
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def records_of(obj: Any) -> list[Any]:
    """A list of records, one object, or an object holding its records under data/documents/records."""
    if isinstance(obj, list):
        return obj
    if isinstance(obj, Mapping):
        for key in _RECORD_LISTS:
            if isinstance(obj.get(key), list):
                return obj[key]
        return [obj]
    raise LoadError(f"expected a JSON object or list of objects, got {type(obj).__name__}")


def record_doc(record: Any, index: int, path: Path, options: LoaderOptions) -> SourceDoc:
    """One record as a document; `source` is f"{path}#{id}", or f"{path}#{index}" without an id."""
    if not isinstance(record, Mapping):
        raise LoadError(f"record {index}: expected a JSON object, got {type(record).__name__}")
    text = record.get(options.text_field)
    if text is None:
        raise LoadError(f"record {index}: missing field {options.text_field!r}")
    if not isinstance(text, str):
        raise LoadError(f"record {index}: field {options.text_field!r} is not a string")
    title = record.get(options.title_field) if options.title_field else None
    record_id = record.get(options.id_field) if options.id_field else None
    fragment = record_id if record_id is not None else index
    own = {options.text_field, options.title_field, options.id_field}
    if options.metadata_fields:
        metadata = {key: record[key] for key in options.metadata_fields if key in record}
    else:
        metadata = {k: v for k, v in record.items() if k not in own and (v is None or isinstance(v, _SCALARS))}
    return SourceDoc(f"{path}#{fragment}", text, "" if title is None else str(title), metadata)


def _check_squad_questions(obj: Mapping[str, Any]) -> None:
    """squad_paragraphs reads a paragraph's "qas" as a list of questions: refuse any other value first."""
    for article in obj["data"]:
        for paragraph in article["paragraphs"]:
            questions = paragraph.get("qas") if isinstance(paragraph, Mapping) else None
            if questions and not isinstance(questions, list):
                raise LoadError(
                    f"SQuAD article {str(article.get('title'))!r}: a paragraph's 'qas' is of type "
                    f"{type(questions).__name__}, not a list of questions"
                )


class JsonLoader:
    """`.json` and `.jsonl` files of records (SQuAD files are recognised and read per paragraph)."""

    suffixes: tuple[str, ...] = (".json", ".jsonl")

    def __init__(self, options: LoaderOptions | None = None) -> None:
        self.options = options or LoaderOptions()

    def load(self, path: Path) -> Iterator[SourceDoc]:
        data = read_bytes(path, MAX_JSON_BYTES)
        if path.suffix.lower() == ".jsonl":
            records = parse_jsonl(data)
        else:
            obj = parse_json(data)
            if is_squad(obj):
                _check_squad_questions(obj)
                return iter(squad_paragraphs(obj, path))
            records = records_of(obj)
        docs = [record_doc(record, index, path, self.options) for index, record in enumerate(records)]
        seen: set[str] = set()
        for doc in docs:
            if doc.source in seen:
                raise LoadError(f"duplicate record id: {doc.source.rpartition('#')[2]!r}")
            seen.add(doc.source)
        return iter(docs)  # records without text too: the pipeline reports each one it skips
