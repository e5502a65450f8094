"""A run's result rows as the reports read them: which rows were answered, how each one is tagged, how values print.

Shared by the markdown and HTML reports, so both classify a question the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Row = Mapping[str, Any]

KS = (1, 3, 5, 10, 20)  # the retrieval depths reported (recall@k)
# The per-question filters, in the order the HTML report shows them.
TAGS = ("answered", "abstained", "wrong", "right")


def answered_rows(rows: Sequence[Row]) -> list[Row]:
    """Rows the reader was asked about (an abstention included); retrieval-only rows have no prediction."""
    return [row for row in rows if row.get("prediction") is not None]


def row_tags(row: Row) -> tuple[str, ...]:
    """``answered`` (an answer other than an abstention) or ``abstained``; ``wrong`` for an answer with EM 0,
    ``right`` for EM 1 (under SQuAD v2 rules a correct abstention is right too). Retrieval-only rows: none."""
    if row.get("prediction") is None:
        return ()
    tags = ["abstained" if row.get("abstained") else "answered"]
    if row.get("exact"):
        tags.append("right")
    elif not row.get("abstained"):
        tags.append("wrong")
    return tuple(tags)


def gold_rank_text(row: Row) -> str:
    """The rank of the first retrieved relevant document, "-" when none was within the retrieval depth."""
    return "-" if row.get("gold_rank") is None else str(row["gold_rank"])


def fmt(value: Any) -> str:  # noqa: ANN401 - any metric value
    """A metric for people: floats with 4 decimals below 1, else 2."""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)
