"""Word .docx via python-docx: paragraphs and tables in document order."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.errors import LoadError, one_line
from ingest.loaders._io import read_bytes
from ingest.loaders.titles import file_title
from ingest.loaders.zip_guard import check_zip_package
from ingest.types import SourceDoc

if TYPE_CHECKING:
    from docx.table import Table


def read_docx(data: bytes) -> tuple[list[str], str | None]:
    """Non-empty blocks of text (a paragraph, or a table as rows of ` | `-joined cells) and the core title."""
    import docx
    from docx.opc.exceptions import OpcError
    from docx.table import Table
    from lxml.etree import LxmlError

    # A damaged package surfaces as a zip, OPC, XML or lookup error depending on where it breaks.
    damaged = (zipfile.BadZipFile, OpcError, LxmlError, KeyError, ValueError, TypeError, AttributeError, OSError)
    check_zip_package(data, ".docx")  # python-docx inflates members whole: refuse bombs first
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = [
            _table_text(item) if isinstance(item, Table) else item.text.strip()
            for item in document.iter_inner_content()
        ]
        title = document.core_properties.title
    except damaged as exc:
        raise LoadError(f"not a readable .docx file: {one_line(exc)}") from exc
    return [block for block in blocks if block], title.strip() if title and title.strip() else None


def _table_text(table: Table) -> str:
    rows = []
    for row in table.rows:
        cells, previous = [], None
        for cell in row.cells:
            if cell is previous:  # a merged cell repeats once per grid column it spans
                continue
            previous = cell
            if text := " ".join(cell.text.split()):
                cells.append(text)
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows)


class DocxLoader:
    """`.docx` files: one document each, titled by `file_title` (a core-properties title that reads like one, and
    the file's stem)."""

    suffixes: tuple[str, ...] = (".docx",)

    def load(self, path: Path) -> Iterator[SourceDoc]:
        blocks, title = read_docx(read_bytes(path))
        if not blocks:
            raise LoadError("no text in document")
        return iter([SourceDoc(str(path), "\n\n".join(blocks), file_title(title, path))])
