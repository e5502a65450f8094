"""File selection: order, hidden files, include/exclude globs, missing paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.walk import iter_files

pytestmark = pytest.mark.unit

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


def test_walk_is_sorted_skips_hidden_and_unknown_suffixes(tree: Path) -> None:
    files = list(iter_files([tree]))
    assert rels(files, tree) == ["a.md", "b.txt", "build/out.txt", "sub/a.html", "sub/deeper/x.json", "sub/z.pdf"]
    assert files == list(iter_files([tree]))


def test_include_matches_relative_path_or_name(tree: Path) -> None:
    assert rels(list(iter_files([tree], include=["sub/*"])), tree) == ["sub/a.html", "sub/deeper/x.json", "sub/z.pdf"]
    assert rels(list(iter_files([tree], include=["*.txt"])), tree) == ["b.txt", "build/out.txt"]
    # An explicit include may select files no loader reads; the loader reports them later.
    assert rels(list(iter_files([tree], include=["LICENSE", "*.rst"])), tree) == ["LICENSE", "notes.rst"]


def test_exclude_drops_files_and_folders(tree: Path) -> None:
    assert rels(list(iter_files([tree], exclude=["build", "*.pdf", "sub/deeper/*"])), tree) == [
        "a.md",
        "b.txt",
        "sub/a.html",
    ]
    assert rels(list(iter_files([tree], include=["*.txt"], exclude=["build/*"])), tree) == ["b.txt"]


def test_files_given_directly_are_yielded_as_they_are_and_once(tree: Path) -> None:
    license_file, hidden = tree / "LICENSE", tree / ".hidden.txt"
    files = list(iter_files([license_file, hidden, tree, tree / "a.md"], exclude=["LICENSE"]))
    assert files[:2] == [license_file, hidden]
    assert files.count(tree / "a.md") == 1


def test_missing_path_raises_before_yielding(tree: Path) -> None:
    missing = tree / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        next(iter_files([tree, missing]))


@pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data folder missing: {DATA}")
def test_walk_of_shared_docs() -> None:
    files = list(iter_files([DATA / "docs" / "txtai_docs"]))
    assert len(files) == 78  # 77 Markdown files and 1 HTML file; LICENSE is skipped
    assert {file.suffix for file in files} == {".md", ".html"}
