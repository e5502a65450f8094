"""The store's manifest: a JSON file beside the data saying how it was built, checked on every open."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from index.errors import ManifestError

FORMAT_VERSION = 2  # 2: vector files named by generation, with checksums
MANIFEST_NAME = "manifest.json"


def library_versions() -> dict[str, str]:
    versions = {}
    for package in ("faiss-cpu", "faiss-gpu", "sentence-transformers", "torch", "sqlalchemy", "ragkit"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass(frozen=True)
class IndexSpec:
    """What a collection's FAISS index is and how it was made (`index.layouts` chooses and builds it)."""

    factory: str = "Flat"  # FAISS factory string, inner product; "Flat" is exact search
    requested: str | None = None  # the factory a user asked for; None: chosen by the collection's size
    design_vectors: int = 0  # vectors it was trained for; it is rebuilt when the collection outgrows them
    nlist: int | None = None  # inverted lists (IVF)
    nprobe: int | None = None  # lists searched per query (IVF)
    code_bytes: int = 0  # bytes stored per vector (the codes, not the ids)
    recall_at_10: float | None = None  # chunk recall@10 against exact search, measured when built
    calibration: str = ""  # the queries that recall was measured on


@dataclass(frozen=True)
class VectorFile:
    """One collection's saved FAISS file as its writer left it: what `index.vector_files` verifies on load."""

    file: str  # name inside <store>/vectors
    sha256: str
    generation: int  # the collection's SQL generation the file reflects
    vectors: int
    chunks: int
    index: IndexSpec = field(default_factory=IndexSpec)


@dataclass(frozen=True)
class Manifest:
    embedder: str
    dimension: int
    format_version: int = FORMAT_VERSION
    index_type: str = "IDMap2,FlatIP"  # before format 2; each vector file now records its own `index`
    collections: dict[str, dict[str, int]] = field(default_factory=dict)
    vector_files: dict[str, VectorFile] = field(default_factory=dict)  # by collection name
    versions: dict[str, str] = field(default_factory=library_versions)


def write_atomic(path: Path, data: str) -> None:
    """Write a text file so readers see the old or the new content, never a mix."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read(root: Path) -> Manifest | None:
    path = root / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        files = {
            name: VectorFile(**{**record, "index": IndexSpec(**record.get("index", {}))})
            for name, record in raw.pop("vector_files", {}).items()
        }
        manifest = Manifest(**raw, vector_files=files)
    except (OSError, ValueError, TypeError) as exc:
        raise ManifestError(f"{path}: unreadable manifest ({exc})") from exc
    if manifest.format_version > FORMAT_VERSION:
        raise ManifestError(
            f"{path}: store format {manifest.format_version} is newer than this version supports ({FORMAT_VERSION})"
        )
    return manifest


def write(root: Path, manifest: Manifest) -> None:
    write_atomic(root / MANIFEST_NAME, json.dumps(asdict(manifest), indent=2, sort_keys=True))
