"""Rows of a table (a spreadsheet or a CSV file) as text: one `Header: value; Header: value` line per row.

Each line names what its values are, so a chunk cut from the middle of a long table still says which column a
number belongs to, and retrieval matches "age of John Doe" against `Name: John Doe; Age: 27`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple


class TableText(NamedTuple):
    """A table rendered as text: the lines, and how many data rows (rows below the header) they hold."""

    text: str
    rows: int


def cell_text(value: object) -> str:
    """A cell's value as one line: whitespace collapsed, whole floats without `.0`, dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # spreadsheets store every number as a float: 3.0 is the 3 a user typed
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return " ".join(str(value).split())


def render_rows(
    rows: Iterable[Sequence[object]],
    column_label: Callable[[int], str],
    header: bool = True,
) -> TableText:
    """Rows as `Header: value; ...` lines, empty rows and empty cells left out.

    With `header`, the first non-empty row names the columns; a column it leaves blank, and every column
    without `header`, is named by `column_label(index)` (0-based). A table that is only a header row becomes
    that row, its cells joined by ` | `.
    """
    names: dict[int, str] | None = None if header else {}
    lines: list[str] = []
    for row in rows:
        if row.count(None) == len(row):  # counted in C: a padded spreadsheet row can be 16,384 cells wide
            continue
        # Only the cells that hold something: a row is sparse when the sheet pads it to its widest column.
        cells = {index: text for index, value in enumerate(row) if value is not None and (text := cell_text(value))}
        if not cells:
            continue
        if names is None:
            names = cells
            continue
        lines.append("; ".join(f"{names.get(index) or column_label(index)}: {text}" for index, text in cells.items()))
    if not lines and names:
        return TableText(" | ".join(names.values()), 0)
    return TableText("\n".join(lines), len(lines))
