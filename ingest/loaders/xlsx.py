"""Excel .xlsx via openpyxl: one document per sheet, each row a `Header: value; ...` line."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from ingest.errors import LoadError, one_line
from ingest.loaders._io import read_bytes
from ingest.loaders.tables import render_rows
from ingest.loaders.titles import file_title
from ingest.loaders.zip_guard import check_zip_package
from ingest.types import SourceDoc

# Most cells a workbook may make us visit, padding included. A few hundred bytes of XML can declare a million
# rows of 16,384 columns, which openpyxl pads cell by cell; real workbooks hold far fewer (and 20 million
# cells are already more text than one document may hold).
MAX_CELLS = 20_000_000


class Sheet(NamedTuple):
    name: str
    text: str
    rows: int


def read_xlsx(data: bytes) -> tuple[list[Sheet], str | None]:
    """Every sheet (rendered rows, data-row count) in workbook order, and the workbook's core title."""
    import openpyxl
    from lxml.etree import LxmlError
    from openpyxl.utils import get_column_letter
    from openpyxl.utils.exceptions import InvalidFileException

    # A damaged package fails as a zip, XML, lookup or value error depending on where it breaks.
    damaged = (
        zipfile.BadZipFile, InvalidFileException, LxmlError, SyntaxError, KeyError, ValueError, TypeError,
        AttributeError, OSError,
    )  # fmt: skip
    check_zip_package(data, ".xlsx")  # openpyxl inflates members whole: refuse bombs first
    try:
        # read_only streams rows instead of building every cell; data_only takes a formula's cached value.
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except damaged as exc:
        raise LoadError(f"not a readable .xlsx file: {one_line(exc)}") from exc
    try:
        sheets, budget = [], [MAX_CELLS]
        for worksheet in workbook.worksheets:
            worksheet.reset_dimensions()  # pad rows to their own cells, not to the size the sheet declares
            rows = _within(worksheet.iter_rows(values_only=True), budget)
            table = render_rows(rows, lambda index: get_column_letter(index + 1))
            sheets.append(Sheet(worksheet.title, table.text, table.rows))
        title = workbook.properties.title if workbook.properties else None
    except damaged as exc:
        raise LoadError(f"not a readable .xlsx file: {one_line(exc)}") from exc
    finally:
        workbook.close()
    return sheets, title


def _within(rows: Iterable[Sequence[object]], budget: list[int]) -> Iterator[Sequence[object]]:
    """`rows`, until the cells they hold (an empty row counts as one) use up `budget[0]`: then a LoadError."""
    for row in rows:
        budget[0] -= max(len(row), 1)
        if budget[0] < 0:
            raise LoadError(f"refusing .xlsx file: its sheets hold over {MAX_CELLS:,} cells")
        yield row


class XlsxLoader:
    """`.xlsx` files: one document per sheet that holds any text, with source `path#Sheet name`, titled
    `file_title: Sheet name`, and metadata `sheet` and `rows` (data rows under the header row)."""

    suffixes: tuple[str, ...] = (".xlsx",)

    def load(self, path: Path) -> Iterator[SourceDoc]:
        sheets, title = read_xlsx(read_bytes(path))
        base = file_title(title, path)
        docs = [
            SourceDoc(f"{path}#{name}", text, f"{base}: {name}", {"sheet": name, "rows": rows})
            for name, text, rows in sheets
            if text.strip()
        ]
        if not docs:
            raise LoadError("no text in any sheet")
        return iter(docs)
