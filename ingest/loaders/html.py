"""HTML: the visible text, with block elements as paragraphs; scripts, styles and navigation dropped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.budget import MAX_HTML_BYTES
from ingest.errors import LoadError
from ingest.loaders._io import read_bytes
from ingest.loaders.text import decode_text
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
_AFTER = {"br": _LINE, "td": " ", "th": " "}  # marks that follow an element (cells are joined by spaces)
_SPACES = re.compile(r"\s+")
_DOUBLE_BREAK = re.compile(rf"{_LINE}\s*{_LINE}")  # <br><br> separates paragraphs too


def html_to_text(data: bytes) -> tuple[str, str | None]:
    """Visible text (paragraphs separated by blank lines) and the page title, if it has one."""
    from ingest.loaders.html_guard import parse_html

    soup = parse_html(data)
    paragraphs = []
    for block in _DOUBLE_BREAK.sub(_PARA, "".join(_visible_strings(soup))).split(_PARA):
        lines = (_SPACES.sub(" ", line).strip() for line in block.split(_LINE))
        paragraphs.append("\n".join(line for line in lines if line))
    return "\n\n".join(p for p in paragraphs if p), _title(soup)


def _visible_strings(soup: BeautifulSoup) -> Iterator[str]:
    """The page's text strings in document order, with break marks around blocks and after <br>, <td> and <th>.

    One walk with its own stack, so time stays linear however deep or wide the tree is. The strings are those
    `get_text()` joins: NavigableString and CData, not comments, doctypes or script text.
    """
    from bs4 import CData, NavigableString, Tag

    wanted = (NavigableString, CData)
    pending: list[object] = list(reversed(soup.contents))
    while pending:
        node = pending.pop()
        if type(node) is str:  # a mark pushed below, due once the element's content is out
            yield node
        elif type(node) in wanted:
            yield str(node)
        elif isinstance(node, Tag) and node.name not in _DROP:
            if node.name in _BLOCKS:
                yield _PARA
                pending.append(_PARA)
            elif node.name in _AFTER:
                pending.append(_AFTER[node.name])
            pending.extend(reversed(node.contents))


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
        data = read_bytes(path, MAX_HTML_BYTES)
        decode_text(data)  # the parser makes "text" of any bytes: binary content must be refused before it
        text, title = html_to_text(data)
        if not text:
            raise LoadError("no visible text in HTML")
        return iter([SourceDoc(source=str(path), text=text, title=title or path.stem)])
