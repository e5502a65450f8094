"""EPUB e-books via EbookLib: the chapters in reading (spine) order, each through the HTML loader's extraction."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from index.json_safe import clean_text
from ingest.errors import LoadError, one_line
from ingest.loaders._io import read_bytes
from ingest.loaders.html import html_to_text
from ingest.loaders.pages import join_pages
from ingest.loaders.titles import file_title
from ingest.loaders.zip_guard import check_zip_package
from ingest.types import SourceDoc

EPUB_INSTALL_HINT = "pip install 'ragkit[epub]' (EbookLib is AGPL-3.0, so it is not installed by default)"


class Book(NamedTuple):
    """A book as read: each chapter's text ("" for one without any), and its Dublin Core title."""

    chapters: list[str]
    title: str | None


def read_epub(data: bytes) -> Book:
    """The visible text of every spine document but the table of contents, in reading order, and the title."""
    try:
        import ebooklib
        from ebooklib import epub
    except ImportError as exc:
        raise LoadError(f".epub files need EbookLib: {EPUB_INSTALL_HINT}") from exc
    from lxml.etree import LxmlError

    # A damaged package fails as a zip, EPUB, XML or lookup error depending on where it breaks.
    damaged = (zipfile.BadZipFile, epub.EpubException, LxmlError, KeyError, ValueError, TypeError, AttributeError)
    check_zip_package(data, ".epub")  # EbookLib inflates every member whole: refuse bombs first
    try:
        # ignore_ncx: the spine orders the chapters; the old NCX table of contents is not needed for that.
        book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": True})
        items = [book.get_item_with_id(idref) for idref, _linear in book.spine]
        documents = [item for item in items if item is not None and item.get_type() == ebooklib.ITEM_DOCUMENT]
        pages = [item.get_content() for item in documents if not isinstance(item, epub.EpubNav)]
        titles = book.get_metadata("DC", "title")
    except damaged as exc:
        raise LoadError(f"not a readable .epub file: {one_line(exc)}") from exc
    # Cleaned here, not only in SourceDoc: chapter_starts must be offsets into the cleaned text.
    chapters = [clean_text(html_to_text(page)[0]) if page.strip() else "" for page in pages]
    title = titles[0][0] if titles and isinstance(titles[0][0], str) else None
    return Book(chapters, title)


class EpubLoader:
    """`.epub` files: one document each, chapters separated by a blank line, metadata `chapter_count` and
    `chapter_starts` (offsets into the text), titled by `file_title`."""

    suffixes: tuple[str, ...] = (".epub",)

    def load(self, path: Path) -> Iterator[SourceDoc]:
        book = read_epub(read_bytes(path))
        if not any(book.chapters):
            raise LoadError("no text in any chapter")
        text, metadata = join_pages(book.chapters, "chapter")
        return iter([SourceDoc(str(path), text, file_title(book.title, path), metadata)])
