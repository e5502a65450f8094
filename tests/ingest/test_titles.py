"""Document titles of files: which metadata titles count, and the file name always in the title."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ingest.loaders import load_file
from ingest.loaders.titles import file_title, reads_like_title

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "title",
    [
        "Apple Inc. Form 10-Q",
        "Quarterly Report",
        "Embeddings",
        "Q3 2023 Results",
        "What is Haystack? | Haystack",
        "Über die Elektrodynamik bewegter Körper",
        "  My   Title ",
    ],
)
def test_titles_in_words_count(title: str) -> None:
    assert reads_like_title(title)


@pytest.mark.parametrize(
    "title",
    [
        "",
        "   ",
        "0000320193-23-000077",  # an SEC accession number
        "10-Q",
        "2023",
        "doc1",
        "sample_pdf",
        "sample_pdf_with_headers",
        "report.docx",
        "Annual Report 2023.pdf",
        r"C:\Users\jo\Documents\memo",
        "Microsoft Word - doc1.docx",
        "Microsoft PowerPoint - Q3 results",
        "Word - notes",
        "untitled",
        "Untitled-1",
        "Untitled document",
        "Document",
        "PowerPoint Presentation",
        "Slide 1",
        "12 345 678 / 99",
        "x" * 201,
    ],
)
def test_ids_numbers_file_names_and_placeholders_do_not(title: str) -> None:
    assert not reads_like_title(title)


@pytest.mark.parametrize(
    ("metadata_title", "name", "expected"),
    [
        ("Apple Inc. Form 10-Q", "2023 Q3 AAPL.pdf", "Apple Inc. Form 10-Q (2023 Q3 AAPL)"),
        ("0000320193-23-000077", "2023 Q3 AAPL.pdf", "2023 Q3 AAPL"),
        ("Microsoft Word - doc1.docx", "2023 Q3 AAPL.pdf", "2023 Q3 AAPL"),
        (None, "2023 Q3 AAPL.pdf", "2023 Q3 AAPL"),
        ("Annual Report", "annual_report.pdf", "Annual Report"),  # the stem adds nothing
        ("Annual Report", "2023 annual report.pdf", "2023 annual report"),  # the title adds nothing
        ("My Title", "with_metadata.pdf", "My Title (with_metadata)"),
        ("  Spaced \n Out ", "a  b.docx", "Spaced Out (a b)"),
    ],
)
def test_file_title(metadata_title: str | None, name: str, expected: str) -> None:
    assert file_title(metadata_title, Path("/docs") / name) == expected


def docx_with_title(path: Path, title: str) -> Path:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_paragraph("Net sales rose in the quarter.")
    out = io.BytesIO()
    document.save(out)
    path.write_bytes(out.getvalue())
    return path


@pytest.mark.parametrize(
    ("core_title", "expected"),
    [
        ("Microsoft Word - doc1.docx", "2023 Q3 AAPL"),
        ("untitled", "2023 Q3 AAPL"),
        ("Apple Inc. Form 10-Q", "Apple Inc. Form 10-Q (2023 Q3 AAPL)"),
    ],
)
def test_docx_title_names_the_file(tmp_path: Path, core_title: str, expected: str) -> None:
    [doc] = load_file(docx_with_title(tmp_path / "2023 Q3 AAPL.docx", core_title))
    assert doc.title == expected
