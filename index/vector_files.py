"""A collection's FAISS file on disk: written once under a name of its own, verified against the manifest on load.

Each save writes a new file named by the collection's generation and only then points the manifest at it, so a
crash at any moment leaves the manifest naming a complete file whose checksum it holds. Files the manifest no
longer names are removed by the next writer.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from index.errors import StoreIntegrityError
from index.manifest import VectorFile
from index.vectors import FaissIndex

_TEMP = re.compile(r"\.tmp$")


def file_name(collection_id: int, generation: int) -> str:
    return f"collection-{collection_id}.g{generation}.sentences.faiss"


def unrecorded_name(collection_id: int) -> str:
    """The one file name of stores saved before vector files were recorded in the manifest."""
    return f"collection-{collection_id}.sentences.faiss"


REPAIR_HINT = "run `rag check --repair` to rebuild the collection's vectors from SQL"


def write(index: FaissIndex, folder: Path, collection_id: int, generation: int) -> VectorFile:
    """Write atomically (temp file, fsync, rename, fsync of the folder), then checksum what reached the disk."""
    path = folder / file_name(collection_id, generation)
    index.save(path)
    _fsync_folder(folder)
    return VectorFile(
        file=path.name,
        sha256=_sha256(path),
        generation=generation,
        vectors=len(index),
        chunks=len(index.ids()),
        index=index.spec,
    )


def read(path: Path, record: VectorFile | None, dimension: int) -> FaissIndex:
    """Load a vector file; StoreIntegrityError (naming the file and the fix) when it is not what was recorded.

    The file is hashed as a stream and then read by FAISS, so a large index is never held twice in memory; files
    are never rewritten in place (each save has a new name), so what was hashed is what is read.
    """
    try:
        digest = _sha256(path) if record is not None else None
    except FileNotFoundError:
        raise  # the caller may have read a manifest that a writer has since replaced: it reads again
    except OSError as exc:
        raise StoreIntegrityError(f"{path}: cannot read vector file ({exc.strerror or exc}); {REPAIR_HINT}") from exc
    if record is not None and digest != record.sha256:
        raise StoreIntegrityError(
            f"{path}: checksum {digest[:12]}... does not match the manifest's {record.sha256[:12]}... "
            f"(the file was changed outside this store); {REPAIR_HINT}"
        )
    try:
        index = FaissIndex.load(path, spec=record.index if record is not None else None)
    except RuntimeError as exc:
        raise StoreIntegrityError(f"{path}: not a readable FAISS index; {REPAIR_HINT}") from exc
    if index.dimension != dimension:
        raise StoreIntegrityError(
            f"{path}: holds {index.dimension}-d vectors but the embedder makes {dimension}-d ones; {REPAIR_HINT}"
        )
    if record is not None and len(index) != record.vectors:
        raise StoreIntegrityError(
            f"{path}: holds {len(index)} vectors but the manifest recorded {record.vectors}; {REPAIR_HINT}"
        )
    return index


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def remove_unrecorded(folder: Path, keep: set[str]) -> list[str]:
    """Delete temp files and vector files the manifest no longer names (only a lock-holding writer may call it)."""
    removed = []
    for path in folder.glob("collection-*"):
        if path.name in keep:
            continue
        if _TEMP.search(path.name) or path.name.endswith(".sentences.faiss"):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
