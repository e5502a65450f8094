"""PDF via pypdf: text per page, with page start offsets so a citation can name its pages."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from index.json_safe import clean_text
from ingest.errors import LoadError
from ingest.loaders._io import read_bytes
from ingest.types import SourceDoc

PAGE_SEPARATOR = "\n\n"
NO_TEXT = "no extractable text (scanned or image-only PDF?)"


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """pypdf logs and warns about every recoverable oddity; our errors say what matters."""
    logger = logging.getLogger("pypdf")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def read_pdf(data: bytes) -> tuple[list[str], str | None]:
    """The text of each page (stripped) and the document's /Title, if set."""
    if b"%PDF-" not in data[:1024]:
        raise LoadError("not a PDF file (no %PDF header)")
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    with _quiet_pypdf():
        try:
            reader = PdfReader(io.BytesIO(data))
            # Owner-protected files have an empty user password: they must open.
            if reader.is_encrypted and not reader.decrypt(""):
                raise LoadError("encrypted PDF: a password is required")
            # Cleaned here, not only in SourceDoc: page_starts must be offsets into the cleaned text.
            pages = [clean_text(page.extract_text() or "").strip() for page in reader.pages]
            title = reader.metadata.title if reader.metadata else None
        except FileNotDecryptedError as exc:
            raise LoadError("encrypted PDF: a password is required") from exc
        except DependencyError as exc:
            raise LoadError(f"encrypted PDF needs the cryptography package: {exc}") from exc
        # pypdf raises more than its own errors on damaged files (KeyError, ValueError, ...).
        except (PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, OSError) as exc:
            raise LoadError(f"corrupt or truncated PDF: {_one_line(exc)}") from exc
    return pages, title if isinstance(title, str) and title.strip() else None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def page_starts(pages: list[str]) -> list[int]:
    """Character offset of each page in PAGE_SEPARATOR.join(pages)."""
    starts, offset = [], 0
    for page in pages:
        starts.append(offset)
        offset += len(page) + len(PAGE_SEPARATOR)
    return starts


class PdfLoader:
    """`.pdf` files: one document each, metadata `page_count` and `page_starts` (offsets into the text)."""

    suffixes: tuple[str, ...] = (".pdf",)

    def load(self, path: Path) -> Iterator[SourceDoc]:
        pages, title = read_pdf(read_bytes(path))
        if not any(pages):
            raise LoadError(NO_TEXT)
        metadata = {"page_count": len(pages), "page_starts": page_starts(pages)}
        text = PAGE_SEPARATOR.join(pages)
        return iter([SourceDoc(str(path), text, title.strip() if title else path.stem, metadata)])
