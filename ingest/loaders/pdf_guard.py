"""Whether pdfium may read a PDF: pdfium inflates streams whole and without a limit (a 1 MB file can hold a
deflate stream of 1 GB), where pypdf stops at its limits.

Every deflate stream in the file is inflated here in bounded pieces and held to the limits below. What this check
cannot measure makes the file pdfium's to skip: encrypted streams, filters other than deflate that can expand
data or hide a deflate stream in text, and compressed inline images (pdfium inflates those while it parses a
page). A file pdfium skips is read by pypdf, under pypdf's own limits.
"""

from __future__ import annotations

import re
import zlib

MIB = 1024 * 1024
# Largest size one stream may inflate to: about pypdf's own limit (75 MB, Configuration.zlib_maximum_output_length).
MAX_STREAM_BYTES = 75 * MIB
# Largest size all streams together may inflate to.
MAX_TOTAL_BYTES = 512 * MIB
# Bytes inflated (and fed) per step, which bounds what the check holds in memory at once.
CHUNK_BYTES = 1 * MIB
# Bytes of one inflated piece searched again with the next, for a name or marker that straddles the two.
_OVERLAP = 256


def _name(name: str) -> bytes:
    """A pattern for a PDF name, also when characters are written as #xx escapes (`/LZW#44ecode`)."""
    chars = (rb"(?:%s|#%s)" % (re.escape(c.encode()), _hex(ord(c))) for c in name)
    return b"/" + b"".join(chars) + rb"(?![^\s/<>\[\]()%{}])"


def _hex(code: int) -> bytes:
    return b"".join(b"[%s%s]" % (d.encode(), d.lower().encode()) if d.isalpha() else d.encode() for d in f"{code:02X}")


def _any(*names: str) -> bytes:
    return b"(?:" + b"|".join(_name(name) for name in names) + b")"


_UNCHECKED = re.compile(
    _any("Encrypt", "LZWDecode", "RunLengthDecode", "ASCII85Decode", "ASCIIHexDecode")
    # The short names are for inline images only; after a filter key, so that binary data seldom matches them.
    + b"|"
    + _any("F", "Filter")
    + rb"\s*(?:\[[^\]]{0,64}?)?"
    + _any("LZW", "RL", "A85", "AHx")
)
_NAMES = re.compile(rb"/[^\s/<>\[\]()%{}]*")
# Where a stream's data starts: after the keyword, the line end the format requires (or the odd blank instead).
_STREAM = re.compile(rb"stream\s{0,3}")
# Inline image data (after the ID operator) that starts with a zlib header; the blank before ID is checked apart,
# as a pattern that starts with a class is slow to search.
_INLINE_ZLIB = re.compile(rb"ID\s[\x08\x18\x28\x38\x48\x58\x68\x78].", re.DOTALL)


def pdfium_hazard(data: bytes) -> str | None:
    """Why pdfium must not read `data` (one line), or None when every stream it would inflate stays in bounds."""
    total = 0
    hazard = _unmeasured(data)
    for match in _STREAM.finditer(data):
        if hazard:
            break
        size, hazard = _inflate(data, match.end())
        total += size
        if not hazard and total > MAX_TOTAL_BYTES:
            hazard = f"its streams inflate to more than {MAX_TOTAL_BYTES // MIB} MiB"
    return hazard


def _unmeasured(text: bytes) -> str | None:
    if match := _UNCHECKED.search(text):
        name = _NAMES.findall(match.group())[-1]  # the filter, not the key before it
        return f"{name.decode('latin-1')} data is not checked for decompression bombs"
    if any(text[m.start() - 1 : m.start()].isspace() and _is_zlib(m.group()[-2:]) for m in _INLINE_ZLIB.finditer(text)):
        return "a compressed inline image is not checked for decompression bombs"
    return None


def _is_zlib(header: bytes) -> bool:
    # pdfium's deflate reader needs the zlib header too: raw deflate or gzip data inflates to nothing there.
    return len(header) == 2 and header[0] & 0x0F == 8 and (header[0] << 8 | header[1]) % 31 == 0


def _inflate(data: bytes, start: int) -> tuple[int, str | None]:
    """The size the zlib stream at `start` inflates to (0 when none starts there), counted in bounded pieces up to
    just past MAX_STREAM_BYTES, and the hazard found in what it inflates to, if any."""
    if not _is_zlib(data[start : start + 2]):
        return 0, None
    view, offset, size = memoryview(data), start, 0
    inflater = zlib.decompressobj()
    pending, tail = b"", b""
    try:
        while not inflater.eof:
            if not pending:
                if offset >= len(data):
                    break
                pending, offset = view[offset : offset + CHUNK_BYTES], offset + CHUNK_BYTES
            piece = inflater.decompress(pending, CHUNK_BYTES)
            pending, size = inflater.unconsumed_tail, size + len(piece)
            if size > MAX_STREAM_BYTES:
                return size, f"a stream inflates to more than {MAX_STREAM_BYTES // MIB} MiB"
            if hazard := _unmeasured(tail + piece):
                return size, hazard
            tail = piece[-_OVERLAP:]
    except zlib.error:
        pass  # a damaged stream: pdfium inflates no more of it than this did
    return size, None
