"""CSV and TSV via the standard `csv` module: each row a `Header: value; ...` line, like a spreadsheet's."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from ingest.budget import MAX_TEXT_BYTES
from ingest.errors import LoadError, one_line
from ingest.loaders._io import read_bytes
from ingest.loaders.tables import render_rows
from ingest.loaders.text import decode_text
from ingest.types import SourceDoc

# Characters of the file's start the sniffer reads: plenty for a dialect, and its regular expressions can take
# time growing with the square of the sample on hostile text (seconds on 16 KiB, under one on 8 KiB).
SNIFF_CHARS = 8 * 1024
# Delimiters the sniffer may choose from: without a list it can pick a letter of a one-column file.
DELIMITERS = ",;\t|"


def sniff(text: str, tab_separated: bool) -> tuple[type[csv.Dialect] | csv.Dialect, bool]:
    """The dialect of `text` and whether its first row is a header.

    The sniffer guesses the dialect (comma when it cannot tell, tab for .tsv files). Its header test votes only
    on columns whose values share a length or a type, so it misses "Name,City" above names and cities; a first
    row of distinct non-empty labels, none of them a number, counts as a header too.
    """
    sample = text[:SNIFF_CHARS]
    sample = sample[: sample.rfind("\n") + 1] or sample  # whole lines only: a cut row misleads the guess
    sniffer = csv.Sniffer()
    try:
        dialect: type[csv.Dialect] | csv.Dialect = sniffer.sniff(sample, "\t" if tab_separated else DELIMITERS)
    except csv.Error:
        dialect = csv.excel_tab if tab_separated else csv.excel
    try:
        voted = sniffer.has_header(sample)
    except csv.Error:
        voted = False
    try:
        rows = list(csv.reader(_lines(sample), dialect))
    except csv.Error:
        rows = []  # the whole text is read again below, where a broken row is reported
    first = next((row for row in rows if any(cell.strip() for cell in row)), [])
    return dialect, voted or _labels(first)


def _lines(text: str) -> io.StringIO:
    """`text` as the csv module wants it: `newline=""` leaves a lone CR, or one inside a quoted field, to it."""
    return io.StringIO(text, newline="")


def _labels(row: list[str]) -> bool:
    cells = [cell.strip() for cell in row]
    return bool(cells) and all(cells) and len(set(cells)) == len(cells) and not any(_is_number(cell) for cell in cells)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "."))  # 3,50 is a number where the comma is the decimal mark
    except ValueError:
        return False
    return True


class CsvLoader:
    """`.csv` and `.tsv` files: one document each, any text encoding, delimiter and header row detected,
    metadata `rows` (data rows) and `delimiter`; titled by the file's stem."""

    suffixes: tuple[str, ...] = (".csv", ".tsv")

    def load(self, path: Path) -> Iterator[SourceDoc]:
        text = decode_text(read_bytes(path, MAX_TEXT_BYTES))
        dialect, header = sniff(text, path.suffix.lower() == ".tsv")
        try:
            table = render_rows(csv.reader(_lines(text), dialect), lambda index: f"column {index + 1}", header)
        except csv.Error as exc:
            raise LoadError(f"not a readable CSV file: {one_line(exc)}") from exc
        if not table.text:
            raise LoadError("no text in any row")
        metadata = {"rows": table.rows, "delimiter": dialect.delimiter}
        return iter([SourceDoc(str(path), table.text, path.stem, metadata)])
