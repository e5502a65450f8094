"""Image files (scans, photos of pages, screenshots): the text OCR reads in them, one page per frame."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from index.json_safe import clean_text
from ingest.errors import LoadError, one_line
from ingest.loaders._io import read_bytes
from ingest.loaders.ocr import MAX_OCR_PAGES, ocr_engine
from ingest.loaders.pages import join_pages
from ingest.loaders.titles import file_title
from ingest.types import SourceDoc

if TYPE_CHECKING:
    from PIL import Image

NO_TEXT = "no text found in image"
# The raster formats Pillow may open, whatever the suffix says: never EPS (Pillow runs Ghostscript on it) or a
# format chosen by what a hostile file's first bytes claim. (A camera's multi-picture JPEG opens as JPEG.)
FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP")
# What Pillow raises on damaged data besides OSError: its decoders' own checks and struct unpacking.
_DAMAGED = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError)


class ImageLoader:
    """`.png .jpg .jpeg .tif .tiff .bmp .webp` files: one document each, the text OCR reads in each frame (a
    multi-page TIFF has one frame a page), with metadata `page_count`, `page_starts`, `ocr: true` and
    `ocr_engine`."""

    suffixes: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

    def load(self, path: Path) -> Iterator[SourceDoc]:
        data = read_bytes(path)
        # The engine is asked for per frame (found once), so that a damaged file says so even without one.
        # Cleaned here, not only in SourceDoc: page_starts must be offsets into the cleaned text.
        pages = [clean_text(ocr_engine().read(frame)).strip() for frame in _frames(data)]
        if not any(pages):
            raise LoadError(NO_TEXT)
        text, metadata = join_pages(pages)
        metadata |= {"ocr": True, "ocr_engine": ocr_engine().name}
        return iter([SourceDoc(str(path), text, file_title(None, path), metadata)])


def _frames(data: bytes) -> Iterator[Image.Image]:
    """Each frame of the image in `data`, decoded and upright. Its resolution is left to Tesseract to estimate from
    the text: files often carry a default (72 dpi) rather than the resolution they were scanned at."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError as exc:
        raise LoadError("not an image file: not PNG, JPEG, TIFF, BMP or WebP data") from exc
    except Image.DecompressionBombError as exc:
        raise LoadError(f"image too large: {one_line(exc)}") from exc
    except _DAMAGED as exc:
        raise LoadError(f"corrupt or truncated image: {one_line(exc)}") from exc
    with image:
        try:
            count = getattr(image, "n_frames", 1)  # TIFF counts its frames by reading each one's header
        except _DAMAGED as exc:
            raise LoadError(f"corrupt or truncated image: {one_line(exc)}") from exc
        if count > MAX_OCR_PAGES:
            raise LoadError(f"image has {count} frames; at most {MAX_OCR_PAGES} are read")
        for index in range(count):
            try:
                image.seek(index)
                _check_size(image)
                image.load()
                frame = ImageOps.exif_transpose(image)  # a photo taken sideways is read upright
            except _DAMAGED as exc:
                raise LoadError(f"corrupt or truncated image: {one_line(exc)}") from exc
            yield frame


def _check_size(image: Image.Image) -> None:
    """Pillow refuses images over twice MAX_IMAGE_PIXELS when it opens them, and only warns between once and
    twice; every frame here is held to once, before it is decoded."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    if limit and image.width * image.height > limit:
        raise LoadError(
            f"image too large: {image.width} x {image.height} pixels, over Pillow's limit of {limit} "
            "(PIL.Image.MAX_IMAGE_PIXELS) against decompression bombs"
        )
