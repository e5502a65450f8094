"""File loaders: one per format, chosen by suffix from an explicit registry."""

from __future__ import annotations

from pathlib import Path

from ingest.errors import LoadError, UnsupportedFormatError
from ingest.loaders.csv_loader import CsvLoader
from ingest.loaders.docx import DocxLoader
from ingest.loaders.email_loader import EmlLoader, MsgLoader
from ingest.loaders.epub import EpubLoader
from ingest.loaders.html import HtmlLoader
from ingest.loaders.image import ImageLoader
from ingest.loaders.json_loader import JsonLoader
from ingest.loaders.options import LoaderOptions
from ingest.loaders.pdf import PdfLoader
from ingest.loaders.pptx import PptxLoader
from ingest.loaders.text import TextLoader
from ingest.loaders.xlsx import XlsxLoader
from ingest.types import Loader, SourceDoc

__all__ = ["LOADERS", "LoaderOptions", "load_file", "loader_for", "supported_suffixes"]

_TEXT, _HTML, _PDF, _DOCX, _JSON = TextLoader(), HtmlLoader(), PdfLoader(), DocxLoader(), JsonLoader()
_PPTX, _XLSX, _CSV, _EML, _MSG, _EPUB = PptxLoader(), XlsxLoader(), CsvLoader(), EmlLoader(), MsgLoader(), EpubLoader()
_IMAGE = ImageLoader()

LOADERS: dict[str, Loader] = {
    ".txt": _TEXT,
    ".md": _TEXT,
    ".markdown": _TEXT,
    ".html": _HTML,
    ".htm": _HTML,
    ".pdf": _PDF,
    ".docx": _DOCX,
    ".json": _JSON,
    ".jsonl": _JSON,
    ".pptx": _PPTX,
    ".xlsx": _XLSX,
    ".csv": _CSV,
    ".tsv": _CSV,
    ".eml": _EML,
    ".msg": _MSG,
    ".epub": _EPUB,
    **dict.fromkeys(_IMAGE.suffixes, _IMAGE),  # read by OCR
}


def supported_suffixes() -> list[str]:
    return sorted(LOADERS)


def loader_for(path: Path, options: LoaderOptions | None = None) -> Loader:
    """The loader for `path`'s suffix (case-insensitive), configured with `options` where it takes any."""
    suffix = path.suffix.lower()
    loader = LOADERS.get(suffix)
    if loader is None:
        raise UnsupportedFormatError(
            f"unsupported file type {suffix or '(no suffix)'!r}; supported: {', '.join(supported_suffixes())}"
        )
    if options is not None and isinstance(loader, JsonLoader):
        return JsonLoader(options)
    return loader


def load_file(path: Path, options: LoaderOptions | None = None) -> list[SourceDoc]:
    """Every document in `path`, read completely before any is returned; LoadError if none has text."""
    docs = list(loader_for(path, options).load(path))
    if not any(doc.text.strip() for doc in docs):
        raise LoadError("no text found in file")
    return docs
