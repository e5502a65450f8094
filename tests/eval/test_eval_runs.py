"""eval.runs on a real store: a run whose process was killed is marked "interrupted" when runs are listed or it
is resumed, and a resume under any other setting is refused with every differing setting named."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from eval import runs
from eval.errors import RunError
from index import Store
from index.owners import run_owner

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DATASET_HASH = "0" * 64
CONFIG: dict[str, Any] = {
    "mode": "closed",
    "k": 5,
    "fusion": "zscore",
    "dense_weight": 0.5,
    "reader": {"reader": "extractive", "model": "models/reader"},
    "dataset_path": "data/dev.json",
    "versions": {"numpy": "2.0"},
}

START_AND_WAIT = textwrap.dedent(
    """
    import json, sys, time
    from eval import runs
    from index import Store

    store = Store.open(sys.argv[1])
    runs.start_run(store.engine, sys.argv[2], "dev.json", "0" * 64, json.loads(sys.argv[3]))
    runs.save_rows(store.engine, sys.argv[2], [{"id": "q1", "exact": 1.0, "f1": 1.0}])
    print("started", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "store")
    yield opened
    opened.close()


def start_and_kill(store: Store, run_id: str) -> None:
    """Start a run in another process, which is then killed with SIGKILL (and reaped)."""
    args = [sys.executable, "-c", START_AND_WAIT, str(store.root), run_id, json.dumps(CONFIG)]
    with subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout.readline().strip() == "started"
        finally:
            child.kill()
            child.wait()


def status(store: Store, run_id: str) -> str:
    return runs.get_run(store.engine, run_id).status


def test_listing_marks_the_run_of_a_killed_process_interrupted(store: Store) -> None:
    from rag.cli import app

    start_and_kill(store, "killed-1")
    runs.start_run(store.engine, "live-1", "dev.json", DATASET_HASH, CONFIG)
    assert status(store, "killed-1") == "running"  # nothing ran on the way down

    listed = CliRunner().invoke(app, ["eval", "list", "--store", str(store.root)])

    assert listed.exit_code == 0, listed.output
    states = {line.split("\t")[0]: line.split("\t")[2] for line in listed.output.splitlines()[1:]}
    assert states == {"killed-1": "interrupted", "live-1": "running"}
    assert status(store, "killed-1") == "interrupted"
    as_json = CliRunner().invoke(app, ["eval", "list", "--store", str(store.root), "--json"])
    assert {run["id"]: run["status"] for run in json.loads(as_json.output)} == states


def test_resuming_marks_the_run_of_a_killed_process_interrupted(store: Store) -> None:
    start_and_kill(store, "killed-2")

    with pytest.raises(RunError):
        runs.start_run(store.engine, "killed-2", "dev.json", DATASET_HASH, {**CONFIG, "k": 8})
    assert status(store, "killed-2") == "interrupted"

    assert runs.start_run(store.engine, "killed-2", "dev.json", DATASET_HASH, CONFIG) == {"q1"}
    assert status(store, "killed-2") == "running"


def test_resume_under_other_settings_names_each_one(store: Store) -> None:
    runs.start_run(store.engine, "run-1", "dev.json", DATASET_HASH, CONFIG)
    runs.set_status(store.engine, "run-1", "finished")
    changed = {
        **CONFIG,
        "fusion": "rrf",
        "dense_weight": 0.7,
        "reader": {"reader": "extractive", "model": "other/reader"},
        "reranker": "cross-encoder",
    }

    with pytest.raises(RunError) as refused:
        runs.start_run(store.engine, "run-1", "dev.json", DATASET_HASH, changed)

    message = str(refused.value)
    assert "\n" not in message
    for shown in (
        "fusion: 'zscore' -> 'rrf'",
        "dense_weight: 0.5 -> 0.7",
        "reader.model: 'models/reader' -> 'other/reader'",
        "reranker: None -> 'cross-encoder'",
    ):
        assert shown in message
    assert runs.get_run(store.engine, "run-1").config["fusion"] == "zscore"  # the stored config is kept
    assert status(store, "run-1") == "finished"


def test_resume_ignores_paths_versions_and_the_owner(store: Store) -> None:
    runs.start_run(store.engine, "run-2", "dev.json", DATASET_HASH, CONFIG)
    moved = {**CONFIG, "dataset_path": "elsewhere/dev.json", "versions": {"numpy": "2.1"}, "owner": {"pid": 1}}
    assert runs.start_run(store.engine, "run-2", "dev.json", DATASET_HASH, moved) == set()
    assert runs.get_run(store.engine, "run-2").config["owner"] == run_owner()
