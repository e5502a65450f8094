"""PowerPoint .pptx via python-pptx: each slide's title, text, tables and notes, slide by slide."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from index.json_safe import clean_text
from ingest.errors import LoadError, one_line
from ingest.loaders._io import read_bytes
from ingest.loaders.pages import join_pages
from ingest.loaders.titles import file_title, reads_like_title
from ingest.loaders.zip_guard import check_zip_package
from ingest.types import SourceDoc

if TYPE_CHECKING:
    from pptx.shapes.base import BaseShape
    from pptx.slide import Slide
    from pptx.table import Table


class Deck(NamedTuple):
    """A presentation as read: each slide's text ("" for a slide without any), and its title."""

    slides: list[str]
    title: str | None


def read_pptx(data: bytes) -> Deck:
    """The text of every slide in order, and a title: the core title when it reads like one, else the first
    slide's title placeholder."""
    import pptx
    from lxml.etree import LxmlError
    from pptx.exc import PythonPptxError

    # A damaged package fails as a zip, OPC, XML or lookup error depending on where it breaks.
    damaged = (zipfile.BadZipFile, PythonPptxError, LxmlError, KeyError, ValueError, TypeError, AttributeError, OSError)
    check_zip_package(data, ".pptx")  # python-pptx inflates members whole: refuse bombs first
    try:
        presentation = pptx.Presentation(io.BytesIO(data))
        slides = [_slide_text(slide) for slide in presentation.slides]
        core = presentation.core_properties.title or ""
        first = presentation.slides[0].shapes.title if slides else None
    except damaged as exc:
        raise LoadError(f"not a readable .pptx file: {one_line(exc)}") from exc
    if reads_like_title(core):
        return Deck(slides, core)
    return Deck(slides, _text(first.text_frame.text) if first is not None and first.has_text_frame else None)


def _slide_text(slide: Slide) -> str:
    """Title first, then the other shapes in reading order (their order on the slide), then the notes."""
    title = slide.shapes.title
    blocks = [_text(title.text_frame.text)] if title is not None and title.has_text_frame else []
    blocks += _shape_blocks(shape for shape in slide.shapes if title is None or shape.shape_id != title.shape_id)
    if slide.has_notes_slide and (notes := slide.notes_slide.notes_text_frame) is not None:
        blocks.append(_text(notes.text))
    # Cleaned here, not only in SourceDoc: slide_starts must be offsets into the cleaned text.
    return clean_text("\n\n".join(block for block in blocks if block))


def _shape_blocks(shapes: Iterable[BaseShape]) -> list[str]:
    from pptx.shapes.group import GroupShape

    blocks = []
    for shape in shapes:
        if isinstance(shape, GroupShape):  # its shapes, in their order
            blocks += _shape_blocks(shape.shapes)
        elif getattr(shape, "has_table", False):
            blocks.append(_table_text(shape.table))
        elif shape.has_text_frame:
            blocks.append(_text(shape.text_frame.text))
    return [block for block in blocks if block]


def _table_text(table: Table) -> str:
    rows = []
    for row in table.rows:
        cells = [text for cell in row.cells if not cell.is_spanned and (text := " ".join(cell.text.split()))]
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _text(text: str) -> str:
    """A text frame's paragraphs, one a line; python-pptx gives a line break inside one as a vertical tab."""
    lines = (" ".join(line.split()) for line in text.replace("\v", "\n").splitlines())
    return "\n".join(line for line in lines if line)


class PptxLoader:
    """`.pptx` files: one document each, slides separated by a blank line, metadata `slide_count` and
    `slide_starts` (each slide's offset into the text), titled by `file_title`."""

    suffixes: tuple[str, ...] = (".pptx",)

    def load(self, path: Path) -> Iterator[SourceDoc]:
        deck = read_pptx(read_bytes(path))
        if not any(deck.slides):
            raise LoadError("no text on any slide")
        text, metadata = join_pages(deck.slides, "slide")
        return iter([SourceDoc(str(path), text, file_title(deck.title, path), metadata)])
