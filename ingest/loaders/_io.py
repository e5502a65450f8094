"""What every loader does the same way: read a file's bytes within the format's size limit, and silence a
parser's own logging while it reads (our LoadError says once what matters)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ingest.budget import MAX_FILE_BYTES, MIB
from ingest.errors import LoadError

_PIECE_BYTES = MIB


def read_bytes(path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The file's bytes; an unreadable, empty or whitespace-only file, or one over `max_bytes`, is a LoadError.

    A file whose size is over the limit is refused before it is read, and no more than `max_bytes` + 1 bytes are
    read whatever size it reports (a device, or a file still growing)."""
    try:
        with path.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size <= max_bytes:
                data = _read_at_most(stream, size, max_bytes + 1)
                size = len(data)
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc
    if size > max_bytes:
        kind = f"{path.suffix.lower()} files" if path.suffix else "files without a suffix"
        raise LoadError(f"file too large: {_mib(size)}, and {kind} are limited to {_mib(max_bytes)}")
    if not data.strip():
        raise LoadError("empty file")
    return data


def _read_at_most(stream: BinaryIO, size: int, limit: int) -> bytes:
    """Up to `limit` bytes: a file of the `size` it reports in one read, then more in pieces if it has more (a
    file still growing, or a device that reports no size). `read(n)` sets aside n bytes, so n is never the limit."""
    pieces, total, want = [], 0, size + 1
    while total < limit and (piece := stream.read(min(want, limit - total))):
        pieces.append(piece)
        total += len(piece)
        want = _PIECE_BYTES
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


@contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Only CRITICAL records from logger `name` while the block runs: parsers log every recoverable oddity, and
    an error for each damaged part of a file before they raise."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _mib(count: int) -> str:
    return f"{count // MIB} MiB" if count % MIB == 0 else f"{count / MIB:.1f} MiB"
