"""OCR engines compared on PDF pages that have a text layer: RapidOCR (rapidocr-onnxruntime) and Tesseract.

.venv/bin/python benchmarks/ocr_engines.py [--dpi 200 300] [--threads 1] [--engines rapidocr tesseract]

Each page is rendered with pypdfium2 at each `--dpi` and read by each engine; the page's own text layer, as
ragkit's PDF loader reads it, is the reference. Scores: word precision, recall and F1 over lower-cased words (order
does not count), character error rate over whitespace-collapsed text (order counts: it shows whether columns are
read one after the other), and seconds of OCR per page (the engine's load is timed apart). Then what each engine
reads on the shared PDFs that have no text layer, and what each engine adds to an install of ragkit.
Tesseract runs as ragkit's loaders run it (ingest.loaders.ocr); `--threads` caps each engine's threads (0: its
default). Needs Debian's tesseract-ocr (bash scripts/system-deps.sh ocr) and, in the venv (rapidocr-onnxruntime
requires opencv-python, which needs libGL: the headless build replaces it):
    .venv/bin/pip install jiwer onnxruntime opencv-python-headless pyclipper shapely
    .venv/bin/pip install --no-deps rapidocr-onnxruntime==1.4.4
"""

from __future__ import annotations

import argparse
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from PIL import Image

from ingest.loaders.pdf import read_pdf

DOCS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "docs"
HAYSTACK, ONYX = "haystack_test_files/pdf", "onyx_pdf_edge_cases"
# (file under DOCS, 1-based page): prose, a two-column paper with a title block, a table, a few words.
PAGES = (
    (f"{HAYSTACK}/sample_pdf_1.pdf", 1),
    (f"{HAYSTACK}/sample_pdf_2.pdf", 2),
    (f"{HAYSTACK}/sample_pdf_2.pdf", 3),
    (f"{HAYSTACK}/sample_pdf_2.pdf", 4),
    (f"{HAYSTACK}/sample_pdf_3.pdf", 1),
    (f"{HAYSTACK}/react_paper.pdf", 1),
    (f"{HAYSTACK}/react_paper.pdf", 3),  # page 2's text layer is ciphered (its fonts map glyphs to other letters)
    (f"{ONYX}/simple.pdf", 1),
    (f"{ONYX}/multipage.pdf", 2),
)
IMAGE_ONLY = tuple(
    f"{ONYX}/{name}.pdf" for name in ("with_image", "inline_image", "shredded_strips", "stencil_mask")
) + (f"{HAYSTACK}/non_text_searchable.pdf",)
# What each engine brings: Python distributions (with their requirements) and Debian packages.
PIP_ROOTS = {"rapidocr": ("rapidocr-onnxruntime", "opencv-python-headless"), "tesseract": ()}
APT_PACKAGES = {"tesseract": ("tesseract-ocr", "tesseract-ocr-eng", "tesseract-ocr-osd", "libtesseract5", "liblept5")}


class Engine:
    """An OCR engine as the benchmark drives it: loaded once, then image -> text, one line per line of text."""

    name = ""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def read(self, image: Image.Image, dpi: int) -> str:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError


class Tesseract(Engine):
    name = "tesseract"

    def __init__(self, threads: int) -> None:
        from ingest.loaders.ocr import find_tesseract

        super().__init__(threads)
        self.engine = find_tesseract(threads=threads)

    def read(self, image: Image.Image, dpi: int) -> str:
        return self.engine.read(image, dpi)

    def version(self) -> str:
        return self.engine.version


class Rapid(Engine):
    name = "rapidocr"

    def __init__(self, threads: int) -> None:
        from rapidocr_onnxruntime import RapidOCR

        super().__init__(threads)
        self.engine = RapidOCR(intra_op_num_threads=threads or -1, inter_op_num_threads=threads or -1)

    def read(self, image: Image.Image, dpi: int) -> str:
        import numpy as np

        boxes, _ = self.engine(np.asarray(image.convert("RGB")))
        return "\n".join(_lines(boxes or []))

    def version(self) -> str:
        return f"{metadata.version('rapidocr-onnxruntime')} (onnxruntime {metadata.version('onnxruntime')})"


def _lines(boxes: list) -> list[str]:
    """RapidOCR's boxes ([corners, text, score]) joined into lines: a box whose vertical middle lies inside the
    previous line's height continues that line, left to right."""
    lines: list[list[tuple[float, str]]] = []
    last: tuple[float, float] | None = None
    for corners, text, _ in boxes:
        top, bottom = min(y for _, y in corners), max(y for _, y in corners)
        if last is not None and last[0] <= (top + bottom) / 2 <= last[1]:
            lines[-1].append((corners[0][0], text))
        else:
            lines.append([(corners[0][0], text)])
            last = (top, bottom)
    return [" ".join(text for _, text in sorted(line)) for line in lines]


ENGINES: dict[str, Callable[[], Engine]] = {"rapidocr": Rapid, "tesseract": Tesseract}


@dataclass
class Score:
    precision: float
    recall: float
    f1: float
    cer: float

    def __str__(self) -> str:
        return f"{self.precision:>6.3f} {self.recall:>6.3f} {self.f1:>6.3f} {self.cer:>6.3f}"


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def score(reference: str, hypothesis: str) -> Score:
    import jiwer

    ref, hyp = Counter(words(reference)), Counter(words(hypothesis))
    common = sum((ref & hyp).values())
    precision = common / max(sum(hyp.values()), 1)
    recall = common / max(sum(ref.values()), 1)
    f1 = 2 * precision * recall / (precision + recall) if common else 0.0
    flat_ref, flat_hyp = " ".join(reference.split()), " ".join(hypothesis.split())
    return Score(precision, recall, f1, jiwer.cer(flat_ref, flat_hyp) if flat_hyp else 1.0)


def render(path: Path, page: int, dpi: int) -> Image.Image:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(path)
    try:
        return document[page - 1].render(scale=dpi / 72).to_pil()
    finally:
        document.close()


def compare(engines: Sequence[Engine], dpis: Sequence[int]) -> None:
    references = {(name, page): read_pdf((DOCS / name).read_bytes()).pages[page - 1] for name, page in PAGES}
    print(f"\n{'engine':<10} {'dpi':>4} {'page':<24} {'words':>5} {'P':>6} {'R':>6} {'F1':>6} {'CER':>6} {'s':>6}")
    for dpi in dpis:
        images = {key: render(DOCS / key[0], key[1], dpi) for key in references}
        for engine in engines:
            scores, seconds = [], []
            for (name, page), reference in references.items():
                start = time.perf_counter()
                text = engine.read(images[name, page], dpi)
                seconds.append(time.perf_counter() - start)
                scores.append(score(reference, text))
                label, count = f"{Path(name).stem} p{page}", len(words(reference))
                print(f"{engine.name:<10} {dpi:>4} {label:<24} {count:>5} {scores[-1]} {seconds[-1]:>6.2f}")
            fields = ("precision", "recall", "f1", "cer")
            mean = Score(*(sum(getattr(s, field) for s in scores) / len(scores) for field in fields))
            total = sum(len(words(reference)) for reference in references.values())
            label = f"MEAN ({len(scores)} pages)"
            print(f"{engine.name:<10} {dpi:>4} {label:<24} {total:>5} {mean} {sum(seconds) / len(seconds):>6.2f}\n")


def image_only(engines: Sequence[Engine], dpi: int) -> None:
    print(f"Shared PDFs without a text layer, {dpi} dpi:")
    for name in IMAGE_ONLY:
        image = render(DOCS / name, 1, dpi)
        for engine in engines:
            start = time.perf_counter()
            text = " ".join(engine.read(image, dpi).split())
            elapsed = time.perf_counter() - start
            print(f"  {Path(name).name:<24} {engine.name:<10} {elapsed:>5.2f} s  {text[:150]!r}")


def install_sizes(names: Sequence[str]) -> None:
    """Bytes each engine adds to ragkit's own install: its Python distributions and their requirements, minus what
    ragkit already requires, plus the Debian packages it needs."""
    ragkit = _closure(["ragkit"])
    print("\nInstall size (what each engine adds to ragkit):")
    for name in names:
        added = sorted(_closure(PIP_ROOTS[name]) - ragkit)
        pip_mb = sum(_dist_bytes(dist) for dist in added) / 1e6
        apt = APT_PACKAGES.get(name, ())
        apt_mb = sum(_deb_kib(pkg) for pkg in apt) * 1024 / 1e6
        print(f"  {name:<10} pip {pip_mb:6.1f} MB ({', '.join(added) or 'nothing'})")
        if apt:
            print(f"  {'':<10} apt {apt_mb:6.1f} MB ({', '.join(apt)})")


def _closure(roots: Sequence[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # opencv-python: replaced by the headless build, which needs no libGL
        seen.add(name)
        for raw in dist.requires or []:
            requirement = Requirement(raw)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def _dist_bytes(name: str) -> int:
    return sum(file.size or 0 for file in metadata.distribution(name).files or [])


def _deb_kib(package: str) -> int:
    query = ["dpkg-query", "-W", "-f=${Installed-Size}", package]
    done = subprocess.run(query, capture_output=True, text=True, check=False)
    return int(done.stdout or 0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dpi", type=int, nargs="+", default=[200])
    parser.add_argument("--threads", type=int, default=1, help="threads per engine; 0: the engine's default")
    parser.add_argument("--engines", nargs="+", choices=sorted(ENGINES), default=sorted(ENGINES))
    args = parser.parse_args(argv)
    engines = []
    for name in args.engines:
        start = time.perf_counter()
        engine = ENGINES[name](args.threads)
        engine.read(Image.new("L", (64, 32), "white"), args.dpi[0])
        print(
            f"{name}: {engine.version()}, {args.threads or 'default'} thread(s), "
            f"loaded in {time.perf_counter() - start:.2f} s"
        )
        engines.append(engine)
    compare(engines, args.dpi)
    image_only(engines, args.dpi[0])
    install_sizes(args.engines)


if __name__ == "__main__":
    main()
