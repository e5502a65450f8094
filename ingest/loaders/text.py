"""Plain text and Markdown: decode the bytes, keep the text as it is (markup is fine for retrieval)."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path

from ingest.budget import MAX_TEXT_BYTES
from ingest.errors import LoadError
from ingest.loaders._io import read_bytes
from ingest.types import SourceDoc

# Longest BOM first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_MARKDOWN = (".md", ".markdown")
_HEADING = re.compile(r"#[ \t]+(?=[^ \t])")  # the title is the rest, less closing #s (no backtracking)
_FENCE = re.compile(r"[ ]{0,3}(```|~~~)")
# Control characters other than tab, newline, form feed and carriage return: a few are noise,
# many mean the bytes were never text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_MAX_CONTROL_RATIO = 0.01


def decode_text(data: bytes) -> str:
    """Decode bytes that should be text: BOM, then UTF-8, then charset-normalizer's best guess."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _check_text(data.decode(encoding))
            except UnicodeDecodeError as exc:
                raise LoadError(f"not a text file: invalid {encoding} after its byte-order mark") from exc
    if b"\x00" in data:
        raise LoadError("not a text file (contains NUL bytes)")
    try:
        return _check_text(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    return _check_text(_guess_decode(data))


def _guess_decode(data: bytes) -> str:
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise LoadError("not a text file (no text encoding fits its bytes)")
    # Short texts leave several single-byte code pages equally plausible (cp1250 reads "crème"
    # as "crčme"); Windows-1252, the superset of Latin-1 that HTML defaults to, breaks the tie.
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    if any("cp1252" in m.could_be_from_charset for m in tied):
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            pass
    return str(best)


def _check_text(text: str) -> str:
    if not text.strip():
        raise LoadError("empty file")
    if len(_CONTROL.findall(text)) > _MAX_CONTROL_RATIO * len(text):
        raise LoadError("not a text file (too many control characters)")
    return text


def markdown_title(text: str) -> str | None:
    """The first level-one ATX heading (`# Title`) outside fenced code, if the text has one."""
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence  # a `# comment` in a code block is not a heading
        elif not in_fence and (match := _HEADING.match(line := line.rstrip())):
            rest = line[match.end() :]
            return (rest.rstrip(" \t#") or rest[0]).strip()
    return None


class TextLoader:
    """`.txt`, `.md` and `.markdown` files: one document each, titled by the first `# heading` or the stem."""

    suffixes: tuple[str, ...] = (".txt", ".md", ".markdown")

    def load(self, path: Path) -> Iterator[SourceDoc]:
        text = decode_text(read_bytes(path, MAX_TEXT_BYTES))
        title = markdown_title(text) if path.suffix.lower() in _MARKDOWN else None
        return iter([SourceDoc(source=str(path), text=text, title=title or path.stem)])
