"""Uploaded files: safe names, saved under <store>/uploads/<collection>/, then ingested one by one."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from index import Store
from ingest.pipeline import default_chunker, ingest_paths
from rag.service.openai_schema import ApiError

_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)
COLLECTION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_COLLECTION = re.compile(COLLECTION_PATTERN)
MAX_NAME = 160


def safe_filename(name: str) -> str:
    """The base name only: no folders, no "..", no leading dot, no control or shell characters.

    "../../evil.txt" -> "evil.txt"; "C:\\x\\.env" -> "env". ApiError 400 when nothing usable is left.
    """
    base = re.split(r"[\\/]", name or "")[-1]
    base = _UNSAFE.sub("_", base).strip().lstrip(".").strip()
    base = base.replace("..", ".")
    stem, dot, suffix = base.rpartition(".")
    if len(base) > MAX_NAME:
        base = (stem[: MAX_NAME - len(suffix) - 1] + dot + suffix) if dot else base[:MAX_NAME]
    if not base or base in {".", ".."}:
        raise ApiError(400, f"unusable file name {name!r}", code="invalid_file_name", param="files")
    return base


def check_collection(name: str) -> str:
    if not _COLLECTION.match(name):
        raise ApiError(
            400,
            f"collection {name!r} must be 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit",
            code="invalid_collection",
            param="collection",
        )
    return name


def upload_dir(store_root: Path, collection: str) -> Path:
    return Path(store_root) / "uploads" / check_collection(collection)


def save_upload(folder: Path, filename: str, data: BinaryIO) -> Path:
    """Write one upload into `folder` (never outside it, whatever the client called the file)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = (folder / safe_filename(filename)).resolve()
    if target.parent != folder.resolve():
        raise ApiError(400, f"unusable file name {filename!r}", code="invalid_file_name", param="files")
    partial = target.with_name(f".{target.name}.part")
    with partial.open("wb") as out:
        shutil.copyfileobj(data, out, length=1024 * 1024)
    partial.replace(target)
    return target


@dataclass(frozen=True)
class UploadResult:
    filename: str
    saved_as: str
    status: str  # "ingested" or "error"
    documents: int = 0
    chunks: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def ingest_uploads(
    store: Store,
    collection: str,
    files: Sequence[tuple[str, BinaryIO]],
    chunk_tokens: int | None = None,
    overlap_tokens: int = 32,
) -> list[UploadResult]:
    """Save and ingest each (client file name, content) pair; one bad file is reported, never fatal."""
    folder = upload_dir(store.root, collection)
    saved = [(name, save_upload(folder, name, data)) for name, data in files]
    chunker = default_chunker(store, chunk_tokens, overlap_tokens)
    results = []
    for name, path in saved:
        report = ingest_paths(store, [path], collection=collection, chunker=chunker, progress=False, on_error=_ignore)
        error = "; ".join(e.reason for e in report.errors) or None
        results.append(
            UploadResult(
                filename=name,
                saved_as=path.name,
                status="error" if error else "ingested",
                documents=report.documents,
                chunks=report.chunks,
                added=report.added,
                replaced=report.replaced,
                unchanged=report.unchanged,
                error=error,
            )
        )
    return results


def _ignore(_error: object) -> None:
    """Errors are returned in the results; nothing to log."""


def remove_upload(store_root: Path, source: str) -> bool:
    """Delete the saved file behind a document, when it is one of our uploads; True if a file was removed."""
    uploads = (Path(store_root) / "uploads").resolve()
    path = Path(source).resolve()
    if uploads in path.parents and path.is_file():
        path.unlink()
        return True
    return False


def delete_document_by_id(store: Store, document_id: int) -> dict[str, object]:
    """Remove a document from the store (and its uploaded file, if it was uploaded); ApiError 404 if unknown."""
    found = next((d for d in store.documents() if d.id == document_id), None)
    if found is None:
        raise ApiError(404, f"no document with id {document_id}", code="document_not_found")
    chunks = store.delete(found.source, found.collection)
    removed = remove_upload(store.root, found.source)
    return {
        "id": document_id,
        "object": "document",
        "deleted": True,
        "source": found.source,
        "chunks": chunks,
        "file_removed": removed,
    }
