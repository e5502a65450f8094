"""A file's document title: the title its metadata gives, when that reads like one, and always its file name.

Metadata titles of real files are often an id (an SEC accession number), the name of the file the document was
printed from ("Microsoft Word - doc1.docx"), or a placeholder ("untitled"). The file name is what a user chose,
and the title is what retrieval indexes beside every chunk, so the name goes into the title too.
"""

from __future__ import annotations

import re
from pathlib import Path

_MAX_LENGTH = 200  # longer "titles" are a first paragraph or an abstract, not a name
_PLACEHOLDERS = re.compile(
    r"untitled\b.*|no title|title|document|new document|(powerpoint )?presentation|slide \d+|blank|none|null|unknown",
    re.IGNORECASE,
)
# "Microsoft Word - report.docx", the title printer drivers give a document they print to PDF.
_PRINTED_FROM = re.compile(r"(microsoft\s+)?(word|excel|powerpoint|outlook)\s+-\s+.*", re.IGNORECASE)
_FILE_NAME = re.compile(r".*\.(pdf|docx?|rtf|odt|txt|md|html?|xlsx?|pptx?|tex|indd|pages|ps)", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]{2,}")  # two or more letters


def reads_like_title(text: str) -> bool:
    """Whether a metadata title names the document in words, rather than being an id, a number, a file name
    (`sample_pdf`, `doc1.docx`, a path) or a placeholder (`Untitled`, `Microsoft Word - ...`)."""
    title = " ".join(text.split())
    if not title or len(title) > _MAX_LENGTH or "\\" in title:
        return False
    if _PLACEHOLDERS.fullmatch(title) or _PRINTED_FROM.fullmatch(title) or _FILE_NAME.fullmatch(title):
        return False
    if " " not in title and not title.isalpha():
        return False  # one token with digits or punctuation: `0000320193-23-000077`, `sample_pdf`, `doc1`
    letters = sum(len(word) for word in _WORD.findall(title))
    return letters >= len(title.replace(" ", "")) / 2


def file_title(metadata_title: str | None, path: Path) -> str:
    """The title of a document read from `path`: a metadata title that reads like one with the file's stem after
    it in parentheses (`Apple Inc. Form 10-Q (2023 Q3 AAPL)`), or the stem alone when the metadata title does not
    read like a title or either one already contains the other."""
    stem = " ".join(path.stem.split()) or path.name
    title = " ".join((metadata_title or "").split())
    if not reads_like_title(title):
        return stem
    if _words(stem) in _words(title):
        return title
    if _words(title) in _words(stem):
        return stem
    return f"{title} ({stem})"


def _words(text: str) -> str:
    """Lower-case words separated by single spaces and padded with one, so `in` compares whole words."""
    return " " + " ".join(re.findall(r"[^\W_]+", text.casefold())) + " "
