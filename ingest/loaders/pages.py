"""Documents made of pages (PDF pages, slides, chapters, image frames): one text, pages apart by a blank line,
and each page's offset into it, so a citation can name its page."""

from __future__ import annotations

PAGE_SEPARATOR = "\n\n"


def page_starts(pages: list[str]) -> list[int]:
    """Character offset of each page in PAGE_SEPARATOR.join(pages)."""
    starts, offset = [], 0
    for page in pages:
        starts.append(offset)
        offset += len(page) + len(PAGE_SEPARATOR)
    return starts


def join_pages(pages: list[str], unit: str = "page") -> tuple[str, dict[str, object]]:
    """The pages as one text, and metadata `<unit>_count` and `<unit>_starts` (offsets into that text)."""
    return PAGE_SEPARATOR.join(pages), {f"{unit}_count": len(pages), f"{unit}_starts": page_starts(pages)}
