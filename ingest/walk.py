"""Which files an ingestion run reads: the paths given, with folders walked in a fixed order."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from fnmatch import fnmatchcase
from pathlib import Path, PurePath

from ingest.loaders import LOADERS


def iter_files(paths: Sequence[Path], include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Iterator[Path]:
    """Yield the files to ingest, each once, in a deterministic order.

    A file named directly is yielded as it is (a loader decides later whether it can read it).
    A folder is walked recursively in sorted order, skipping hidden files and folders. Globs
    match a file's path relative to the walked folder or its bare name (case-sensitive):
    `include` keeps only matching files, `exclude` drops matching files and folders. Without
    `include`, a walk keeps only files some loader reads, so a LICENSE file is not an error.
    Raises FileNotFoundError, before yielding anything, if a path does not exist.
    """
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"no such file or directory: {path}")
    seen: set[Path] = set()
    for path in paths:
        found = [path] if not path.is_dir() else _walk(path, include, exclude)
        for file in found:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                yield file


def _walk(root: Path, include: Sequence[str], exclude: Sequence[str]) -> list[Path]:
    files: list[PurePath] = []
    for folder, dirnames, filenames in os.walk(root):
        rel_folder = PurePath(folder).relative_to(root)
        # Pruning in place stops os.walk from descending into hidden or excluded folders.
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not _matches(rel_folder / d, exclude)]
        for name in filenames:
            rel = rel_folder / name
            if name.startswith(".") or _matches(rel, exclude):
                continue
            if include and not _matches(rel, include):
                continue
            if not include and rel.suffix.lower() not in LOADERS:
                continue
            files.append(rel)
    return [root / rel for rel in sorted(files, key=lambda rel: rel.parts)]


def _matches(rel: PurePath, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(rel.as_posix(), p) or fnmatchcase(rel.name, p) for p in patterns)
