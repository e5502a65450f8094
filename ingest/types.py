"""Data and protocols of the ingestion side: files become SourceDocs, SourceDocs become chunks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from index.json_safe import clean_text, json_safe


def content_hash(text: str) -> str:
    """Identity of a document's content: sha256 of its UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SourceDoc:
    """One document as loaded: its text, where it came from, and what we know about it.

    `source` names the document uniquely within a collection (a file path, or a path plus a
    fragment such as ``dev.json#56be4db0acb8001400a502ec`` for one record of a file).
    """

    source: str
    text: str
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Repaired here, before anything hashes or chunks the text, so no loader can forget it.
        for name in ("source", "text", "title"):
            object.__setattr__(self, name, clean_text(getattr(self, name)))
        object.__setattr__(self, "metadata", json_safe(dict(self.metadata)))

    @property
    def content_hash(self) -> str:
        return content_hash(self.text)


@dataclass(frozen=True)
class ChunkSpan:
    """A piece of a document's text, with its character offsets in that text (text == doc.text[start:end])."""

    ordinal: int
    start: int
    end: int
    text: str


@runtime_checkable
class Loader(Protocol):
    """Turns one file into documents; raises LoadError with a one-line reason when it cannot."""

    suffixes: tuple[str, ...]

    def load(self, path: Path) -> Iterator[SourceDoc]: ...


@runtime_checkable
class Chunker(Protocol):
    """Splits a document's text into ordered, offset-carrying spans."""

    def split(self, text: str) -> list[ChunkSpan]: ...
