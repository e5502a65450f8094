"""`rag train reader` end to end on a few dozen real SQuAD 2.0 training questions: a tiny reader for plumbing
(training, resume, manifest, malformed data); its accuracy is not the point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from reader.manifest import read_manifest

pytestmark = pytest.mark.integration

TINY = ["--max-seq-len", "128", "--stride", "32", "--batch-size", "8", "--save-steps", "2"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """Three articles, two paragraphs each, of the official SQuAD 2.0 training set (two with unanswerable questions)."""
    data = json.loads((data_dir / "squad" / "train-v2.0-first10.json").read_text())
    articles = []
    for article in data["data"][3:6]:  # IPod (answerable only), Twilight Princess and Spectre
        paragraphs = article["paragraphs"][:2]
        articles.append({"title": article["title"], "paragraphs": paragraphs})
    path = tmp_path_factory.mktemp("tiny") / "tiny.json"
    path.write_text(json.dumps({"version": "v2.0", "data": articles}))
    return path


def train(*args: str) -> str:
    result = CliRunner().invoke(app, ["train", "reader", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_training_writes_a_plain_model_folder_with_its_manifest(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "reader"
    output = train("--data", str(tiny_data), "--out", str(out), "--epochs", "1", "--validation-fraction", "0.3", *TINY)
    assert "validation" in output
    assert {"model.safetensors", "config.json", "tokenizer.json", "reader.json"} <= {p.name for p in out.iterdir()}
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))  # weights are safetensors
    manifest = read_manifest(out)
    assert manifest["training_files"][0]["sha256"] and manifest["hyperparameters"]["max_seq_len"] == 128
    assert manifest["steps"] > 0 and manifest["wall_seconds"] > 0
    validation = manifest["validation"]
    assert validation["questions"] > 0 and 0 < validation["unanswerable"] < validation["questions"]
    calibration = manifest["calibration"]
    assert calibration["temperature"] > 0 and 0.0 <= calibration["threshold"] <= 1.0
    assert 0.0 <= validation["no_answer_auc"] <= 1.0


def test_training_resumes_from_its_last_checkpoint(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "reader"
    train("--data", str(tiny_data), "--out", str(out), "--epochs", "1", *TINY)
    first = read_manifest(out)["steps"]
    assert any(p.name.startswith("checkpoint-") for p in (out / "checkpoints").iterdir())
    train("--data", str(tiny_data), "--out", str(out), "--epochs", "2", "--resume", *TINY)
    assert read_manifest(out)["steps"] == 2 * first


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": "q1", "question": "Why?", "answers": [{"text": "blue", "answer_start": 0}]}, "is not at answer_start"),
        ({"id": "q1", "answers": [{"text": "sky", "answer_start": 4}]}, "missing 'question'"),
        ({"id": "q1", "question": "Why?", "answers": []}, "no answers, and 'is_impossible' is not true"),
    ],
)
def test_malformed_training_file_is_a_clear_error(tmp_path: Path, record: dict, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"title": "Sky", "paragraphs": [{"context": "The sky.", "qas": [record]}]}]}))
    result = CliRunner().invoke(app, ["train", "reader", "--data", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert message in result.output and "bad.json" in result.output
    assert "'Sky'" in result.output and "'q1'" in result.output  # the article and the question id
    assert "Traceback" not in result.output


def test_resume_without_checkpoints_is_a_clear_error(tiny_data: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "reader", "--data", str(tiny_data), "--out", str(tmp_path), "--resume"])
    assert result.exit_code == 2 and "no checkpoints" in result.output
