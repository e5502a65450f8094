"""OCR: scanned PDF pages and image files read by Tesseract, on the shared documents and on files made from them."""

from __future__ import annotations

import io
import os
import random
import re
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from index import SentenceTransformerEmbedder, Store
from ingest.errors import LoadError
from ingest.loaders import load_file
from ingest.loaders import ocr as ocr_module
from ingest.loaders.image import NO_TEXT as NO_TEXT_IN_IMAGE
from ingest.loaders.ocr import INSTALL_HINT, Tesseract, find_tesseract, ocr_engine
from ingest.loaders.pages import PAGE_SEPARATOR
from ingest.loaders.pdf import NO_TEXT, NO_TEXT_AFTER_OCR, read_pdf
from ingest.pipeline import ingest_paths

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO.parent / "shared" / "data" / "docs"
PDFS = DOCS / "haystack_test_files" / "pdf"
ONYX = DOCS / "onyx_pdf_edge_cases"
SCANNED = PDFS / "non_text_searchable.pdf"
# Words on the scanned page, read off its image by eye.
SCANNED_WORDS = (
    "Non-text-searchable PDF",
    "This is an example of a non-text-searchable PDF.",
    "created from\nan image rather than a text document",
    "regardless of how neatly it is organized.",
)

needs_docs = pytest.mark.skipif(not DOCS.is_dir(), reason=f"shared documents missing: {DOCS}")


@pytest.fixture(scope="module")
def tesseract() -> Tesseract:
    """The installed engine; without one the test is skipped, and fails under CI (scripts/system-deps.sh)."""
    try:
        return ocr_engine()
    except LoadError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def render(path: Path, page: int, **options: object) -> Image.Image:
    document = pdfium.PdfDocument(path)
    try:
        return document[page - 1].render(scale=200 / 72, **options).to_pil()
    finally:
        document.close()


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# ---- PDF pages without a text layer ---------------------------------------------------------------------------


@needs_docs
@pytest.mark.integration
def test_a_scanned_pdf_is_read_by_ocr(tesseract: Tesseract) -> None:
    [doc] = load_file(SCANNED)
    for words in SCANNED_WORDS:
        assert words in doc.text
    assert doc.metadata == {
        "page_count": 1,
        "page_starts": [0],
        "ocr_pages": [1],
        "ocr_engine": tesseract.name,
    }
    assert tesseract.name.startswith("tesseract ")


@needs_docs
@pytest.mark.unit
def test_a_pdf_with_a_text_layer_is_not_read_by_ocr() -> None:
    # Page 3 of this file has no text at all: a blank page, which OCR reads as nothing.
    path = PDFS / "sample_pdf_1.pdf"
    text_layer = read_pdf(path.read_bytes()).pages
    [doc] = load_file(path)
    assert "" in text_layer
    assert doc.text == PAGE_SEPARATOR.join(text_layer)
    assert doc.metadata == {"page_count": 4, "page_starts": [0, 1596, 1618, 1620]}


@needs_docs
@pytest.mark.integration
def test_a_mixed_pdf_keeps_its_text_layer_and_reads_its_scanned_pages(tesseract: Tesseract, tmp_path: Path) -> None:
    # A page of text, then a page printed to an image (Pillow writes image-only PDFs), then the shared scan.
    printed = tmp_path / "printed.pdf"
    render(PDFS / "sample_pdf_2.pdf", 4).save(printed, "PDF", resolution=200)
    mixed = pdfium.PdfDocument.new()
    for path, index in ((ONYX / "simple.pdf", 0), (printed, 0), (SCANNED, 0)):
        source = pdfium.PdfDocument(path)
        mixed.import_pages(source, [index])
        source.close()
    path = tmp_path / "mixed.pdf"
    mixed.save(path)
    mixed.close()
    assert [bool(page) for page in read_pdf(path.read_bytes()).pages] == [True, False, False]

    [doc] = load_file(path)
    starts = doc.metadata["page_starts"]
    assert doc.metadata["ocr_pages"] == [2, 3] and doc.metadata["ocr_engine"] == tesseract.name
    assert doc.text[: starts[1]] == "Hello World" + PAGE_SEPARATOR  # the text layer, as it was
    printed_text = doc.text[starts[1] : starts[2]]
    original = read_pdf((PDFS / "sample_pdf_2.pdf").read_bytes()).pages[3]
    assert " ".join(printed_text.split()) == " ".join(original.split())
    assert doc.text[starts[2] :].startswith("IDRH\nNon-text-searchable PDF")


@needs_docs
@pytest.mark.integration
@pytest.mark.parametrize("name", ["with_image.pdf", "inline_image.pdf", "shredded_strips.pdf", "stencil_mask.pdf"])
def test_image_only_pdfs_whose_images_hold_no_text_still_have_no_text(tesseract: Tesseract, name: str) -> None:
    with pytest.raises(LoadError, match=f"^{re.escape(NO_TEXT_AFTER_OCR)}$"):
        load_file(ONYX / name)


@needs_docs
@pytest.mark.unit
def test_without_tesseract_a_scanned_pdf_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(ocr_module, "_ENGINE", None)  # as in a process that has not found it yet
    with pytest.raises(LoadError) as caught:
        load_file(SCANNED)
    assert str(caught.value) == f"{NO_TEXT}; {INSTALL_HINT}"
    with pytest.raises(LoadError, match="^OCR needs Tesseract: apt-get install tesseract-ocr"):
        find_tesseract()
    assert load_file(PDFS / "sample_pdf_1.pdf")[0].metadata["page_count"] == 4  # text layers need no OCR


# ---- image files ----------------------------------------------------------------------------------------------


@needs_docs
@pytest.mark.integration
def test_an_image_file_is_read_by_ocr(tesseract: Tesseract, tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(png(render(SCANNED, 1)))
    [doc] = load_file(path)
    for words in SCANNED_WORDS:
        assert words in doc.text
    assert doc.title == "scan"
    assert doc.metadata == {"page_count": 1, "page_starts": [0], "ocr": True, "ocr_engine": tesseract.name}


@needs_docs
@pytest.mark.integration
def test_each_frame_of_a_tiff_is_a_page(tesseract: Tesseract, tmp_path: Path) -> None:
    one, two = render(ONYX / "multipage.pdf", 1), render(ONYX / "multipage.pdf", 2)
    path = tmp_path / "pages.tiff"
    one.save(path, save_all=True, append_images=[two], compression="tiff_lzw")
    [doc] = load_file(path)
    starts = doc.metadata["page_starts"]
    assert doc.metadata["page_count"] == 2 == len(starts)
    assert doc.text[starts[0] :].startswith("Page one content")
    assert doc.text[starts[1] :].startswith("Page two content")


@needs_docs
@pytest.mark.integration
def test_text_on_a_transparent_background_is_read(tesseract: Tesseract, tmp_path: Path) -> None:
    # Black text on transparent black: as plain grey it would be black on black.
    image = render(ONYX / "multipage.pdf", 1, fill_color=(0, 0, 0, 0))
    assert image.mode == "RGBA" and image.getpixel((0, 0)) == (0, 0, 0, 0)
    path = tmp_path / "transparent.webp"
    image.save(path, lossless=True)
    assert "Page one content" in load_file(path)[0].text


@pytest.mark.integration
def test_an_image_without_text_is_a_load_error(tesseract: Tesseract, tmp_path: Path) -> None:
    path = tmp_path / "noise.jpg"
    noise = Image.frombytes("L", (200, 100), random.Random(1).randbytes(200 * 100))
    Image.merge("RGB", [noise] * 3).save(path, quality=90)
    with pytest.raises(LoadError, match=f"^{NO_TEXT_IN_IMAGE}$"):
        load_file(path)
    blank = tmp_path / "blank.bmp"
    Image.new("RGB", (300, 200), "white").save(blank)
    with pytest.raises(LoadError, match=f"^{NO_TEXT_IN_IMAGE}$"):
        load_file(blank)


@pytest.mark.unit
def test_a_truncated_image_is_one_line_load_error(tmp_path: Path) -> None:
    data = png(Image.frombytes("L", (300, 300), random.Random(2).randbytes(300 * 300)))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match=r"^corrupt or truncated image: [^\n]+$"):
        load_file(path)


@pytest.mark.unit
def test_text_named_like_an_image_is_one_line_load_error(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_text("These are words, not a picture.\n")
    with pytest.raises(LoadError, match=r"^not an image file: not PNG, JPEG, TIFF, BMP or WebP data$"):
        load_file(path)


@pytest.mark.unit
def test_an_image_format_pillow_would_hand_to_ghostscript_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "page.png"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n")
    with pytest.raises(LoadError, match="^not an image file"):
        load_file(path)


@pytest.mark.unit
def test_decompression_bombs_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    over_twice, over_once = tmp_path / "over_twice.png", tmp_path / "over_once.png"
    Image.new("L", (100, 100), "white").save(over_twice)
    Image.new("L", (40, 40), "white").save(over_once)
    # Over twice the limit Pillow refuses the file itself; between once and twice it only warns, and we refuse.
    with pytest.raises(LoadError, match=r"^image too large: Image size \(10000 pixels\) exceeds limit of 2000"):
        load_file(over_twice)
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(LoadError, match="^image too large: 40 x 40"):
        load_file(over_once)


@needs_docs
@pytest.mark.integration
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning", "ignore:Truncated File Read:UserWarning")
def test_damaged_images_load_or_fail_with_a_load_error(tesseract: Tesseract, tmp_path: Path) -> None:
    image = render(ONYX / "simple.pdf", 1).resize((150, 150))
    seeds = {}
    for suffix, options in ((".png", {}), (".jpg", {}), (".tiff", {"compression": "tiff_lzw"}), (".webp", {})):
        out = io.BytesIO()
        image.save(out, format=Image.registered_extensions()[suffix], **options)
        seeds[suffix] = out.getvalue()
    rnd, outcomes = random.Random(7), set()
    for suffix, seed in seeds.items():
        for number in range(12):
            data = bytearray(seed)
            for _ in range(rnd.randint(1, 3)):
                at = rnd.randrange(len(data))
                data[at : at + rnd.randint(1, 8)] = rnd.randbytes(rnd.randint(0, 8))
            path = tmp_path / f"{number}{suffix}"
            path.write_bytes(bytes(data))
            try:
                load_file(path)
                outcomes.add("ok")
            except LoadError as exc:
                assert "\n" not in str(exc)
                outcomes.add("LoadError")
    assert outcomes == {"ok", "LoadError"}  # the damage reaches both outcomes


# ---- the ingestion pipeline -----------------------------------------------------------------------------------


@needs_docs
@pytest.mark.integration
def test_ingested_scans_carry_the_ocr_marker(
    tesseract: Tesseract, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "scanned.pdf").write_bytes(SCANNED.read_bytes())
    (folder / "notes.txt").write_text("Typed notes need no OCR.")
    with Store.open(tmp_path / "store", embedder=embedder) as store:
        report = ingest_paths(store, [folder], progress=False)
        assert (report.documents, report.errors) == (2, [])
        [passage] = store.passages(store.keyword_search("neatly organized", 5))
    assert passage.source == str(folder / "scanned.pdf")
    assert "regardless of how neatly it is organized" in passage.text
    assert passage.metadata["ocr_pages"] == [1] and passage.metadata["ocr_engine"] == tesseract.name
