"""PDF loading: the two parsers and the fallback between them, on hand-written PDFs; file names in retrieval."""

from __future__ import annotations

import io
import textwrap
import zlib
from pathlib import Path

import pypdf
import pytest

from index import DEFAULT_COLLECTION, SentenceTransformerEmbedder, Store
from ingest.errors import LoadError
from ingest.loaders import load_file, pdf_guard
from ingest.loaders.pdf import read_pdf
from ingest.loaders.pdf_guard import MIB, pdfium_hazard
from ingest.pipeline import ingest_paths
from rag.retriever import StoreRetriever

# ---- hand-written PDFs --------------------------------------------------------------------------


def pdf_bytes(
    pages: list[bytes], title: str | None = None, encoding: bytes = b"/WinAnsiEncoding", filters: bytes = b""
) -> bytes:
    """A complete PDF: one page per content stream (as stored, so encoded by `filters` if given, e.g.
    `/Filter /FlateDecode`), Helvetica as /F1, and an /Info /Title when given."""
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding %s >>" % encoding
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", font]
    kids = []
    for content in pages:
        objects.append(b"<< /Length %d %s >>\nstream\n%s\nendstream" % (len(content), filters, content))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % (len(objects))
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    info = b""
    if title is not None:
        objects.append(b"<< /Title (%s) >>" % _escape(title))
        info = b" /Info %d 0 R" % len(objects)
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)


def text_page(text: str) -> bytes:
    """A content stream that shows `text`, wrapped into lines, in 11-point Helvetica from the top of the page."""
    lines = [line for paragraph in text.split("\n") for line in textwrap.wrap(paragraph, 90) or [""]]
    shown = b"".join(b"(%s) Tj T*\n" % _escape(line) for line in lines)
    return b"BT /F1 11 Tf 14 TL 72 740 Td\n" + shown + b"ET"


def _escape(text: str) -> bytes:
    return text.encode("cp1252").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def deflate(content: bytes, blank_mib: int = 0) -> bytes:
    """`content` compressed, followed by `blank_mib` MiB of spaces (a decompression bomb), never held inflated."""
    compressor = zlib.compressobj(9)
    pieces = [compressor.compress(content)]
    pieces += [compressor.compress(b" " * MIB) for _ in range(blank_mib)]
    return b"".join([*pieces, compressor.flush()])


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---- parsing ----------------------------------------------------------------------------------------


@pytest.mark.unit
def test_pages_and_their_start_offsets(tmp_path: Path) -> None:
    pages = [text_page("Page one says hello."), text_page("Page two says goodbye.")]
    [doc] = load_file(write(tmp_path / "two.pdf", pdf_bytes(pages)))
    starts = doc.metadata["page_starts"]
    assert doc.metadata["page_count"] == 2
    assert doc.text[starts[0] :].startswith("Page one says hello.")
    assert doc.text[starts[1] :] == "Page two says goodbye."
    assert "\r" not in doc.text


@pytest.mark.unit
def test_a_pdf_over_pypdfs_array_limit_loads(tmp_path: Path) -> None:
    """Long filings hold arrays longer than pypdf accepts; pdfium reads them."""
    limit = pypdf.get_configuration().array_maximum_element_count
    kerning = b"0 " * (limit + 1)  # a TJ array of zero kerning adjustments, then the text
    content = b"BT /F1 11 Tf 72 740 Td [" + kerning + b"(Net sales rose in the quarter.)] TJ ET"
    data = pdf_bytes([content, text_page("Second page.")])
    with pytest.raises(pypdf.errors.LimitReachedError, match="maximum array element count"):
        pypdf.PdfReader(io.BytesIO(data)).pages[0].extract_text()
    [doc] = load_file(write(tmp_path / "10-Q.pdf", data))
    assert doc.text == "Net sales rose in the quarter.\n\nSecond page."
    assert doc.metadata["page_count"] == 2


@pytest.mark.unit
def test_pypdf_reads_what_pdfium_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.loaders.pdf as pdf

    def refuse(data: bytes) -> pdf.PdfText:
        raise LoadError("corrupt or truncated PDF: Data format error")

    monkeypatch.setattr(pdf, "_PARSERS", (("pdfium", refuse), *pdf._PARSERS[1:]))
    pages, title = read_pdf(pdf_bytes([text_page("Still read.")], title="A Title"))
    assert (pages, title) == (["Still read."], "A Title")


@pytest.mark.unit
def test_pypdf_is_asked_when_pdfium_finds_no_text(monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.loaders.pdf as pdf

    monkeypatch.setattr(pdf, "_PARSERS", (("pdfium", lambda data: pdf.PdfText([""], "Kept")), *pdf._PARSERS[1:]))
    assert read_pdf(pdf_bytes([text_page("Found by pypdf.")])) == (["Found by pypdf."], "Kept")


@pytest.mark.unit
def test_a_file_both_parsers_refuse_names_both_reasons(tmp_path: Path) -> None:
    data = pdf_bytes([text_page("Cut short.")])
    broken = write(tmp_path / "broken.pdf", data[: data.index(b"xref")].replace(b"obj", b"obk"))
    with pytest.raises(LoadError, match=r"^corrupt or truncated PDF: pdfium: .+; pypdf: .+"):
        load_file(broken)


@pytest.mark.unit
def test_a_page_without_text_is_no_text(tmp_path: Path) -> None:
    # OCR reads the page (a drawn line) and finds no text either; without Tesseract, the message says how to get it.
    with pytest.raises(LoadError, match="^no extractable text"):
        load_file(write(tmp_path / "blank.pdf", pdf_bytes([b"0 0 m 100 100 l S"])))


@pytest.mark.unit
def test_a_hyphen_that_ends_a_line_is_kept(tmp_path: Path) -> None:
    content = b"BT /F1 11 Tf 14 TL 72 740 Td (A well-) Tj T* (known result.) Tj ET"
    [doc] = load_file(write(tmp_path / "hyphen.pdf", pdf_bytes([content])))
    assert doc.text == "A well-known result."  # pdfium joins the lines and writes the hyphen as U+FFFE


@pytest.mark.unit
def test_ligatures_read_as_letters_by_both_parsers() -> None:
    import ingest.loaders.pdf as pdf

    ligatures = b"<< /Type /Encoding /BaseEncoding /WinAnsiEncoding /Differences [1 /fi /fl] >>"
    data = pdf_bytes([b"BT /F1 11 Tf 72 740 Td (\x01nd the speci\x01c \x02ow) Tj ET"], encoding=ligatures)
    assert "\ufb01" in pypdf.PdfReader(io.BytesIO(data)).pages[0].extract_text()  # pypdf alone keeps the glyph
    for _, parse in pdf._PARSERS:
        assert parse(data).pages == ["find the specific flow"]


# ---- decompression bombs: pdfium inflates without a limit, so it never sees one -------------------------

DEFLATED = b"/Filter /FlateDecode"
SHOWN = b"BT /F1 11 Tf 72 740 Td (Shown.) Tj ET\n"


@pytest.mark.unit
def test_ordinary_deflated_pages_go_to_pdfium() -> None:
    data = pdf_bytes([deflate(SHOWN), deflate(SHOWN)], filters=DEFLATED)
    assert pdfium_hazard(data) is None
    assert read_pdf(data).pages == ["Shown.", "Shown."]


@pytest.mark.unit
def test_a_deflate_bomb_is_refused_without_pdfium(monkeypatch: pytest.MonkeyPatch) -> None:
    import pypdfium2

    def never(*args: object) -> None:
        raise AssertionError("pdfium was given a decompression bomb")

    monkeypatch.setattr(pypdfium2, "PdfDocument", never)
    data = pdf_bytes([deflate(SHOWN, blank_mib=80)], filters=DEFLATED)  # 80 KiB that inflate to 80 MiB
    assert len(data) < MIB
    with pytest.raises(LoadError, match=r"pdfium: skipped \(a stream inflates to more than 75 MiB\); pypdf: "):
        read_pdf(data)


@pytest.mark.unit
def test_streams_that_inflate_too_much_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_guard, "MAX_TOTAL_BYTES", 3 * MIB)
    data = pdf_bytes([deflate(SHOWN, blank_mib=2), deflate(SHOWN, blank_mib=2)], filters=DEFLATED)
    assert pdfium_hazard(data) == "its streams inflate to more than 3 MiB"
    assert read_pdf(data).pages == ["Shown.", "Shown."]  # pypdf reads it, under its own limits


def inline_image(data: bytes, filters: bytes = b"/F /Fl") -> bytes:
    return SHOWN + b"q 10 0 0 10 0 0 cm BI /W 4 /H 4 /BPC 8 /CS /G %s ID %s EI Q" % (filters, data)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("pages", "filters", "hazard"),
    [
        ([inline_image(deflate(bytes(16)))], b"", "a compressed inline image"),
        ([deflate(inline_image(deflate(bytes(16))))], DEFLATED, "a compressed inline image"),  # inflated first
        ([inline_image(b"00" * 16, b"/F [/Fl /LZW]")], b"", "/LZW data"),
        ([deflate(inline_image(b"00" * 16, b"/Filter /R#4c"))], DEFLATED, "/R#4c data"),
        ([SHOWN], b"/Filter /LZW#44ecode", "/LZW#44ecode data"),
        ([SHOWN], b"/Filter /RunLengthDecode", "/RunLengthDecode data"),
        ([SHOWN], b"/Filter [/ASCII85Decode /FlateDecode]", "/ASCII85Decode data"),
        ([SHOWN], b"/Encrypt 9 0 R", "/Encrypt data"),
    ],
)
def test_what_the_guard_cannot_measure_is_left_to_pypdf(pages: list[bytes], filters: bytes, hazard: str) -> None:
    reason = pdfium_hazard(pdf_bytes(pages, filters=filters))
    assert reason is not None and reason.startswith(hazard)
    assert reason.endswith("not checked for decompression bombs")


@pytest.mark.unit
def test_an_inline_image_bomb_is_refused_without_pdfium(monkeypatch: pytest.MonkeyPatch) -> None:
    import pypdfium2

    monkeypatch.setattr(pypdfium2, "PdfDocument", lambda *args: pytest.fail("pdfium was given a bomb"))
    bomb = deflate(b"", blank_mib=64)  # pdfium would inflate it while parsing the page
    assert read_pdf(pdf_bytes([deflate(inline_image(bomb))], filters=DEFLATED)).pages == ["Shown."]


# ---- file names in retrieval ------------------------------------------------------------------------

FILINGS = {  # file stem: (metadata title, net sales, operating income, research spending) in $ millions
    "2023 Q3 AAPL": ("0000320193-23-000077", 81_797, 22_998, 7_442),
    "2023 Q2 AAPL": ("Microsoft Word - 10q.docx", 94_836, 28_318, 7_457),
    "2022 Q4 AAPL": ("untitled", 90_146, 24_894, 6_761),
    "2023 Q3 MSFT": (None, 56_189, 24_254, 6_739),
    "2023 Q2 MSFT": ("0000950170-23-014423", 52_857, 22_352, 6_984),
    "2022 Q4 MSFT": ("Quarterly Report", 50_122, 20_399, 6_628),
}
QUESTIONS = [
    "What were net sales in the {quarter} {year} {ticker} filing?",
    "How much did {ticker} spend on research and development in {year} {quarter}?",
    "{ticker} operating income for {quarter} of {year}",
]


def filing(net_sales: int, operating_income: int, research: int) -> list[bytes]:
    """Two pages of a quarterly report that names neither its company nor its quarter: the same words in every
    file, only the numbers differ."""
    first = (
        "Condensed Consolidated Statements of Operations\n"
        f"Total net sales for the three months ended were ${net_sales:,} million, compared with the same quarter of "
        "the prior year. Products and services both contributed to the change in net sales.\n"
        f"Operating income was ${operating_income:,} million. Gross margin percentage was affected by a different "
        "mix of products and by foreign currency exchange rates.\n"
    )
    second = (
        "Operating Expenses\n"
        f"Research and development expense was ${research:,} million, driven by headcount-related expenses. "
        "Selling, general and administrative expense rose by a smaller amount.\n"
        "Liquidity and Capital Resources\n"
        "The Company believes its balances of unrestricted cash and marketable securities will be sufficient "
        "to satisfy its cash requirements and capital return program over the next twelve months.\n"
    )
    return [text_page(first), text_page(second)]


@pytest.fixture()
def filings_store(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Store:
    folder = tmp_path / "filings"
    folder.mkdir()
    for stem, (title, *numbers) in FILINGS.items():
        write(folder / f"{stem}.pdf", pdf_bytes(filing(*numbers), title))
    store = Store.open(tmp_path / "store", embedder=embedder)
    report = ingest_paths(store, [folder], progress=False)
    assert (report.documents, report.errors) == (len(FILINGS), [])
    yield store
    store.close()


def first_hits(store: Store) -> dict[str, str]:
    """Each question, with the stem of the file whose passage hybrid retrieval ranks first."""
    retriever = StoreRetriever(store, mode="hybrid")
    firsts = {}
    for stem in FILINGS:
        year, quarter, ticker = stem.split()
        for question in QUESTIONS:
            asked = question.format(year=year, quarter=quarter, ticker=ticker)
            [best] = retriever.retrieve(asked, k=1, collection=DEFAULT_COLLECTION)
            firsts[asked] = Path(best.source).stem
    return firsts


@pytest.mark.integration
def test_questions_naming_company_and_quarter_find_that_file_first(filings_store: Store) -> None:
    titles = {Path(d.source).stem: d.title for d in filings_store.documents()}
    assert titles["2023 Q3 AAPL"] == "2023 Q3 AAPL"  # an accession number is not a title
    assert titles["2022 Q4 MSFT"] == "Quarterly Report (2022 Q4 MSFT)"
    firsts = first_hits(filings_store)
    wrong = {asked: got for asked, got in firsts.items() if not _names(asked, got)}
    assert not wrong, f"{len(firsts) - len(wrong)} of {len(firsts)} first; wrong: {wrong}"


def _names(question: str, stem: str) -> bool:
    return all(part in question for part in stem.split())
