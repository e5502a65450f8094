"""Hostile and broken files: each one loads and chunks within seconds, or is refused with a LoadError that says
what is wrong with it. Every hostile input is made here; a forked child runs the work so a stall fails the test
at its deadline instead of hanging the run."""

from __future__ import annotations

import json
import multiprocessing
import random
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ingest.budget import MAX_HTML_BYTES, MAX_HTML_DEPTH, MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_TEXT_BYTES, MIB
from ingest.chunking import TokenChunker
from ingest.errors import LoadError
from ingest.loaders import LoaderOptions, load_file
from ingest.loaders._io import read_bytes
from ingest.loaders.html import html_to_text
from ingest.loaders.html_guard import parse_html
from ingest.loaders.json_loader import json_depth
from ingest.types import ChunkSpan

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO.parent / "shared" / "data" / "docs"
# Seconds a hostile file may take to load and chunk. The fixed code needs one or two at most, so this leaves room
# for a slow machine; before the fix these inputs took minutes to hours.
DEADLINE_S = 20.0
# Seconds any one mutated file may take in the fuzz test.
FUZZ_CASE_S = 3.0

T = TypeVar("T")
needs_docs = pytest.mark.skipif(not DOCS.is_dir(), reason=f"shared documents missing: {DOCS}")


def within(seconds: float, task: Callable[[], T]) -> T:
    """task() in a forked child: its result, or its exception raised here; the test fails if it runs longer."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def run() -> None:
        try:
            sender.send((True, task()))
        except Exception as exc:  # noqa: BLE001 - carried to the parent, which raises it
            sender.send((False, exc))

    child = context.Process(target=run, daemon=True)
    child.start()
    if not receiver.poll(seconds):
        child.kill()
        child.join()
        pytest.fail(f"still running after {seconds:.0f} s")
    finished, value = receiver.recv()
    child.join()
    if not finished:
        raise value
    return value


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from index.embedder import DEFAULT_EMBEDDER, resolve_model_path

    return AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_EMBEDDER))


def loaded_text(path: Path) -> str:
    """The text of every document in `path`, joined; LoadError when it cannot be loaded."""
    return "\n".join(doc.text for doc in load_file(path))


def assert_sound(text: str, spans: list[ChunkSpan], chunker: TokenChunker, tokenizer: Any) -> None:
    """Offsets name the chunk's text, chunks advance, nothing but whitespace falls between them, each fits the
    token budget and the character limit."""
    assert spans
    assert not text[: spans[0].start].strip() and not text[spans[-1].end :].strip()
    for span in spans:
        assert text[span.start : span.end] == span.text == span.text.strip()
        assert len(span.text) <= chunker.max_chunk_chars
    for before, after in zip(spans, spans[1:], strict=False):
        assert before.start < after.start and before.end < after.end
        assert not text[before.end : after.start].strip()
    assert max(len(tokenizer.tokenize(span.text)) for span in spans) <= chunker.chunk_tokens


# --- JSON -------------------------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_deeply_nested_json_is_a_load_error(tmp_path: Path, depth: int, suffix: str) -> None:
    nested = "[" * depth + "]" * depth
    path = tmp_path / f"deep{suffix}"
    path.write_text(nested if suffix == ".json" else '{"text": "fine"}\n' + nested)
    where = "" if suffix == ".json" else " on line 2"
    with pytest.raises(LoadError, match=rf"^JSON nested deeper than {MAX_JSON_DEPTH} levels{where}$"):
        within(DEADLINE_S, lambda: load_file(path))


@pytest.mark.unit
def test_json_nested_to_the_limit_loads(tmp_path: Path) -> None:
    inner = MAX_JSON_DEPTH - 1  # the record itself is the first level
    path = tmp_path / "deep.json"
    path.write_text('{"text": "fine", "meta": ' + "[" * inner + "]" * inner + "}")
    [doc] = load_file(path, LoaderOptions(metadata_fields=("meta",)))  # the nested value is kept, and cleaned
    assert doc.text == "fine" and json_depth(doc.metadata["meta"], MAX_JSON_DEPTH) == inner


@pytest.mark.unit
def test_json_number_too_long_to_read_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "number.json"
    path.write_text('{"text": "t", "n": ' + "9" * 5000 + "}")
    with pytest.raises(LoadError, match=r"^unreadable JSON value: .*digits"):
        load_file(path)


@pytest.mark.unit
def test_squad_questions_that_are_not_a_list_are_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": "Some text.", "qas": 5}]}]}))
    with pytest.raises(LoadError, match=r"SQuAD article 'T': a paragraph's 'qas' is of type int, not a list"):
        load_file(path)


# --- size limits ------------------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("suffix", "limit"),
    [(".txt", MAX_TEXT_BYTES), (".md", MAX_TEXT_BYTES), (".html", MAX_HTML_BYTES), (".jsonl", MAX_JSON_BYTES)],
)
def test_files_over_their_format_limit_are_refused_unread(tmp_path: Path, suffix: str, limit: int) -> None:
    path = tmp_path / f"huge{suffix}"
    with path.open("wb") as stream:
        stream.truncate(2 * limit)  # sparse: no disk space, and nothing is read if the size is checked first
    tracemalloc.start()
    try:
        with pytest.raises(LoadError, match=rf"^file too large: {2 * limit // MIB} MiB, and \{suffix} files are"):
            load_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MIB


@pytest.mark.unit
@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_file_reporting_no_size_is_read_only_to_the_limit() -> None:
    with pytest.raises(LoadError, match="file too large"):
        within(DEADLINE_S, lambda: read_bytes(Path("/dev/zero"), max_bytes=4 * MIB))


# --- HTML -------------------------------------------------------------------------------------------------------


def _unclosed_tags(size: int) -> bytes:
    rnd = random.Random(0)
    tags = ["<b>", "<i>", "<div>", "<span>", "<p>", "<font>", "<a href=x>", "<li>", "<td>"]
    parts, total = [], 0
    while total < size:
        parts.append(rnd.choice(tags) + "word ")
        total += len(parts[-1])
    return "".join(parts).encode()


def _no_spaces(size: int, seed: int = 0) -> str:
    rnd = random.Random(seed)
    return "".join(rnd.choices("abcdefghij.,;:-", k=size))


TOO_DEEP = f"^refusing HTML nested deeper than {MAX_HTML_DEPTH} elements"
HOSTILE_HTML = {
    # name: (markup, the start of the text it loads as, or a LoadError whose message matches)
    "280 kB of unclosed tags": (_unclosed_tags(280_000), LoadError(TOO_DEEP)),
    "280 kB of unclosed divs": (b"<div>x " * 40_000, LoadError(TOO_DEEP)),
    "1.1 MB of nested divs": (b"<div>" * 100_000 + b"text" + b"</div>" * 100_000, LoadError(TOO_DEEP)),
    "open divs, stray end tags": (b"<div>" * 100_000 + b"</p>" * 100_000, LoadError(TOO_DEEP)),
    "1 MB unterminated comment": (b"<p>hello</p><!-- " + _no_spaces(1_000_000).encode(), "hello"),
    "unclosed attribute quotes": (b"<a href='" * 40_000, LoadError("^no visible text in HTML$")),
    "800 kB of sibling paragraphs": (b"<p>a</p>" * 100_000, "a\n\na\n\na"),
}


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(HOSTILE_HTML))
def test_hostile_html_loads_or_is_refused_within_seconds(tmp_path: Path, name: str) -> None:
    markup, expected = HOSTILE_HTML[name]
    path = tmp_path / "page.html"
    path.write_bytes(markup)
    if isinstance(expected, LoadError):
        with pytest.raises(LoadError, match=str(expected)):
            within(DEADLINE_S, lambda: loaded_text(path))
    else:
        assert within(DEADLINE_S, lambda: loaded_text(path)).startswith(expected)


@pytest.mark.unit
def test_html_depth_limit() -> None:
    # lxml wraps the page in <html><body>, two levels of the limit.
    fits = MAX_HTML_DEPTH - 2
    assert html_to_text(b"<div>" * fits + b"deep text")[0] == "deep text"
    with pytest.raises(LoadError, match=TOO_DEEP):
        html_to_text(b"<div>" * (fits + 1) + b"too deep")


@pytest.mark.unit
def test_html_element_limit() -> None:
    assert parse_html(b"<br>" * 1000, max_elements=1002).find_all("br")  # <html> and <body> count too
    with pytest.raises(LoadError, match=r"^refusing HTML with more than 1,000 elements$"):
        parse_html(b"<br>" * 1000, max_elements=1000)


@pytest.mark.unit
def test_a_damaged_meta_charset_falls_back_to_detection() -> None:
    # lxml refused the encoding name "utf-\x16" with a ValueError that escaped BeautifulSoup.
    page = "<html><head><meta charset='utf-\x16'><title>T</title></head><body><p>café</p></body></html>"
    assert html_to_text(page.encode()) == ("café", "T")


@pytest.mark.unit
@pytest.mark.parametrize("data", [b"\xef\xbb\xbf", b"\xff\xfe\x00\x00"])
def test_a_page_of_nothing_but_a_byte_order_mark_is_a_load_error(data: bytes) -> None:
    with pytest.raises(LoadError, match=r"^not readable as HTML in any encoding tried: XMLSyntaxError: no element"):
        html_to_text(data)


@pytest.mark.unit
def test_html_text_keeps_its_layout() -> None:
    page = b"""<!DOCTYPE html><html><head><title> The  Title </title><style>p {}</style></head>
    <body><nav><a href="/">Home</a></nav><h1>Heading</h1>
    <p>First <b>bold</b>   paragraph.<!-- hidden --></p><div>Block<br>next line<br><br>new paragraph</div>
    <table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></table>
    <ul><li>one</li><li>two</li></ul><script>var x = "<p>not text</p>";</script><pre>kept &amp; decoded</pre>
    </body></html>"""
    text, title = html_to_text(page)
    assert title == "The Title"
    assert text == (
        "Heading\n\nFirst bold paragraph.\n\nBlock\nnext line\n\nnew paragraph\n\nA B\n\n1 2\n\none\n\ntwo"
        "\n\nkept & decoded"
    )


# --- text -------------------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_markdown_heading_with_a_long_run_of_spaces_is_read_quickly(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_text("# a" + " " * 200_000 + "b\n\nbody\n")
    [doc] = within(DEADLINE_S, lambda: load_file(path))
    assert doc.title.startswith("a ") and doc.title.endswith(" b")


# --- chunking ---------------------------------------------------------------------------------------------------


def _unique_words(size: int) -> str:
    rnd = random.Random(1)
    words = ("".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=rnd.randint(3, 9))) for _ in range(size))
    return " ".join(words)[:size]


def _mixed_scripts(size: int) -> str:
    rnd = random.Random(2)
    return "".join(
        chr(rnd.randint(0x4E00, 0x9FFF) if rnd.random() < 0.5 else rnd.randint(0x100, 0x2FFF)) for _ in range(size)
    )


ONE_LINE_TEXTS: dict[str, Callable[[], str]] = {
    "one 1 MB word": lambda: "x" * 1_000_000,
    "1 MB of letters and punctuation": lambda: _no_spaces(1_000_000),
    "1 MB of distinct words": lambda: _unique_words(1_000_000),
    "1 MB of CJK and other scripts": lambda: _mixed_scripts(1_000_000),
}


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(ONE_LINE_TEXTS))
def test_text_without_line_breaks_chunks_within_seconds(tokenizer: Any, name: str) -> None:
    text = ONE_LINE_TEXTS[name]()
    chunker = TokenChunker(tokenizer)
    spans = within(DEADLINE_S, lambda: chunker.split(text))
    assert_sound(text, spans, chunker, tokenizer)
    if " " not in text:  # one run of characters: consecutive chunks overlap
        assert all(after.start < before.end for before, after in zip(spans, spans[1:], strict=False))


@pytest.mark.integration
def test_a_word_the_tokenizer_hardly_counts_is_cut_by_characters(tokenizer: Any) -> None:
    # A 1 MB word is one "unknown" token: without the character limit it was a single 1 MB chunk.
    text = "hello\n\n<!-- " + "x" * 1_000_000 + "\n\nbye"
    chunker = TokenChunker(tokenizer)
    spans = within(DEADLINE_S, lambda: chunker.split(text))
    assert_sound(text, spans, chunker, tokenizer)
    assert spans[0].text.startswith("hello") and spans[-1].text.endswith("bye")


@pytest.mark.integration
def test_offsets_follow_repeated_text(tokenizer: Any) -> None:
    # Searching for each chunk's text found an earlier copy of it, leaving the end of the document uncovered.
    text = "\n\n".join(["The same paragraph, said again and again. " * 12] * 10)
    chunker = TokenChunker(tokenizer, chunk_tokens=64, overlap_tokens=8)
    assert_sound(text, chunker.split(text), chunker, tokenizer)


@pytest.mark.integration
def test_text_over_the_chunker_limit_is_refused(tokenizer: Any) -> None:
    chunker = TokenChunker(tokenizer, max_text_chars=1000)
    assert chunker.split("a " * 500)
    with pytest.raises(ValueError, match=r"text of 1,002 characters is over the chunker's limit of 1,000"):
        chunker.split("a " * 501)


@pytest.mark.integration
@needs_docs
def test_ordinary_documents_chunk_as_langchain_does(tokenizer: Any) -> None:
    """The chunks of real documents are LangChain's RecursiveCharacterTextSplitter's, piece for piece."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    texts = [
        doc.text
        for path in sorted(DOCS.rglob("*"))
        if path.suffix in {".md", ".txt", ".html"}
        for doc in load_file(path)
    ]
    texts.append("中文的段落没有空格。" * 80 + "\n\n" + "https://example.com/" + "a1b2c3" * 60)
    for tokens, overlap in [(254, 32), (64, 8)]:
        chunker = TokenChunker(tokenizer, tokens, overlap)
        reference = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
            tokenizer,
            chunk_size=tokens,
            chunk_overlap=overlap,
            separators=["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""],
            keep_separator="end",
        )
        for text in texts:
            assert [span.text for span in chunker.split(text)] == [p for p in reference.split_text(text) if p.strip()]


# --- mutation fuzz ----------------------------------------------------------------------------------------------

SEEDS: dict[str, bytes] = {
    ".md": (
        "# Notes on retrieval\n\nSome *emphasis*, a [link](https://example.com) and `code`.\n\n"
        "```python\n# not a heading\nprint('hi')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two: café\n"
    ).encode(),
    ".txt": "Plain text with a few lines.\nSecond line; third sentence. Ünïcödé too.\n\nA new paragraph.\n".encode(),
    ".html": b"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Page</title><style>p{}</style></head><body>"
    b"<nav>menu</nav><h1>Head</h1><p>Text &amp; more<br>line</p><table><tr><td>a</td><td>b</td></tr></table>"
    b"<!-- note --><script>var s = '<b>';</script><div><ul><li>x</li></ul></div></body></html>",
    ".json": json.dumps(
        [{"id": 1, "title": "One", "text": "first record", "tags": ["a"]}, {"id": 2, "text": "two"}]
    ).encode(),
    ".jsonl": b'{"id": "a", "text": "line one", "n": 1.5}\n{"id": "b", "text": "line two", "ok": true}\n',
}
SEEDS[".json "] = json.dumps(  # SQuAD: the key's trailing space keeps it apart; the file is still .json
    {"data": [{"title": "T", "paragraphs": [{"context": "Some context.", "qas": [{"id": "q", "question": "?"}]}]}]}
).encode()
# Pieces inserted, often many times over, to reach parser limits that single byte flips never do.
AMPLIFIED = [b"[", b'{"a":', b"<div>", b"<a href='", b"<!--", b"9", b"# ", b" ", b"\t", b"\\ud800", b"\xff", b"\x00"]
MUTATIONS_PER_SEED = 100


def mutate(data: bytes, rnd: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        at = rnd.randrange(len(out) + 1)
        kind = rnd.randrange(6)
        if kind == 0 and out:
            out[min(at, len(out) - 1)] = rnd.randrange(256)
        elif kind == 1:
            out[at:at] = rnd.randbytes(rnd.randint(1, 16))
        elif kind == 2:
            del out[at : at + rnd.randint(1, 64)]
        elif kind == 3:
            out[at:at] = out[at : at + rnd.randint(1, 64)] * rnd.randint(2, 20)
        elif kind == 4:
            del out[at:]
        else:
            out[at:at] = rnd.choice(AMPLIFIED) * rnd.choice([1, 10, 3000, 6000])
    return bytes(out)


def fuzz(folder: Path, tokenizer: Any) -> list[tuple[str, float, str]]:
    """(file, seconds, outcome) for every mutated file; the outcome is "ok", "LoadError" or the raw exception."""
    chunker = TokenChunker(tokenizer)
    rnd = random.Random(20240531)
    results = []
    for key, seed in SEEDS.items():
        for number in range(MUTATIONS_PER_SEED):
            path = folder / f"{number}{key.strip()}"
            path.write_bytes(mutate(seed, rnd))
            started = time.perf_counter()
            try:
                for doc in load_file(path):
                    chunker.split(doc.text)
                outcome = "ok"
            except LoadError:
                outcome = "LoadError"
            except Exception as exc:  # noqa: BLE001 - what the test looks for
                outcome = f"{type(exc).__name__}: {exc}"[:200]
            results.append((path.name, time.perf_counter() - started, outcome))
    return results


@pytest.mark.integration
def test_mutated_files_load_or_fail_with_a_load_error(tmp_path: Path, tokenizer: Any) -> None:
    results = within(6 * DEADLINE_S, lambda: fuzz(tmp_path, tokenizer))
    assert len(results) == len(SEEDS) * MUTATIONS_PER_SEED
    raw = [(name, outcome) for name, _, outcome in results if outcome not in ("ok", "LoadError")]
    assert not raw
    slow = [(name, round(seconds, 1)) for name, seconds, _ in results if seconds > FUZZ_CASE_S]
    assert not slow
    assert {outcome for _, _, outcome in results} == {"ok", "LoadError"}  # the mutations reach both outcomes


# ---- bytes that are not text -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".html", ".txt", ".md"])
def test_random_bytes_are_refused_whatever_their_name(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(random.Random(5).randbytes(50_000))
    with pytest.raises(LoadError, match="not a text file"):
        load_file(path)
