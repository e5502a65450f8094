"""File selection: order, hidden files, include/exclude globs, missing paths, symbolic links, unreadable folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from index import SentenceTransformerEmbedder, Store
from ingest.errors import LoadError
from ingest.loaders import load_file
from ingest.pipeline import IngestReport, ingest_paths
from ingest.walk import PassedOver, iter_files

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for rel in [
        "b.txt",
        "a.md",
        "LICENSE",
        "notes.rst",
        ".hidden.txt",
        ".git/config.txt",
        "sub/z.pdf",
        "sub/a.html",
        "sub/deeper/x.json",
        "build/out.txt",
    ]:
        path = tmp_path / "root" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    return tmp_path / "root"


def rels(files: list[Path], root: Path) -> list[str]:
    return [file.relative_to(root).as_posix() for file in files]


@pytest.mark.unit
def test_walk_is_sorted_skips_hidden_and_unknown_suffixes(tree: Path) -> None:
    files = list(iter_files([tree]))
    assert rels(files, tree) == ["a.md", "b.txt", "build/out.txt", "sub/a.html", "sub/deeper/x.json", "sub/z.pdf"]
    assert files == list(iter_files([tree]))


@pytest.mark.unit
def test_include_matches_relative_path_or_name(tree: Path) -> None:
    assert rels(list(iter_files([tree], include=["sub/*"])), tree) == ["sub/a.html", "sub/deeper/x.json", "sub/z.pdf"]
    assert rels(list(iter_files([tree], include=["*.txt"])), tree) == ["b.txt", "build/out.txt"]
    # An explicit include may select files no loader reads; the loader reports them later.
    assert rels(list(iter_files([tree], include=["LICENSE", "*.rst"])), tree) == ["LICENSE", "notes.rst"]


@pytest.mark.unit
def test_exclude_drops_files_and_folders(tree: Path) -> None:
    assert rels(list(iter_files([tree], exclude=["build", "*.pdf", "sub/deeper/*"])), tree) == [
        "a.md",
        "b.txt",
        "sub/a.html",
    ]
    assert rels(list(iter_files([tree], include=["*.txt"], exclude=["build/*"])), tree) == ["b.txt"]


@pytest.mark.unit
def test_files_given_directly_are_yielded_as_they_are_and_once(tree: Path) -> None:
    license_file, hidden = tree / "LICENSE", tree / ".hidden.txt"
    files = list(iter_files([license_file, hidden, tree, tree / "a.md"], exclude=["LICENSE"]))
    assert files[:2] == [license_file, hidden]
    assert files.count(tree / "a.md") == 1


@pytest.mark.unit
def test_missing_path_raises_before_yielding(tree: Path) -> None:
    missing = tree / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        next(iter_files([tree, missing]))


@pytest.mark.unit
@pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data folder missing: {DATA}")
def test_walk_of_shared_docs() -> None:
    files = list(iter_files([DATA / "docs" / "txtai_docs"]))
    assert len(files) == 78  # 77 Markdown files and 1 HTML file; LICENSE is skipped
    assert {file.suffix for file in files} == {".md", ".html"}


# ---- symbolic links and unreadable folders ----------------------------------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    """A folder with a good file, a two-link loop, a link to itself, a broken link and a link to its parent."""
    root = tmp_path / "linked"
    (root / "sub").mkdir(parents=True)
    (root / "good.txt").write_text("Good text survives.")
    os.symlink("b.txt", root / "a.txt")
    os.symlink("a.txt", root / "b.txt")
    os.symlink("self.md", root / "self.md")
    os.symlink("missing.txt", root / "dangling.md")
    os.symlink("..", root / "sub" / "up")
    os.symlink(root / "good.txt", root / "sub" / "same.txt")  # the good file again, under another name
    return root


@pytest.mark.unit
def test_links_that_cannot_be_read_are_yielded_for_the_loader_to_report(linked: Path) -> None:
    files = list(iter_files([linked]))
    # The link to the parent folder is not followed; the second name of good.txt is dropped as a duplicate.
    assert rels(files, linked) == ["a.txt", "b.txt", "dangling.md", "good.txt", "self.md"]
    reasons = {}
    for file in files:
        try:
            load_file(file)
        except LoadError as exc:
            reasons[file.name] = str(exc)
    assert reasons == {
        "a.txt": "cannot read file: Too many levels of symbolic links",
        "b.txt": "cannot read file: Too many levels of symbolic links",
        "self.md": "cannot read file: Too many levels of symbolic links",
        "dangling.md": "cannot read file: No such file or directory",
    }


@pytest.mark.unit
def test_links_named_directly_are_yielded_not_refused(linked: Path) -> None:
    up = linked / "sub" / "up"  # a folder link named directly is walked; the links inside it are the same files
    files = list(iter_files([linked / "a.txt", linked / "dangling.md", up]))
    assert files == [linked / "a.txt", linked / "dangling.md", up / "b.txt", up / "good.txt", up / "self.md"]


@pytest.mark.unit
def test_an_unreadable_folder_is_reported_and_the_walk_goes_on(linked: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (linked / "locked").mkdir()
    (linked / "locked" / "inside.txt").write_text("never listed")
    scandir = os.scandir

    def refuse_locked(path: str | os.PathLike[str] = ".") -> object:  # chmod cannot stop root, so refuse here
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse_locked)
    skipped: list[tuple[Path, str]] = []
    files = list(iter_files([linked], on_skip=lambda path, reason: skipped.append((path, reason))))
    assert skipped == [(linked / "locked", "cannot read folder: Permission denied")]
    assert linked / "good.txt" in files


@pytest.mark.unit
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_skipped_not_read(linked: Path) -> None:
    """Reading a named pipe waits for a writer that never comes: the run would hang."""
    os.mkfifo(linked / "pipe.txt")
    os.symlink("pipe.txt", linked / "to_pipe.md")
    skipped: list[tuple[Path, str]] = []
    files = list(iter_files([linked, linked / "pipe.txt"], on_skip=lambda path, reason: skipped.append((path, reason))))
    assert skipped == [
        (linked / "pipe.txt", "not a regular file (a named pipe)"),  # once, though named twice and linked to
    ]
    assert linked / "pipe.txt" not in files and linked / "to_pipe.md" not in files


@pytest.mark.integration
def test_a_folder_of_bad_links_ingests_with_one_skip_per_link(
    linked: Path, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:

    store = Store.open(tmp_path / "store", embedder=embedder)
    try:
        report = ingest_paths(store, [linked], progress=False)
    finally:
        store.close()
    assert (report.files, report.documents, report.skipped) == (5, 1, 4)
    assert {Path(e.path).name: e.reason.split(": ")[0] for e in report.errors} == dict.fromkeys(
        ["a.txt", "b.txt", "self.md", "dangling.md"], "cannot read file"
    )


# ---- what a walk passes over -----------------------------------------------------------------------------------


def passed_over(paths: list[Path], root: Path, **options: object) -> list[tuple[str, str, str]]:
    entries: list[PassedOver] = []
    list(iter_files(paths, on_pass_over=entries.append, **options))  # type: ignore[arg-type]
    return [(Path(e.path).relative_to(root).as_posix(), e.reason, e.kind) for e in entries]


@pytest.mark.unit
def test_every_file_a_walk_does_not_read_is_reported_with_its_reason(tree: Path) -> None:
    assert passed_over([tree], tree) == [
        (".git", "hidden folder, not walked", "hidden folder"),  # one entry: its files are not listed
        (".hidden.txt", "hidden file", "hidden"),
        ("LICENSE", "unsupported file type (no suffix)", "unsupported type: (no suffix)"),
        ("notes.rst", "unsupported file type '.rst'", "unsupported type: .rst"),
    ]


@pytest.mark.unit
def test_excluded_and_not_included_files_are_reported(tree: Path) -> None:
    assert passed_over([tree], tree, exclude=["build", "*.pdf"])[-3:] == [
        ("build", "folder excluded by 'build', not walked", "excluded folder"),
        ("notes.rst", "unsupported file type '.rst'", "unsupported type: .rst"),
        ("sub/z.pdf", "excluded by '*.pdf'", "excluded"),
    ]
    not_included = [entry for entry in passed_over([tree], tree, include=["*.md"]) if entry[2] == "not included"]
    assert [rel for rel, _, _ in not_included] == [
        "LICENSE", "b.txt", "build/out.txt", "notes.rst", "sub/a.html", "sub/deeper/x.json", "sub/z.pdf"
    ]  # fmt: skip
    assert not_included[0][1] == "matches no include pattern ('*.md')"


@pytest.mark.unit
def test_a_file_passed_over_but_also_named_is_read_not_reported(tree: Path) -> None:
    reported = passed_over([tree, tree / ".hidden.txt", tree / "LICENSE"], tree)
    assert [rel for rel, _, _ in reported] == [".git", "notes.rst"]


@pytest.mark.unit
def test_passed_over_summary_counts_by_reason() -> None:
    def entry(name: str, kind: str) -> PassedOver:
        return PassedOver(name, "why", kind)

    report = IngestReport(
        passed_over=[
            entry("a.exe", "unsupported type: .exe"),
            entry("b.bin", "unsupported type: .bin"),
            entry("c.exe", "unsupported type: .exe"),
            entry(".env", "hidden"),
            entry(".git", "hidden folder"),
        ]
    )
    assert report.passed_over_summary() == "5 (unsupported type: .exe 2, .bin 1; hidden 1; hidden folder 1)"
    assert IngestReport().passed_over_summary() == "0"
    assert report.ok and report.as_dict()["passed_over"][0] == {
        "path": "a.exe",
        "reason": "why",
        "kind": "unsupported type: .exe",
    }


@pytest.mark.integration
def test_cli_summary_counts_what_was_passed_over_and_verbose_lists_it(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    from typer.testing import CliRunner

    from rag.cli import app

    folder = tmp_path / "docs"
    (folder / ".cache").mkdir(parents=True)
    (folder / ".cache" / "blob.txt").write_text("cached")
    (folder / "notes.txt").write_text("Tides rise twice a day.")
    (folder / "setup.exe").write_bytes(b"MZ")
    (folder / "data.bin").write_bytes(b"\x00")
    (folder / "more.exe").write_bytes(b"MZ")
    store = ["--store", str(tmp_path / "store")]
    quiet = CliRunner().invoke(app, ["ingest", str(folder), *store])
    assert quiet.exit_code == 0, quiet.output
    assert "passed over 4 (unsupported type: .exe 2, .bin 1; hidden folder 1)" in quiet.stdout
    assert "passed over " + str(folder) not in quiet.output
    verbose = CliRunner().invoke(app, ["ingest", str(folder), *store, "-v"])
    assert verbose.exit_code == 0, verbose.output
    listed = [line for line in verbose.stderr.splitlines() if line.startswith("passed over")]  # not the progress bar
    assert listed == [
        f"passed over {folder / '.cache'}: hidden folder, not walked",
        f"passed over {folder / 'data.bin'}: unsupported file type '.bin'",
        f"passed over {folder / 'more.exe'}: unsupported file type '.exe'",
        f"passed over {folder / 'setup.exe'}: unsupported file type '.exe'",
    ]
    assert "unchanged 1" in verbose.stdout and "errors 0" in verbose.stdout
