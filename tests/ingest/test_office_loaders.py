"""Slides, spreadsheets, CSV, e-mail and EPUB loaders: the real shared samples, files made here with the
formats' own libraries, and damaged copies of both."""

from __future__ import annotations

import os
import time
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from index import SentenceTransformerEmbedder, Store
from ingest.errors import LoadError
from ingest.loaders import load_file
from ingest.loaders.xlsx import MAX_CELLS
from ingest.pipeline import ingest_paths

REPO = Path(__file__).resolve().parents[2]
HAYSTACK = REPO.parent / "shared" / "data" / "docs" / "haystack_test_files"
needs_data = pytest.mark.skipif(not HAYSTACK.is_dir(), reason=f"shared documents missing: {HAYSTACK}")


def texts(path: Path) -> dict[str, str]:
    return {doc.source: doc.text for doc in load_file(path)}


def damaged_copy(source: Path, folder: Path, cut: float = 0.5) -> Path:
    """The first `cut` of `source`'s bytes, under the same name in `folder`."""
    data = source.read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / source.name
    copy.write_bytes(data[: int(len(data) * cut)])
    return copy


# ---- PowerPoint ------------------------------------------------------------------------------------------------


@pytest.mark.unit
@needs_data
def test_pptx_sample_slides_in_order_with_offsets() -> None:
    [doc] = load_file(HAYSTACK / "pptx" / "sample_pptx.pptx")
    # The core title is "PowerPoint Presentation", a placeholder: the title slide names the deck instead.
    assert doc.title == "Sample Title Slide (sample_pptx)"
    assert doc.metadata["slide_count"] == 2
    first, second = doc.metadata["slide_starts"]
    assert doc.text[first:second] == "Sample Title Slide\n\nJane Doe\n\n"
    assert doc.text[second:] == "Title of First Slide\n\nThis is a bullet point\nThis is another bullet point"


@pytest.mark.unit
@needs_data
def test_pptx_with_link_keeps_the_link_text() -> None:
    [doc] = load_file(HAYSTACK / "pptx" / "sample_pptx_with_link.pptx")
    assert doc.text.startswith("Slide With Link\n\nVisit Example for more info.")
    assert doc.text[doc.metadata["slide_starts"][1] :] == "Slide Without Links\n\nJust plain text here."


@pytest.mark.unit
def test_pptx_tables_groups_and_notes(tmp_path: Path) -> None:
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    slide.shapes.title.text = "Tide heights"
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    for (row, col), text in {(0, 0): "Port", (0, 1): "Metres", (1, 0): "Brest", (1, 1): "7.2"}.items():
        table.cell(row, col).text = text
    group = slide.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(1), Inches(4), Inches(3), Inches(1)).text_frame.text = "Spring tides only"
    slide.notes_slide.notes_text_frame.text = "Mention the equinox."
    deck.slides.add_slide(deck.slide_layouts[6])  # blank: no text at all
    path = tmp_path / "tides.pptx"
    deck.save(path)
    [doc] = load_file(path)
    assert doc.text == "Tide heights\n\nPort | Metres\nBrest | 7.2\n\nSpring tides only\n\nMention the equinox.\n\n"
    assert doc.metadata == {"slide_count": 2, "slide_starts": [0, len(doc.text)]}
    assert doc.title == "Tide heights (tides)"


# ---- Excel ----------------------------------------------------------------------------------------------------


@pytest.mark.unit
@needs_data
def test_xlsx_one_document_per_sheet() -> None:
    path = HAYSTACK / "xlsx" / "basic_tables_two_sheets.xlsx"
    docs = load_file(path)
    assert [doc.source for doc in docs] == [f"{path}#Basic Table", f"{path}#Table Missing Value"]
    assert [doc.title for doc in docs] == [
        "basic_tables_two_sheets: Basic Table",
        "basic_tables_two_sheets: Table Missing Value",
    ]
    assert [doc.text for doc in docs] == ["col_a: 1.5; col_b: test", "col_c: True"]  # col_d's only cell is empty
    assert [doc.metadata for doc in docs] == [
        {"sheet": "Basic Table", "rows": 1},
        {"sheet": "Table Missing Value", "rows": 1},
    ]


@pytest.mark.unit
@needs_data
def test_xlsx_header_is_the_first_non_empty_row() -> None:
    folder = HAYSTACK / "xlsx"
    # Three empty rows and an empty first column before the table.
    assert texts(folder / "table_empty_rows_and_columns.xlsx") == {
        f"{folder / 'table_empty_rows_and_columns.xlsx'}#Sheet1": "col_a: 1.5; col_b: test"
    }
    # A second table beside the first: its columns have no header in the header row, so their letters name them.
    assert list(texts(folder / "multiple_tables.xlsx").values()) == [
        "col_a: 1.5; col_b: test; E: col_c; F: col_d\nE: 3; F: True"
    ]
    assert list(texts(folder / "spreadsheet_with_links.xlsx").values()) == [
        "Name: Example; Website: Click here\nName: Python; Website: Docs"
    ]


@pytest.mark.unit
def test_xlsx_values_formulas_dates_and_a_far_corner(tmp_path: Path) -> None:
    import datetime as dt

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Tides"
    sheet.append(["Port", "Date", "Height\nm"])
    sheet.append(["Brest", dt.datetime(2024, 3, 20), 7.0])
    sheet["XFD1048576"] = "corner"  # the sheet's declared size becomes the whole grid
    book.create_sheet("Empty")
    path = tmp_path / "tides.xlsx"
    book.save(path)
    started = time.perf_counter()
    [doc] = load_file(path)
    assert time.perf_counter() - started < 10  # rows are not padded to the declared 16,384 columns
    assert doc.text == "Port: Brest; Date: 2024-03-20; Height m: 7\nXFD: corner"
    assert doc.metadata == {"sheet": "Tides", "rows": 2}


@pytest.mark.unit
def test_xlsx_wider_than_the_cell_budget_is_refused(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Wide")
    for row in range(MAX_CELLS // 16_384 + 1):  # each row reaches the last column: 16,384 cells once padded
        sheet.append([f"row {row}", *[None] * 16_382, "far"])
    path = tmp_path / "wide.xlsx"
    book.save(path)
    with pytest.raises(LoadError, match=r"^refusing \.xlsx file: its sheets hold over 20,000,000 cells$"):
        load_file(path)


# ---- CSV ------------------------------------------------------------------------------------------------------


@pytest.mark.unit
@needs_data
@pytest.mark.parametrize(
    ("name", "second_row"),
    [
        ("sample_1.csv", "Name: Jane Smith; Age: 37"),
        ("sample_2.csv", "Name: Jane Smith; City: Los Angeles"),  # all text: the sniffer alone finds no header
        ("sample_3.csv", "Name: Jane Smith; Email: janesmith@example.com"),
    ],
)
def test_csv_samples(name: str, second_row: str) -> None:
    [doc] = load_file(HAYSTACK / "csv" / name)
    assert doc.text.splitlines()[1] == second_row
    assert doc.metadata == {"rows": 3, "delimiter": ","}
    assert doc.title == Path(name).stem


@pytest.mark.unit
def test_csv_semicolons_and_latin1(tmp_path: Path) -> None:
    path = tmp_path / "prix.csv"
    path.write_bytes("Produit;Prix;Origine\nCrème brûlée;4,20;Français\nGruyère;3,50;Suisse\n".encode("latin-1"))
    [doc] = load_file(path)
    assert (
        doc.text
        == "Produit: Crème brûlée; Prix: 4,20; Origine: Français\nProduit: Gruyère; Prix: 3,50; Origine: Suisse"
    )
    assert doc.metadata == {"rows": 2, "delimiter": ";"}


@pytest.mark.unit
def test_tsv_quoted_fields_and_no_header(tmp_path: Path) -> None:
    tsv = tmp_path / "t.tsv"
    tsv.write_text('id\tnote\n1\t"two\nlines"\n\n2\tplain\n')
    assert load_file(tsv)[0].text == "id: 1; note: two lines\nid: 2; note: plain"
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("1,2.5\n3,4.5\n")
    assert load_file(numbers)[0].text == "column 1: 1; column 2: 2.5\ncolumn 1: 3; column 2: 4.5"


@pytest.mark.unit
def test_csv_that_is_not_text_or_not_csv(tmp_path: Path) -> None:
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"a,b\n\x00\x01\x02,\xff\xfe\n" * 10)
    with pytest.raises(LoadError, match=r"^not a text file"):
        load_file(binary)
    huge_field = tmp_path / "field.csv"
    huge_field.write_text('a,b\n1,"' + "x" * 200_000 + '"\n')
    with pytest.raises(LoadError, match=r"^not a readable CSV file: field larger than field limit"):
        load_file(huge_field)


# ---- e-mail ---------------------------------------------------------------------------------------------------


def write_eml(path: Path, message: EmailMessage) -> Path:
    path.write_bytes(bytes(message))
    return path


def quarterly_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ann Lee <ann@example.org>"
    message["To"] = "Bob <bob@example.org>"
    message["Date"] = "Mon, 17 Feb 2025 10:19:05 +0000"
    message["Subject"] = "Quarterly numbers"
    message.set_content("Revenue grew 12 percent.\n\nAnn")
    message.add_alternative("<p>Revenue grew <b>12</b> percent.</p>", subtype="html")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="q3.pdf")
    return message


@pytest.mark.unit
def test_eml_headers_plain_body_and_attachment_names(tmp_path: Path) -> None:
    [doc] = load_file(write_eml(tmp_path / "q3.eml", quarterly_message()))
    assert doc.title == "Quarterly numbers"
    assert doc.text == (
        "From: Ann Lee <ann@example.org>\nTo: Bob <bob@example.org>\nDate: Mon, 17 Feb 2025 10:19:05 +0000\n"
        "Subject: Quarterly numbers\n\nRevenue grew 12 percent.\n\nAnn"
    )
    assert doc.metadata == {
        "from": "Ann Lee <ann@example.org>",
        "to": "Bob <bob@example.org>",
        "date": "2025-02-17T10:19:05+00:00",
        "attachments": ["q3.pdf"],
    }


@pytest.mark.unit
def test_eml_html_only_body_and_unknown_charset(tmp_path: Path) -> None:
    message = EmailMessage()
    message["From"] = "ann@example.org"
    message["Subject"] = "Menu"
    html = '<html><head><meta charset="iso-8859-1"></head><body><p>Crème brûlée</p><script>x()</script></body></html>'
    message.set_content(html, subtype="html", charset="utf-8")
    [doc] = load_file(write_eml(tmp_path / "menu.eml", message))
    assert doc.text == "From: ann@example.org\nSubject: Menu\n\nCrème brûlée"
    odd = EmailMessage()
    odd["Subject"] = "Odd charset"
    odd.set_content("Grüße aus Köln".encode("latin-1"), maintype="text", subtype="plain", cte="8bit")
    odd.replace_header("Content-Type", "text/plain; charset=x-no-such-charset")
    [doc] = load_file(write_eml(tmp_path / "odd.eml", odd))
    assert doc.text.endswith("\n\nGrüße aus Köln")


@pytest.mark.unit
def test_eml_that_is_not_a_message(tmp_path: Path) -> None:
    prose = tmp_path / "prose.eml"
    prose.write_text("Just a note, with no headers at all.\n")
    with pytest.raises(LoadError, match=r"^not an e-mail message: it has no From, To, Date or Subject header$"):
        load_file(prose)
    binary = tmp_path / "binary.eml"
    binary.write_bytes(b"From: x\x00\x00\x00" * 50)
    with pytest.raises(LoadError, match=r"^not an e-mail message: not a text file"):
        load_file(binary)


@pytest.mark.unit
@needs_data
def test_msg_sample_and_no_open_files_left() -> None:
    pytest.importorskip("extract_msg")
    fds = Path("/proc/self/fd")
    before = len(os.listdir(fds)) if fds.is_dir() else 0
    [doc] = load_file(HAYSTACK / "msg" / "sample.msg")
    assert not fds.is_dir() or len(os.listdir(fds)) == before
    assert doc.title == "This is a Subject"
    assert doc.text.startswith('From: "Sebastian Lee" <outlook_A8F9F599CBC281A0@outlook.com>\n')
    assert "\nSubject: This is a Subject\n\nDear tester,\n\nThis is an example email with a body." in doc.text
    assert "\r" not in doc.text
    assert doc.metadata["attachments"] == ["sample_pdf_1.pdf"]
    assert doc.metadata["cc"] == '"sebastian.lee+cc@deepset.ai" <sebastian.lee+cc@deepset.ai>'
    assert doc.metadata["date"] == "2025-02-17T10:19:05+00:00"


# ---- EPUB -----------------------------------------------------------------------------------------------------


def write_epub(path: Path) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("tides-1")
    book.set_title("The Tide Tables")
    book.set_language("en")
    one = epub.EpubHtml(
        title="One", file_name="one.xhtml", content="<h1>Chapter One</h1><p>Tides rise twice a day.</p>"
    )
    two = epub.EpubHtml(title="Two", file_name="two.xhtml", content="<h1>Chapter Two</h1><p>Spring tides.</p>")
    book.add_item(two)  # stored out of order: the spine decides the reading order
    book.add_item(one)
    book.toc = (one, two)
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", one, two]
    path.parent.mkdir(parents=True, exist_ok=True)
    epub.write_epub(str(path), book)
    return path


@pytest.mark.unit
def test_epub_chapters_in_spine_order(tmp_path: Path) -> None:
    pytest.importorskip("ebooklib")
    [doc] = load_file(write_epub(tmp_path / "tides.epub"))
    assert doc.title == "The Tide Tables (tides)"
    assert doc.text == "Chapter One\n\nTides rise twice a day.\n\nChapter Two\n\nSpring tides."
    assert doc.metadata == {"chapter_count": 2, "chapter_starts": [0, doc.text.index("Chapter Two")]}


# ---- damaged files --------------------------------------------------------------------------------------------

SAMPLES = {".pptx": "pptx/sample_pptx.pptx", ".xlsx": "xlsx/basic_tables_two_sheets.xlsx", ".msg": "msg/sample.msg"}


def sample(suffix: str, tmp_path: Path) -> Path:
    if suffix == ".epub":
        pytest.importorskip("ebooklib")
        return write_epub(tmp_path / "made" / "book.epub")
    if suffix == ".msg":
        pytest.importorskip("extract_msg")
    if not HAYSTACK.is_dir():
        pytest.skip(f"shared documents missing: {HAYSTACK}")
    return HAYSTACK / SAMPLES[suffix]


@pytest.mark.unit
@pytest.mark.parametrize("suffix", [".pptx", ".xlsx", ".msg", ".epub"])
@pytest.mark.parametrize("cut", [0.5, 0.01])
def test_truncated_files_are_one_line_load_errors(tmp_path: Path, suffix: str, cut: float) -> None:
    truncated = damaged_copy(sample(suffix, tmp_path), tmp_path / "cut", cut)
    with pytest.raises(LoadError, match=rf"^not a readable {suffix} file: \S") as caught:
        load_file(truncated)
    assert "\n" not in str(caught.value)


@pytest.mark.unit
@pytest.mark.parametrize("suffix", [".pptx", ".xlsx", ".epub"])
def test_zip_bombs_are_refused_in_every_office_package(tmp_path: Path, suffix: str) -> None:
    bomb = tmp_path / f"bomb{suffix}"
    bomb.write_bytes(sample(suffix, tmp_path).read_bytes())
    with zipfile.ZipFile(bomb, "a", zipfile.ZIP_DEFLATED) as package:
        package.writestr("media/zeros.bin", bytes(8 * 1024 * 1024))
    with pytest.raises(LoadError, match=rf"^refusing {suffix} file: member 'media/zeros\.bin' declares 8\.0 MiB"):
        load_file(bomb)


@pytest.mark.unit
def test_a_msg_that_is_not_an_ole_file(tmp_path: Path) -> None:
    fake = tmp_path / "fake.msg"
    fake.write_bytes(b"not an outlook message")  # short bytes, which extract-msg alone would take for a path
    with pytest.raises(LoadError, match=r"^not an Outlook \.msg file: no OLE2 header$"):
        load_file(fake)


@pytest.mark.integration
def test_damaged_files_in_a_batch_do_not_stop_the_others(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = tmp_path / "batch"
    for suffix in (".pptx", ".xlsx", ".msg", ".epub"):
        damaged_copy(sample(suffix, tmp_path / "samples"), folder / "damaged")
    write_eml(folder / "q3.eml", quarterly_message())
    (folder / "prices.csv").write_text("Item;Price\nTea;3\n")
    (folder / "setup.exe").write_bytes(b"MZ")
    with Store.open(tmp_path / "store", embedder=embedder) as store:
        report = ingest_paths(store, [folder], progress=False)
    assert sorted(Path(error.path).suffix for error in report.errors) == [".epub", ".msg", ".pptx", ".xlsx"]
    assert all(error.reason.startswith("not a readable") for error in report.errors)
    assert (report.files, report.documents) == (6, 2)
    assert [(Path(p.path).name, p.reason) for p in report.passed_over] == [
        ("setup.exe", "unsupported file type '.exe'")
    ]
    assert report.ok
