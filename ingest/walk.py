"""Which files an ingestion run reads: the paths given, with folders walked in a fixed order."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from fnmatch import fnmatchcase
from pathlib import Path, PurePath

from ingest.loaders import LOADERS

log = logging.getLogger(__name__)

# Called with a path the walk does not yield, and why, in one line: a folder it cannot list, or a named pipe,
# socket or device (reading one could block the run for good).
OnSkip = Callable[[Path, str], None]


def iter_files(
    paths: Sequence[Path],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    on_skip: OnSkip | None = None,
) -> Iterator[Path]:
    """Yield the files to ingest, each once, in a deterministic order.

    A file named directly is yielded as it is (a loader decides later whether it can read it).
    A folder is walked recursively in sorted order, skipping hidden files and folders. Globs
    match a file's path relative to the walked folder or its bare name (case-sensitive):
    `include` keeps only matching files, `exclude` drops matching files and folders. Without
    `include`, a walk keeps only files some loader reads, so a LICENSE file is not an error.

    Symbolic links to files are yielded like files, broken ones and loops included: reading
    them fails, and the caller reports that file. Links to folders inside a walked folder are
    not followed, so a link to a parent folder cannot make the walk endless. A folder that
    cannot be listed, and anything that is not a regular file, goes to `on_skip` (logged as a
    warning without one) and the run goes on.
    Raises FileNotFoundError, before yielding anything, if a path does not exist.
    """
    for path in paths:
        if not os.path.lexists(path):  # a broken link named directly is the loader's to report
            raise FileNotFoundError(f"no such file or directory: {path}")
    skip = on_skip or _log_skip
    seen: set[Path] = set()
    for path in paths:
        found = _walk(path, include, exclude, skip) if path.is_dir() else [path]
        for file in found:
            key = _identity(file)
            if key in seen:
                continue
            seen.add(key)
            if reason := _not_a_file(file):
                skip(file, reason)
            else:
                yield file


def _identity(file: Path) -> Path:
    """What makes two paths the same file: the resolved path; for a link that loops, its resolved folder and name."""
    try:
        return file.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        pass
    try:
        return file.parent.resolve() / file.name
    except (OSError, RuntimeError):
        return Path(os.path.abspath(file))


def _not_a_file(path: Path) -> str | None:
    """Why `path` must not be read as a file (a named pipe would block the reader for good), or None."""
    try:
        mode = path.stat().st_mode
    except (OSError, RuntimeError):
        return None  # a broken link or a loop: reading it fails at once, with a clear reason
    if stat.S_ISREG(mode):
        return None
    kind = "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"not a regular file ({kind})"


def _log_skip(path: Path, reason: str) -> None:
    log.warning("skipped %s: %s", path, reason)


def _walk(root: Path, include: Sequence[str], exclude: Sequence[str], skip: OnSkip) -> list[Path]:
    def unreadable(exc: OSError) -> None:
        skip(Path(exc.filename or root), f"cannot read folder: {exc.strerror or exc}")

    files: list[PurePath] = []
    for folder, dirnames, filenames in os.walk(root, onerror=unreadable):
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
