"""OCR: the text of an image, for PDF pages without a text layer and for image files.

Tesseract reads, as Debian's `tesseract` program. On nine shared PDF pages that have a text layer, rendered at
200 dpi, it found that text with a mean word F1 of 0.993 (character error rate 0.007) in 1.0 s a page on one
thread; RapidOCR (rapidocr-onnxruntime 1.4.4) scored 0.862 (0.139: it runs words together and reads across
columns) in 6.6 s, and needs 264 MB of wheels against Tesseract's 23 MB of Debian packages
(benchmarks/ocr_engines.py). It runs once per image, the image going in on stdin as PNG and the text coming back
on stdout: no temporary files, and an environment of its own (see `Tesseract.threads`).
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest.errors import LoadError, one_line
from ingest.loaders.pdf_guard import pdfium_hazard

if TYPE_CHECKING:
    from PIL import Image
    from pypdfium2 import PdfDocument

# PDF pages are rendered at this resolution: 300 dpi read no better on the shared PDFs and took 1.3x as long;
# 150 dpi read as well there, but leaves small print (8 pt footnotes) 12 pixels high.
OCR_DPI = 200
# Larger images are scaled down before OCR (a 600 dpi A4 scan is 35 million pixels): it bounds the time and
# memory one image costs, and text that needs more pixels than this is no text a page holds.
MAX_OCR_PIXELS = 40_000_000
# Most pages of one PDF read by OCR (about a second each: minutes); later pages without text stay empty.
MAX_OCR_PAGES = 500
# Seconds one image may take; a dense page takes a few.
TIMEOUT_S = 120.0
INSTALL_HINT = "OCR needs Tesseract: apt-get install tesseract-ocr (or: bash scripts/system-deps.sh ocr)"
# Pixel values within this range of each other are one colour: a blank page, with JPEG noise at most.
_BLANK_RANGE = 8
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Tesseract:
    """The `tesseract` program with one language. `threads` caps its OpenMP threads (0: its default): on a busy
    two-core machine one thread read a page in 1.0 s where its default took 3.8 s, its threads spinning while
    they wait; loaders on several threads or processes run one Tesseract each."""

    command: str
    version: str
    language: str = "eng"
    threads: int = 1
    timeout_s: float = TIMEOUT_S

    @property
    def name(self) -> str:
        return f"tesseract {self.version}"

    def read(self, image: Image.Image, dpi: float | None = None) -> str:
        """The text in `image`, one line per line of text, blocks apart by a blank line, in reading order; "" for
        an image with no text. `dpi` is the image's resolution, where known (Tesseract estimates it otherwise)."""
        gray, scale = _prepared(image)
        low, high = gray.getextrema()
        if high - low < _BLANK_RANGE:
            return ""
        png = io.BytesIO()
        gray.save(png, format="PNG", compress_level=1)  # lossless, and fast to write
        command = [self.command, "stdin", "stdout", "-l", self.language]
        if dpi:
            command += ["--dpi", str(max(round(dpi * scale), 1))]
        environment = dict(os.environ)
        if self.threads:
            environment["OMP_THREAD_LIMIT"] = str(self.threads)
        try:
            done = subprocess.run(
                command, input=png.getvalue(), capture_output=True, timeout=self.timeout_s, env=environment
            )
        except subprocess.TimeoutExpired as exc:
            raise LoadError(f"OCR took longer than {self.timeout_s:g} s on one image") from exc
        except OSError as exc:
            raise LoadError(f"OCR could not run {self.command}: {exc.strerror or exc}") from exc
        if done.returncode != 0:
            raise LoadError(f"OCR failed: tesseract exited with status {done.returncode}: {_last_line(done.stderr)}")
        return _text(done.stdout.decode("utf-8", errors="replace"))


def find_tesseract(language: str = "eng", threads: int = 1) -> Tesseract:
    """The installed `tesseract`, checked to run and to have `language`; LoadError with the install hint if not."""
    command = shutil.which("tesseract")
    if command is None:
        raise LoadError(INSTALL_HINT)
    version = _run(command, "--version").split()
    # "List of available languages in "/usr/share/tesseract-ocr/5/tessdata/" (2):", then one name a line
    languages = [line.strip() for line in _run(command, "--list-langs").splitlines()[1:]]
    if language not in languages:
        raise LoadError(f"OCR needs Tesseract's {language!r} language data: apt-get install tesseract-ocr-{language}")
    return Tesseract(command, version[1] if len(version) > 1 else "unknown", language, threads)


_ENGINE: Tesseract | None = None
_ENGINE_LOCK = threading.Lock()


def ocr_engine() -> Tesseract:
    """The engine every loader shares, found once (the first call that finds it); LoadError with the install hint
    while none is installed."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = find_tesseract()
        return _ENGINE


def ocr_pdf_pages(
    data: bytes, page_count: int, indexes: Sequence[int], lock: threading.Lock, engine: Tesseract
) -> dict[int, str]:
    """What `engine` reads on the pages at `indexes` (0-based) of the PDF in `data`, each rendered by pdfium at
    OCR_DPI with `lock` held (pdfium is not thread-safe) and read with it released. Empty where pdfium may not
    (`pdf_guard`) or cannot read the file, or counts other than `page_count` pages; a page it cannot render is
    left out."""
    import pypdfium2 as pdfium

    if pdfium_hazard(data):
        return {}
    with lock:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            return {}
    found: dict[int, str] = {}
    try:
        with lock:
            count = len(document)
        for index in indexes if count == page_count else ():
            with lock:
                rendered = _render(document, index)
            if rendered is not None:
                try:
                    found[index] = engine.read(*rendered)
                except LoadError as exc:
                    raise LoadError(f"page {index + 1}: {exc}") from exc
    finally:
        with lock:
            document.close()
    return found


def _render(document: PdfDocument, index: int) -> tuple[Image.Image, float] | None:
    """The page at `index` as an image in shades of grey, and its resolution; None if pdfium cannot render it."""
    import pypdfium2 as pdfium

    try:
        page = document[index]
    except pdfium.PdfiumError:
        return None
    try:
        width, height = page.get_size()
        if not (width > 0 and height > 0):
            return None
        scale = render_scale(width, height)
        return page.render(scale=scale, grayscale=True).to_pil(), scale * 72
    except pdfium.PdfiumError:
        return None
    finally:
        page.close()


def render_scale(width: float, height: float, dpi: float = OCR_DPI) -> float:
    """pdfium's render scale for a page of `width` x `height` points at `dpi`, lowered so that the image stays
    within MAX_OCR_PIXELS."""
    scale = dpi / 72
    pixels = width * height * scale * scale
    return scale if pixels <= MAX_OCR_PIXELS else scale * math.sqrt(MAX_OCR_PIXELS / pixels)


def _prepared(image: Image.Image) -> tuple[Image.Image, float]:
    """`image` as 8-bit grey on white (transparent parts white, 16-bit samples scaled), within MAX_OCR_PIXELS, and
    the factor it was scaled by."""
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        image = image.convert("I").point(lambda value: value / 256)
    elif image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    gray = image.convert("L")
    pixels = gray.width * gray.height
    if pixels <= MAX_OCR_PIXELS:
        return gray, 1.0
    scale = math.sqrt(MAX_OCR_PIXELS / pixels)
    size = (max(int(gray.width * scale), 1), max(int(gray.height * scale), 1))
    return gray.resize(size, Image.Resampling.LANCZOS), scale


def _text(output: str) -> str:
    lines = [line.rstrip() for line in output.replace("\f", "\n").splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _run(command: str, option: str) -> str:
    try:
        done = subprocess.run([command, option], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise LoadError(f"{INSTALL_HINT} ({command} {option} failed: {one_line(exc)})") from exc
    return done.stdout + done.stderr  # older versions print the version on stderr


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", errors="replace").strip().splitlines()
    return lines[-1] if lines else "no message"
