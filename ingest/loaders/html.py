"""HTML: the visible text, with block elements as paragraphs; scripts, styles and navigation dropped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.errors import LoadError
from ingest.loaders._io import read_bytes
from ingest.types import SourceDoc

if TYPE_CHECKING:
    from bs4 import BeautifulSoup

_DROP = ("script", "style", "nav", "noscript", "template", "head")
_BLOCKS = (
    "address", "article", "aside", "blockquote", "dd", "details", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
    "li", "main", "ol", "p", "pre", "section", "summary", "table", "tr", "ul",
)  # fmt: skip
# Private-use characters mark breaks while the tree is flattened, so the page's own
# whitespace can be collapsed without losing them.
_PARA, _LINE = "\ue000", "\ue001"
_SPACES = re.compile(r"\s+")
_DOUBLE_BREAK = re.compile(rf"{_LINE}\s*{_LINE}")  # <br><br> separates paragraphs too


def html_to_text(data: bytes) -> tuple[str, str | None]:
    """Visible text (paragraphs separated by blank lines) and the page title, if it has one."""
    from bs4 import BeautifulSoup

    # bs4 picks the encoding: BOM, <meta charset>, then charset detection.
    soup = BeautifulSoup(data, "html.parser")
    title = _title(soup)
    for tag in soup.find_all(_DROP):
        tag.decompose()
    for tag in soup.find_all(_BLOCKS):
        tag.insert_before(_PARA)
        tag.insert_after(_PARA)
    for tag in soup.find_all(["br", "td", "th"]):
        tag.insert_after(_LINE if tag.name == "br" else " ")
    paragraphs = []
    for block in _DOUBLE_BREAK.sub(_PARA, soup.get_text()).split(_PARA):
        lines = (_SPACES.sub(" ", line).strip() for line in block.split(_LINE))
        paragraph = "\n".join(line for line in lines if line)
        if paragraph:
            paragraphs.append(paragraph)
    return "\n\n".join(paragraphs), title


def _title(soup: BeautifulSoup) -> str | None:
    for name in ("title", "h1"):
        tag = soup.find(name)
        text = _SPACES.sub(" ", tag.get_text()).strip() if tag is not None else ""
        if text:
            return text
    return None


class HtmlLoader:
    """`.html` and `.htm` files: one document each, titled by <title>, the first <h1>, or the stem."""

    suffixes: tuple[str, ...] = (".html", ".htm")

    def load(self, path: Path) -> Iterator[SourceDoc]:
        text, title = html_to_text(read_bytes(path))
        if not text:
            raise LoadError("no visible text in HTML")
        return iter([SourceDoc(source=str(path), text=text, title=title or path.stem)])
