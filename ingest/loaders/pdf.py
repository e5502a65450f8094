"""PDF: text per page, with page start offsets so a citation can name its pages.

pdfium (pypdfium2) reads first: it is many times faster than pypdf, expands ligatures, keeps table cells and page
numbers apart, and reads long filings whose arrays exceed pypdf's safety limits. pypdf reads a file pdfium refuses
or finds no text in, and a file `pdf_guard` keeps from pdfium (which inflates streams without a limit).
A page without a text layer (a scan) is rendered by pdfium and read by OCR; pypdf cannot render, so the pages of a
file pdfium refuses stay without text.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from index.json_safe import clean_text
from ingest.errors import LoadError, one_line
from ingest.loaders._io import quiet_logger, read_bytes
from ingest.loaders.ocr import MAX_OCR_PAGES, Tesseract, ocr_engine, ocr_pdf_pages
from ingest.loaders.pages import join_pages
from ingest.loaders.pdf_guard import pdfium_hazard
from ingest.loaders.titles import file_title
from ingest.types import SourceDoc

if TYPE_CHECKING:
    from pypdfium2 import PdfPage

NO_TEXT = "no extractable text (scanned or image-only PDF?)"
NO_TEXT_AFTER_OCR = "no extractable text: no page has a text layer, and OCR found no text on them"
ENCRYPTED = "encrypted PDF: a password is required"
CORRUPT = "corrupt or truncated PDF: "
# Typographic ligatures as the words they stand for, so "speciﬁc" matches "specific".
_LIGATURES = str.maketrans({"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl"})
# pdfium is not thread-safe, and uploads are loaded on the HTTP app's worker threads.
_PDFIUM_LOCK = threading.Lock()


class PdfText(NamedTuple):
    pages: list[str]  # stripped text of each page, in order
    title: str | None  # the document's /Title, if set


def read_pdf(data: bytes) -> PdfText:
    """The text of each page and the /Title, from the first parser that reads the file and finds text."""
    if b"%PDF-" not in data[:1024]:
        raise LoadError("not a PDF file (no %PDF header)")
    refusals: list[str] = []
    found: PdfText | None = None
    for name, parse in _PARSERS:
        try:
            result = parse(data)
        except LoadError as exc:
            if str(exc) == ENCRYPTED:
                raise  # no parser opens it without the password
            refusals.append(f"{name}: {str(exc).removeprefix(CORRUPT)}")
            continue
        if any(result.pages):
            return PdfText(result.pages, (found and found.title) or result.title)
        found = found or result
    if found is not None:
        return found
    raise LoadError(CORRUPT + "; ".join(refusals))


def _read_pdfium(data: bytes) -> PdfText:
    if hazard := pdfium_hazard(data):
        raise LoadError(f"{CORRUPT}skipped ({hazard})")
    with _PDFIUM_LOCK:
        return _read_pdfium_unlocked(data)


def _read_pdfium_unlocked(data: bytes) -> PdfText:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium.raw.FPDF_ERR_PASSWORD:
            raise LoadError(ENCRYPTED) from exc
        raise LoadError(CORRUPT + _pdfium_reason(exc)) from exc
    try:
        pages = [_pdfium_page_text(document[index]) for index in range(len(document))]
        title = document.get_metadata_value("Title")
    except pdfium.PdfiumError as exc:
        raise LoadError(CORRUPT + _pdfium_reason(exc)) from exc
    finally:
        document.close()
    return PdfText(pages, title if title.strip() else None)


def _pdfium_page_text(page: PdfPage) -> str:
    try:
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_range()
        finally:
            textpage.close()
    finally:
        page.close()
    # pdfium ends lines with CRLF and writes a hyphen that ends a line as U+FFFE, joining the two lines.
    return _clean(text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufffe", "-"))


def _pdfium_reason(exc: BaseException) -> str:
    # "Failed to load document (PDFium: Data format error)." -> "Data format error"
    text = one_line(exc)
    return text.partition("(PDFium: ")[2].rstrip(").") or text


def _read_pypdf(data: bytes) -> PdfText:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    with _quiet_pypdf():
        try:
            reader = PdfReader(io.BytesIO(data))
            # Owner-protected files have an empty user password: they must open.
            if reader.is_encrypted and not reader.decrypt(""):
                raise LoadError(ENCRYPTED)
            pages = [_clean(page.extract_text() or "") for page in reader.pages]
            title = reader.metadata.title if reader.metadata else None
        except FileNotDecryptedError as exc:
            raise LoadError(ENCRYPTED) from exc
        except DependencyError as exc:
            raise LoadError(f"encrypted PDF needs the cryptography package: {exc}") from exc
        # pypdf raises more than its own errors on damaged files (KeyError, ValueError, ...).
        except (PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, OSError) as exc:
            raise LoadError(CORRUPT + one_line(exc)) from exc
    return PdfText(pages, title if isinstance(title, str) and title.strip() else None)


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """pypdf logs and warns about every recoverable oddity; our errors say what matters."""
    with quiet_logger("pypdf"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# Which parser reads first; the next one reads what it refuses or finds no text in.
_PARSERS: tuple[tuple[str, Callable[[bytes], PdfText]], ...] = (("pdfium", _read_pdfium), ("pypdf", _read_pypdf))


def _clean(text: str) -> str:
    # Cleaned here, not only in SourceDoc: page_starts must be offsets into the cleaned text.
    return clean_text(text).translate(_LIGATURES).strip()


class OcrPages(NamedTuple):
    pages: list[str]  # the pages, with the text OCR read on those that had none
    numbers: list[int]  # 1-based numbers of the pages OCR read text on
    engine: str  # the OCR engine and its version, "" when none ran
    skipped: int  # pages without text left unread past MAX_OCR_PAGES
    read: int  # pages OCR read, text found or not


def ocr_empty_pages(data: bytes, pages: list[str], engine: Tesseract | None) -> OcrPages:
    """`pages` with what `engine` reads on each page that has no text, up to MAX_OCR_PAGES of them. Pages stay
    empty where pdfium may not or cannot render the file: pypdf read it, and pypdf cannot render."""
    empty = [index for index, page in enumerate(pages) if not page]
    if engine is None or not empty:
        return OcrPages(pages, [], "", 0, 0)
    found = ocr_pdf_pages(data, len(pages), empty[:MAX_OCR_PAGES], _PDFIUM_LOCK, engine)
    pages = [_clean(found[index]) if index in found else page for index, page in enumerate(pages)]
    numbers = [index + 1 for index in sorted(found) if pages[index]]
    skipped = max(len(empty) - MAX_OCR_PAGES, 0)
    return OcrPages(pages, numbers, engine.name if numbers else "", skipped, len(found))


def _ocr_engine(pages: list[str]) -> Tesseract | None:
    """The OCR engine; None when none is installed and the text layer has text, which is then all there is."""
    try:
        return ocr_engine()
    except LoadError as exc:
        if any(pages):
            return None
        raise LoadError(f"{NO_TEXT}; {exc}") from exc


class PdfLoader:
    """`.pdf` files: one document each, metadata `page_count` and `page_starts` (offsets into the text), titled
    by `file_title` (a /Title that reads like one, and the file's stem). Pages read by OCR are listed in
    `ocr_pages`, with the engine in `ocr_engine`."""

    suffixes: tuple[str, ...] = (".pdf",)

    def load(self, path: Path) -> Iterator[SourceDoc]:
        data = read_bytes(path)
        pages, title = read_pdf(data)
        ocr = ocr_empty_pages(data, pages, None if all(pages) else _ocr_engine(pages))
        pages = ocr.pages
        if not any(pages):
            raise LoadError(NO_TEXT_AFTER_OCR if ocr.read else NO_TEXT)
        text, metadata = join_pages(pages)
        if ocr.numbers:
            metadata |= {"ocr_pages": ocr.numbers, "ocr_engine": ocr.engine}
        if ocr.skipped:
            metadata["ocr_pages_skipped"] = ocr.skipped
        return iter([SourceDoc(str(path), text, file_title(title, path), metadata)])
