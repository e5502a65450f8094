"""Settings are validated wherever they come from: RAG_* variables, CLI options, `RAG.open` overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from rag.api import RAG
from rag.config import RagSettings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "override",
    [{"k": 0}, {"retrieval": "bogus"}, {"focus_sentences": -3}, {"overlap_tokens": 300}, {"no_such_setting": 1}],
)
def test_open_refuses_invalid_overrides(tmp_path: Path, override: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=next(iter(override))):
        RAG.open(tmp_path / "store", **override)


def test_overlap_must_be_smaller_than_the_chunk() -> None:
    with pytest.raises(ValidationError, match="overlap_tokens .* must be smaller than chunk_tokens"):
        RagSettings(chunk_tokens=32, overlap_tokens=32)
    assert RagSettings().with_overrides(k=7).k == 7


def test_the_cli_reports_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Some text.")
    code = "import sys; from rag.cli import main; sys.argv = ['rag', *sys.argv[1:]]; main()"
    done = subprocess.run(
        [sys.executable, "-c", code, "ingest", str(tmp_path / "a.txt"), "--store", str(tmp_path / "s")],
        env=dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO), RAG_OVERLAP_TOKENS="999"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: settings: Value error, overlap_tokens (999) must be smaller than chunk_tokens (254)"
    ]
