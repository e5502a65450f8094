"""Parse HTML within a budget: lxml's parser (linear on broken markup, where Python's html.parser can take time
quadratic in the input), fed a piece at a time so that a page nested or sized past the limits is refused early.

lxml searches the open elements for each end tag, so a page with thousands of tags left open costs time
proportional to its size times its depth: the depth limit keeps that product small.
"""

from __future__ import annotations

from typing import Any

from bs4 import BeautifulSoup
from bs4.builder import LXMLTreeBuilder
from bs4.exceptions import ParserRejectedMarkup
from lxml import etree

from ingest.budget import HTML_FEED_BYTES, MAX_HTML_DEPTH, MAX_HTML_ELEMENTS
from ingest.errors import LoadError


class _BudgetedBuilder(LXMLTreeBuilder):
    """BeautifulSoup's lxml tree builder, counting elements and depth as they open."""

    def __init__(self, max_depth: int, max_elements: int) -> None:
        super().__init__()
        self.max_depth, self.max_elements = max_depth, max_elements
        self.elements = 0
        self.rejections: list[str] = []  # why the parser refused each encoding tried

    def feed(self, markup: Any) -> None:
        # bs4's own feed, except that the parser gets the markup in pieces (an error raised while an element
        # opens reaches us at the end of the piece it is in, not after the whole page has been parsed), and that
        # more errors mean "try the next encoding": lxml raises ValueError for an encoding name with control
        # characters (a damaged <meta charset>) and XMLSyntaxError for a page that is only a byte-order mark,
        # where bs4 expects LookupError and ParserError only.
        self.elements = 0
        try:
            self.parser = self.parser_for(self.soup.original_encoding)
            for start in range(0, len(markup), HTML_FEED_BYTES):
                self.parser.feed(markup[start : start + HTML_FEED_BYTES])
            self.parser.close()
        except (ValueError, LookupError, etree.LxmlError) as exc:
            self.rejections.append(" ".join(f"{type(exc).__name__}: {exc}".split()))
            raise ParserRejectedMarkup(exc) from exc

    def start(self, tag: Any, attrib: Any, nsmap: Any = None) -> None:
        self.elements += 1
        if self.elements > self.max_elements:
            raise LoadError(f"refusing HTML with more than {self.max_elements:,} elements")
        if len(self.soup.tagStack) > self.max_depth:  # the stack holds the document itself, then each open element
            raise LoadError(f"refusing HTML nested deeper than {self.max_depth} elements (tags left open?)")
        super().start(tag, attrib, {} if nsmap is None else nsmap)


def parse_html(data: bytes, max_depth: int = MAX_HTML_DEPTH, max_elements: int = MAX_HTML_ELEMENTS) -> BeautifulSoup:
    """The page's tree; bs4 picks the encoding (BOM, <meta charset>, then detection). LoadError when the page is
    over the limits or the parser rejects it in every encoding it tries."""
    builder = _BudgetedBuilder(max_depth, max_elements)
    try:
        return BeautifulSoup(data, builder=builder)
    except ParserRejectedMarkup as exc:
        reasons = "; ".join(dict.fromkeys(builder.rejections)) or " ".join(str(exc).split())
        raise LoadError(f"not readable as HTML in any encoding tried: {reasons}") from exc
