"""Options that change how loaders read a file (only the JSON loader has any today)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoaderOptions:
    """How JSON/JSONL records map onto documents.

    `metadata_fields` empty means: keep every other scalar field of a record as metadata.
    """

    text_field: str = "text"
    title_field: str | None = "title"
    id_field: str | None = "id"
    metadata_fields: tuple[str, ...] = ()
