"""Reading a file's bytes the same way in every loader."""

from __future__ import annotations

from pathlib import Path

from ingest.errors import LoadError


def read_bytes(path: Path) -> bytes:
    """The file's bytes; an unreadable, empty or whitespace-only file is a LoadError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc
    if not data.strip():
        raise LoadError("empty file")
    return data
