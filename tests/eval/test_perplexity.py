"""Perplexity of the packaged default generator on two SQuAD paragraphs (about 300 tokens): pinned to the model's
own ``labels`` loss, the sliding window, real text against the same tokens shuffled, and `rag eval perplexity`
as a stored run that `rag eval list` and `rag eval compare` show."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.errors import EvalError
from eval.perplexity import measure, run_perplexity, score_tokens, text_ids
from rag.config import RagSettings
from rag.generators.hf import TransformersGenerator
from rag.models import DEFAULT_GENERATOR, resolve_generator

pytestmark = pytest.mark.integration

SQUAD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "squad" / "dev-v1.1.json"


@pytest.fixture(scope="module")
def text() -> str:
    if not SQUAD.is_file():
        pytest.skip(f"SQuAD dev set missing: {SQUAD}")
    [article] = [a for a in json.loads(SQUAD.read_text(encoding="utf-8"))["data"] if a["title"] == "Normans"]
    return "\n\n".join(p["context"] for p in article["paragraphs"][:2])


@pytest.fixture(scope="module")
def generator() -> TransformersGenerator:
    model = TransformersGenerator(resolve_generator(DEFAULT_GENERATOR), DEFAULT_GENERATOR, device="cpu")
    model.load()
    return model


@pytest.fixture(scope="module")
def whole(generator: TransformersGenerator, text: str):  # noqa: ANN201 - eval.perplexity.Perplexity
    return measure(generator, text, window=1024, stride=512)


def test_one_window_equals_the_models_own_loss(generator: TransformersGenerator, text: str, whole) -> None:  # noqa: ANN001
    import torch

    ids = text_ids(generator, text)
    assert ids[0] == generator.tokenizer.bos_token_id and 200 < len(ids) < 1024
    with torch.inference_mode():
        batch = torch.tensor([ids])
        loss = float(generator.model(input_ids=batch, labels=batch).loss)
    assert whole.windows == 1 and whole.tokens == len(ids) - 1  # every token of the text, the first one too
    assert whole.perplexity == pytest.approx(math.exp(loss), rel=1e-4)
    assert whole.text_bytes == len(text.encode("utf-8"))
    assert whole.bits_per_byte == pytest.approx(whole.nll / math.log(2) / whole.text_bytes)


def test_sliding_window_scores_each_token_once(generator: TransformersGenerator, text: str, whole) -> None:  # noqa: ANN001
    windowed = measure(generator, text, window=128, stride=64)
    n = len(text_ids(generator, text))
    assert windowed.tokens == whole.tokens
    assert windowed.windows == math.ceil((n - 128) / 64) + 1
    # Less context makes the text a little less predictable; without the start token opening each window,
    # Gemma's perplexity more than doubles (43.8 against 18.9 here).
    assert 0.9 * whole.perplexity < windowed.perplexity < 1.25 * whole.perplexity


def test_real_text_is_far_more_likely_than_its_tokens_shuffled(
    generator: TransformersGenerator,
    text: str,
    whole,  # noqa: ANN001
) -> None:
    ids = text_ids(generator, text)
    shuffled = ids[1:]
    random.Random(0).shuffle(shuffled)
    scrambled = score_tokens(generator.model, [ids[0], *shuffled], window=1024, stride=512)
    assert scrambled.tokens == whole.tokens
    assert 1.0 < whole.perplexity < 50.0
    assert scrambled.perplexity > 20 * whole.perplexity


def test_bad_windows_are_refused(generator: TransformersGenerator) -> None:
    ids = [2, 10, 11, 12]
    for window, stride, message in ((1, 1, "window must be"), (8, 8, "stride must be"), (8, 0, "stride must be")):
        with pytest.raises(EvalError, match=message):
            score_tokens(generator.model, ids, window, stride)
    with pytest.raises(EvalError, match="longer than the model's context"):
        score_tokens(generator.model, ids, 10**6, 8)


def rag(*args: str | Path):  # noqa: ANN201 - click.testing.Result
    from rag.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_run_is_stored_listed_and_compared(
    generator: TransformersGenerator, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAG_GENERATOR", raising=False)
    data, store = tmp_path / "tiny.txt", tmp_path / "store"
    data.write_text(text[:300], encoding="utf-8")

    result = rag(
        "eval", "perplexity", "--data", data, "--store", store, "--window", 48, "--stride", 24, "--run-id", "p1"
    )

    assert result.exit_code == 0, result.output
    assert "perplexity" in result.output and "bits_per_byte" in result.output
    summary = json.loads((store / "eval-runs" / "p1" / "metrics.json").read_text(encoding="utf-8"))
    assert summary["config"]["mode"] == "perplexity" and summary["config"]["window"] == 48
    assert summary["metrics"]["tokens"] > 48 and summary["metrics"]["perplexity"] > 1
    assert "perplexity" in (store / "eval-runs" / "p1" / "report.html").read_text(encoding="utf-8")

    settings = RagSettings(store=store)
    run_perplexity(data, settings, window=96, stride=48, run_id="p2", generator=generator)
    listed = rag("eval", "list", "--store", store)
    assert listed.exit_code == 0, listed.output
    header, *lines = listed.output.splitlines()
    assert header.endswith("\tPPL")
    cells = {line.split("\t")[0]: line.split("\t") for line in lines}
    assert cells["p1"][4] == "perplexity" and cells["p1"][2] == "finished"
    assert float(cells["p1"][-1]) == pytest.approx(summary["metrics"]["perplexity"], abs=0.05)
    compared = rag("eval", "compare", "p1", "p2", "--store", store)
    assert compared.exit_code == 0, compared.output
    assert any(line.startswith("perplexity ") for line in compared.output.splitlines())


def test_cli_refuses_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    data = tmp_path / "latin1.txt"
    data.write_bytes("caf\xe9 au lait".encode("latin-1"))
    result = rag("eval", "perplexity", "--data", data, "--store", tmp_path / "store")
    assert result.exit_code == 2
    assert "not UTF-8 text" in result.output
