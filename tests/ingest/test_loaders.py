"""Loaders against the real shared documents and hand-made edge cases."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.errors import LoadError, UnsupportedFormatError
from ingest.loaders import LOADERS, LoaderOptions, load_file, loader_for
from ingest.loaders.squad import is_squad
from ingest.loaders.zip_guard import MAX_MEMBERS
from ingest.types import Loader

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
DOCS = DATA / "docs"
ONYX = DOCS / "onyx_pdf_edge_cases"
HAYSTACK = DOCS / "haystack_test_files"

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data folder missing: {DATA}")

NO_TEXT = "no extractable text"
# What each Onyx edge-case PDF must do: the text it contains, or the start of its LoadError.
ONYX_EXPECTED = {
    "empty.pdf": LoadError(NO_TEXT),
    "encrypted.pdf": LoadError("encrypted PDF: a password is required"),
    "inline_image.pdf": LoadError(NO_TEXT),
    "late_mask_reference.pdf": LoadError(NO_TEXT),
    "multipage.pdf": "Page one content",
    "owner_protected.pdf": "Hello World",
    "shared_resources.pdf": LoadError(NO_TEXT),
    "shredded_strips.pdf": LoadError(NO_TEXT),
    "simple.pdf": "Hello World",
    "standalone_stencil.pdf": LoadError(NO_TEXT),
    "stencil_mask.pdf": LoadError(NO_TEXT),
    "with_image.pdf": LoadError(NO_TEXT),
    "with_metadata.pdf": "test",
}


def test_registry_holds_loaders_for_every_suffix() -> None:
    documents = {".docx", ".htm", ".html", ".json", ".jsonl", ".markdown", ".md", ".pdf", ".txt", ".pptx", ".epub"}
    tables_and_mail = {".xlsx", ".csv", ".tsv", ".eml", ".msg"}
    assert documents | tables_and_mail <= set(LOADERS)
    for suffix, loader in LOADERS.items():
        assert isinstance(loader, Loader)
        assert suffix in loader.suffixes


def test_unknown_suffix_lists_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match=r"'\.xyz'.*\.docx, .*\.txt"):
        loader_for(tmp_path / "file.xyz")
    assert loader_for(Path("README.MD")) is LOADERS[".md"]


@needs_data
def test_onyx_list_is_complete() -> None:
    assert sorted(p.name for p in ONYX.glob("*.pdf")) == sorted(ONYX_EXPECTED)


@needs_data
@pytest.mark.parametrize("name", sorted(ONYX_EXPECTED))
def test_onyx_pdf_edge_cases(name: str) -> None:
    expected = ONYX_EXPECTED[name]
    if isinstance(expected, LoadError):
        with pytest.raises(LoadError, match=str(expected)):
            load_file(ONYX / name)
        return
    [doc] = load_file(ONYX / name)
    assert expected in doc.text
    assert doc.source == str(ONYX / name)


@needs_data
def test_pdf_pages_have_start_offsets() -> None:
    [doc] = load_file(ONYX / "multipage.pdf")
    starts = doc.metadata["page_starts"]
    assert doc.metadata["page_count"] == 2 == len(starts)
    assert doc.text[starts[0] :].startswith("Page one content")
    assert doc.text[starts[1] :].startswith("Page two content")


@needs_data
def test_pdf_title_from_metadata_else_stem() -> None:
    assert load_file(ONYX / "with_metadata.pdf")[0].title == "My Title (with_metadata)"
    assert load_file(ONYX / "simple.pdf")[0].title == "simple"


@needs_data
def test_truncated_pdf_is_a_load_error(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes((HAYSTACK / "pdf" / "sample_pdf_1.pdf").read_bytes()[:300])
    with pytest.raises(LoadError, match="corrupt or truncated PDF"):
        load_file(truncated)


def test_pdf_without_header_is_a_load_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.pdf"
    fake.write_text("this is not a pdf")
    with pytest.raises(LoadError, match="not a PDF file"):
        load_file(fake)


@needs_data
@pytest.mark.parametrize(
    ("relative", "title", "snippet"),
    [
        ("docx/sample_docx.docx", "sample_docx", "passed the peak"),
        ("docx/sample_docx_3.docx", "sample_docx_3", "Healthcare | Predictive diagnostics | Improved patient"),
        ("html/paul_graham_superlinear.html", "Superlinear Returns", "returns for performance are superlinear"),
        ("html/what_is_haystack.html", "What is Haystack? | Haystack", "open source Python framework"),
        ("markdown/sample.md", "sample", "## What to build with Haystack"),
        ("txt/doc_1.txt", "doc_1", "Some text for testing."),
        ("pdf/sample_pdf_1.pdf", "sample_pdf_1", "History and standardization"),
    ],
)
def test_shared_samples_load(relative: str, title: str, snippet: str) -> None:
    [doc] = load_file(HAYSTACK / relative)
    assert doc.title == title
    assert snippet in doc.text


@needs_data
def test_docx_keeps_tables_in_document_order() -> None:
    [doc] = load_file(HAYSTACK / "docx" / "sample_docx_3.docx")
    assert doc.text.index("Paragraph 1:") < doc.text.index("Industry | AI Use Case") < doc.text.index("Paragraph 2:")


@needs_data
def test_html_drops_scripts_and_keeps_paragraph_breaks() -> None:
    [doc] = load_file(HAYSTACK / "html" / "what_is_haystack.html")
    assert "function(" not in doc.text and "<" not in doc.text
    assert "\n\nBuilding with Haystack\n\n" in doc.text
    assert all(line == " ".join(line.split()) for line in doc.text.splitlines())


@needs_data
def test_markdown_title_is_first_heading() -> None:
    [doc] = load_file(DOCS / "txtai_docs" / "embeddings" / "index.md")
    assert doc.title == "Embeddings"


def test_markdown_title_ignores_comments_in_code(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("```bash\n# install it\n```\n\n# Real Title ##\n\nbody\n")
    assert load_file(path)[0].title == "Real Title"


@needs_data
def test_json_text_field_option() -> None:
    path = HAYSTACK / "json" / "json_conversion_testfile.json"
    with pytest.raises(LoadError, match="record 0: missing field 'text'"):
        load_file(path)
    [doc] = load_file(path, LoaderOptions(text_field="content"))
    assert doc.text == "Content from a json file"
    assert doc.source == f"{path}#0"


@needs_data
def test_squad_dev_v11_paragraphs() -> None:
    path = DATA / "squad" / "dev-v1.1.json"
    docs = load_file(path)
    assert len(docs) == 2067
    assert len({doc.title for doc in docs}) == 48
    assert len({doc.source for doc in docs}) == 2067
    first = docs[0]
    assert first.title == "Super Bowl 50"
    assert first.source == f"{path}#Super_Bowl_50/0"
    assert first.metadata["article"] == "Super_Bowl_50"
    assert first.metadata["paragraph_index"] == 0
    assert "56be4db0acb8001400a502ec" in first.metadata["question_ids"]
    assert sum(len(doc.metadata["question_ids"]) for doc in docs) == 10570


def test_is_squad() -> None:
    assert is_squad({"version": "1.1", "data": [{"title": "T", "paragraphs": []}]})
    assert not is_squad({"data": [{"text": "a record"}]})
    assert not is_squad([{"paragraphs": []}])


def test_latin1_text_decodes(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("Un café crème à la française, s'il vous plaît.\n".encode("latin-1"))
    assert "café crème à la française" in load_file(path)[0].text


def test_utf16_with_bom_decodes(tmp_path: Path) -> None:
    path = tmp_path / "wide.txt"
    path.write_bytes("Grüße aus Köln\n".encode("utf-16"))
    assert load_file(path)[0].text == "Grüße aus Köln\n"


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.md"
    path.write_bytes("\ufeff# Title\n\ntext\n".encode())
    [doc] = load_file(path)
    assert doc.text.startswith("# Title") and doc.title == "Title"


@pytest.mark.parametrize("name", ["empty.txt", "blank.md", "empty.pdf", "empty.json", "blank.docx", "empty.html"])
@pytest.mark.parametrize("content", [b"", b"  \n\t\r\n"])
def test_empty_files(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError, match="^empty file$"):
        load_file(path)


def test_binary_junk_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "junk.txt"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(LoadError, match="not a text file"):
        load_file(path)


def test_corrupt_docx(tmp_path: Path) -> None:
    path = tmp_path / "broken.docx"
    path.write_bytes(b"PK\x03\x04 not really a zip archive")
    with pytest.raises(LoadError, match="not a readable .docx file"):
        load_file(path)


MIB = 1024 * 1024
BOMB = "word/media/bomb.bin"


def ordinary_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("An ordinary paragraph.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_with_bomb(path: Path, zero_mib: int, method: int = zipfile.ZIP_DEFLATED) -> Path:
    """An ordinary .docx plus a member of `zero_mib` MiB of zeros that the root relationships point at (so python-docx
    reads it), written a MiB at a time: the test never holds it whole."""
    bin_type = b'<Default Extension="bin" ContentType="application/octet-stream"/>'
    relation = b'<Relationship Id="rIdBomb" Type="urn:bomb" Target="word/media/bomb.bin"/>'
    with zipfile.ZipFile(io.BytesIO(ordinary_docx())) as source, zipfile.ZipFile(path, "w", method) as target:
        for member in source.infolist():
            data = source.read(member)
            if member.filename == "[Content_Types].xml":
                data = data.replace(b"<Default ", bin_type + b"<Default ", 1)
            elif member.filename == "_rels/.rels":
                data = data.replace(b"</Relationships>", relation + b"</Relationships>")
            target.writestr(member, data)
        with target.open(BOMB, "w") as stream:
            for _ in range(zero_mib):
                stream.write(bytes(MIB))
    return path


def declare_size_of_last_member(path: Path, size: int) -> None:
    """Make the last member's headers declare `size` bytes, with the CRC of that many zeros, so that zipfile's own
    checks pass when it stops reading there."""
    data = bytearray(path.read_bytes())
    local = zipfile.ZipFile(path).infolist()[-1].header_offset
    central = data.rfind(b"PK\x01\x02")
    crc = zlib.crc32(bytes(size))
    for crc_at, size_at in ((local + 14, local + 22), (central + 16, central + 24)):
        struct.pack_into("<I", data, crc_at, crc)
        struct.pack_into("<I", data, size_at, size)
    path.write_bytes(bytes(data))


def peak_bytes(work: Callable[[], object]) -> int:
    """The most memory Python held at once while `work` ran."""
    tracemalloc.start()
    try:
        work()
    except LoadError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


class TestDocxZipBombs:
    def test_an_ordinary_docx_still_loads(self, tmp_path: Path) -> None:
        path = tmp_path / "ordinary.docx"
        path.write_bytes(ordinary_docx())
        [doc] = load_file(path)
        assert doc.text == "An ordinary paragraph."

    def test_a_member_declaring_too_much_is_refused_before_inflating(self, tmp_path: Path) -> None:
        path = docx_with_bomb(tmp_path / "bomb.docx", zero_mib=300)
        assert path.stat().st_size < MIB
        with pytest.raises(
            LoadError, match=r"member 'word/media/bomb\.bin' declares 300\.0 MiB .* limit of 256\.0 MiB"
        ):
            load_file(path)
        assert peak_bytes(lambda: load_file(path)) < 100 * MIB

    def test_a_member_compressed_too_well_is_refused(self, tmp_path: Path) -> None:
        path = docx_with_bomb(tmp_path / "ratio.docx", zero_mib=64)
        with pytest.raises(
            LoadError, match=r"'word/media/bomb\.bin' declares 64\.0 MiB .*ratio \d+:1\), over .* 200:1"
        ):
            load_file(path)

    def test_a_header_that_understates_the_size_is_caught_while_inflating(self, tmp_path: Path) -> None:
        path = docx_with_bomb(tmp_path / "liar.docx", zero_mib=300)
        declare_size_of_last_member(path, 1000)
        with pytest.raises(LoadError, match=r"'word/media/bomb\.bin' inflates to more than the 1000 bytes it declares"):
            load_file(path)
        assert peak_bytes(lambda: load_file(path)) < 100 * MIB

    def test_methods_office_never_uses_are_refused(self, tmp_path: Path) -> None:
        path = docx_with_bomb(tmp_path / "bzip2.docx", zero_mib=1, method=zipfile.ZIP_BZIP2)
        with pytest.raises(LoadError, match=r"uses compression method 12; only stored and deflate"):
            load_file(path)

    def test_too_many_members_are_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "many.docx"
        with zipfile.ZipFile(path, "w") as archive:
            for i in range(MAX_MEMBERS + 1):
                archive.writestr(f"m{i}", b"")
        with pytest.raises(LoadError, match=rf"it has {MAX_MEMBERS + 1} members, over the limit of {MAX_MEMBERS}"):
            load_file(path)


def test_jsonl_records_and_malformed_line(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text('{"id": "a", "text": "first", "lang": "en", "tags": ["x"]}\n\n{"text": "second"}\n')
    docs = load_file(path)
    assert [doc.source for doc in docs] == [f"{path}#a", f"{path}#1"]
    assert docs[0].metadata == {"lang": "en"}  # lists are not scalar metadata
    path.write_text('{"text": "ok"}\n\n{"text": broken}\n')
    with pytest.raises(LoadError, match="line 3"):
        load_file(path)


def test_json_shapes_and_options(tmp_path: Path) -> None:
    path = tmp_path / "docs.json"
    records = [{"uid": 7, "body": "hello", "name": "Greeting", "lang": "en", "year": 2024}]
    path.write_text(json.dumps({"documents": records}))
    options = LoaderOptions(text_field="body", title_field="name", id_field="uid", metadata_fields=("year",))
    [doc] = load_file(path, options)
    assert (doc.source, doc.text, doc.title, dict(doc.metadata)) == (f"{path}#7", "hello", "Greeting", {"year": 2024})
    path.write_text(json.dumps({"text": "a single object"}))
    assert load_file(path)[0].text == "a single object"


def test_json_record_without_text_names_index(tmp_path: Path) -> None:
    path = tmp_path / "docs.json"
    path.write_text(json.dumps([{"text": "fine"}, {"body": "no text field"}]))
    with pytest.raises(LoadError, match="record 1: missing field 'text'"):
        load_file(path)


def test_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"text": ')
    with pytest.raises(LoadError, match="invalid JSON at line 1"):
        load_file(path)


# ---- invalid Unicode and records without text -------------------------------------------------


def test_source_doc_repairs_invalid_unicode_before_hashing() -> None:
    from ingest.types import SourceDoc, content_hash

    doc = SourceDoc(
        source="notes\udcff.txt",
        text="bad \ud800 pair \ud83d\ude00 nul\x00 end",
        title="T\x00itle \udfff",
        metadata={"k\ud800": "v\x00", "nested": ["\ud801", ("ok", 1.5)], "n": 3},
    )
    assert doc.source == "notes\ufffd.txt"
    assert doc.text == "bad \ufffd pair \U0001f600 nul end"  # a split pair is joined, a lone half replaced
    assert doc.title == "Title \ufffd"
    assert doc.metadata == {"k\ufffd": "v", "nested": ["\ufffd", ["ok", 1.5]], "n": 3}
    assert doc.content_hash == content_hash("bad \ufffd pair \U0001f600 nul end")
    doc.text.encode("utf-8")  # what the tokenizer and SQL need


def test_jsonl_lone_surrogate_is_replaced_at_load(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    # json accepts the escape of a lone UTF-16 surrogate; it cannot be encoded as UTF-8.
    path.write_text('{"id": "s", "text": "good \\ud800 text", "title": "t\\udc00", "tag": "x\\u0000y"}\n')
    [doc] = load_file(path)
    assert (doc.text, doc.title, dict(doc.metadata)) == ("good \ufffd text", "t\ufffd", {"tag": "xy"})


def test_json_records_without_text_reach_the_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text('{"text": "first"}\n{"text": "  "}\n{"text": ""}\n')
    assert [doc.text for doc in load_file(path)] == ["first", "  ", ""]  # the pipeline reports the blank ones
    path.write_text('{"text": " "}\n{"text": ""}\n')
    with pytest.raises(LoadError, match="no text found in file"):
        load_file(path)
