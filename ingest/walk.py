"""Which files an ingestion run reads: the paths given, with folders walked in a fixed order."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePath

from ingest.loaders import LOADERS

log = logging.getLogger(__name__)

# Called with a path the walk does not yield, and why, in one line: a folder it cannot list, or a named pipe,
# socket or device (reading one could block the run for good).
OnSkip = Callable[[Path, str], None]


@dataclass(frozen=True)
class PassedOver:
    """A file (or a whole folder) that a folder walk did not yield, and why, in one line.

    `kind` groups entries in a summary: "unsupported type: .exe", "hidden", "hidden folder", "excluded",
    "excluded folder" or "not included". A hidden or excluded folder is one entry: it is not walked, so the
    files in it are neither read nor listed (walking `.git` or `node_modules` to list them would cost more
    than the ingest).
    """

    path: str
    reason: str
    kind: str


OnPassOver = Callable[[PassedOver], None]


def iter_files(
    paths: Sequence[Path],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    on_skip: OnSkip | None = None,
    on_pass_over: OnPassOver | None = None,
) -> Iterator[Path]:
    """Yield the files to ingest, each once, in a deterministic order.

    A file named directly is yielded as it is (a loader decides later whether it can read it).
    A folder is walked recursively in sorted order, skipping hidden files and folders. Globs
    match a file's path relative to the walked folder or its bare name (case-sensitive):
    `include` keeps only matching files, `exclude` drops matching files and folders. Without
    `include`, a walk keeps only files some loader reads, so a LICENSE file is not an error.
    Every file and folder a walk passes over goes to `on_pass_over` (logged at INFO without
    one) once the walk is done, unless the same file is yielded after all (named directly too).

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
    passed: list[PassedOver] = []
    for path in paths:
        found = [path]
        if path.is_dir():
            found, passed_here = _walk(path, include, exclude, skip)
            passed += passed_here
        for file in found:
            key = _identity(file)
            if key in seen:
                continue
            seen.add(key)
            if reason := _not_a_file(file):
                skip(file, reason)
            else:
                yield file
    _report_passed(passed, seen, on_pass_over or _log_pass_over)


def _report_passed(passed: list[PassedOver], seen: set[Path], report: OnPassOver) -> None:
    """Each entry once, but none the walk yielded after all."""
    for entry in passed:
        key = _identity(Path(entry.path))
        if key not in seen:
            seen.add(key)
            report(entry)


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


def _log_pass_over(entry: PassedOver) -> None:
    log.info("passed over %s: %s", entry.path, entry.reason)


def _walk(
    root: Path, include: Sequence[str], exclude: Sequence[str], skip: OnSkip
) -> tuple[list[Path], list[PassedOver]]:
    """The files to read under `root`, and what was passed over (both sorted by path)."""

    def unreadable(exc: OSError) -> None:
        skip(Path(exc.filename or root), f"cannot read folder: {exc.strerror or exc}")

    files: list[PurePath] = []
    passed: list[tuple[PurePath, str, str]] = []
    for folder, dirnames, filenames in os.walk(root, onerror=unreadable):
        rel_folder = PurePath(folder).relative_to(root)
        kept = []
        for name in dirnames:
            if why := _folder_passed_over(rel_folder / name, exclude):
                passed.append((rel_folder / name, *why))
            else:
                kept.append(name)
        dirnames[:] = kept  # pruning in place stops os.walk from descending into hidden or excluded folders
        for name in filenames:
            rel = rel_folder / name
            if why := _file_passed_over(rel, include, exclude):
                passed.append((rel, *why))
            else:
                files.append(rel)
    return (
        [root / rel for rel in sorted(files, key=lambda rel: rel.parts)],
        [PassedOver(str(root / rel), reason, kind) for rel, reason, kind in sorted(passed, key=lambda p: p[0].parts)],
    )


def _folder_passed_over(rel: PurePath, exclude: Sequence[str]) -> tuple[str, str] | None:
    """(reason, kind) when the walk must not enter the folder, else None."""
    if rel.name.startswith("."):
        return "hidden folder, not walked", "hidden folder"
    if pattern := _match(rel, exclude):
        return f"folder excluded by {pattern!r}, not walked", "excluded folder"
    return None


def _file_passed_over(rel: PurePath, include: Sequence[str], exclude: Sequence[str]) -> tuple[str, str] | None:
    """(reason, kind) when the walk must not yield the file, else None."""
    if rel.name.startswith("."):
        return "hidden file", "hidden"
    if pattern := _match(rel, exclude):
        return f"excluded by {pattern!r}", "excluded"
    if include and not _match(rel, include):
        return f"matches no include pattern ({', '.join(map(repr, include))})", "not included"
    suffix = rel.suffix.lower()
    if not include and suffix not in LOADERS:
        shown = repr(suffix) if suffix else "(no suffix)"
        return f"unsupported file type {shown}", f"unsupported type: {suffix or '(no suffix)'}"
    return None


def _match(rel: PurePath, patterns: Sequence[str]) -> str | None:
    """The first pattern matching the path relative to the walked folder, or its bare name."""
    return next((p for p in patterns if fnmatchcase(rel.as_posix(), p) or fnmatchcase(rel.name, p)), None)
