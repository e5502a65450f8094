"""`rag eval perplexity`: a generator's token-level perplexity on a UTF-8 text, stored as an evaluation run.

Measured with the transformers backend whatever ``RAG_BACKEND`` says: it gives exact float log-probabilities
of any token sequence (a GGUF file is de-quantised once, as for generation), and its own ``labels`` loss pins
the number in the tests. llama.cpp would need a second model instance with ``logits_all=True`` and scores
with its own quantised kernels, so its perplexity would be another measurement of another computation.

Texts longer than the window are scored with a sliding window as in the transformers perplexity guide: windows
of ``window`` tokens start every ``stride`` tokens, and each token is scored once, in the first window that
reaches it, with at least ``window - stride - 1`` tokens of context. The text follows the model's start token
(BOS, else EOS), so every token of the text is scored, the first one included; and, as llama.cpp's perplexity
tool does, every later window's first token is replaced by the start token. Gemma needs it: on two SQuAD
paragraphs, 128-token windows without it gave perplexity 43.8 against 18.9 for one window over the whole
text, and 19.7 with it.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eval import runs
from eval.datasets import file_sha256
from eval.errors import EvalError
from eval.report import write_outputs
from eval.runner import versions
from index import Store
from rag.config import RagSettings
from rag.generators.hf import TransformersGenerator
from rag.models import resolve_generator

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 1024
DEFAULT_STRIDE = 512


@dataclass(frozen=True)
class Perplexity:
    nll: float  # summed negative log-likelihood of the scored tokens, in nats
    tokens: int  # tokens scored
    windows: int  # forward passes
    text_bytes: int = 0  # UTF-8 bytes of the scored text; 0 when scoring bare token ids

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll / self.tokens)

    @property
    def bits_per_byte(self) -> float | None:
        """Bits per UTF-8 byte: comparable across tokenizers, unlike perplexity."""
        return self.nll / math.log(2) / self.text_bytes if self.text_bytes else None


def _check_window(window: int, stride: int, limit: int | None) -> None:
    if window < 2:
        raise EvalError(f"window must be at least 2 tokens, got {window}")
    if not 1 <= stride < window:
        # A window's first place holds the start token, so with stride == window one token per window went unscored.
        raise EvalError(f"stride must be between 1 and window - 1 ({window - 1}), got {stride}")
    if limit is not None and window > limit:
        raise EvalError(f"window {window} is longer than the model's context ({limit} tokens)")


def score_tokens(model: Any, ids: Sequence[int], window: int, stride: int) -> Perplexity:  # noqa: ANN401
    """Negative log-likelihood of ``ids[1:]`` given what precedes each, with a sliding window; ``ids[0]`` is the
    start token, which also opens every window. ``model`` is a transformers causal LM."""
    import torch
    import torch.nn.functional as F

    limit = getattr(model.config, "max_position_embeddings", None)
    _check_window(window, stride, limit)
    if len(ids) < 2:
        raise EvalError("nothing to score: the text has no token")
    device = next(model.parameters()).device
    all_ids = torch.tensor([list(ids)], dtype=torch.long, device=device)
    nll, scored, windows, previous_end = 0.0, 0, 0, 1
    with torch.inference_mode():
        for begin in range(0, len(ids), stride):
            end = min(begin + window, len(ids))
            count = end - previous_end  # tokens no earlier window scored; stride < window keeps begin < previous_end
            inputs = all_ids[:, begin:end].clone()
            inputs[0, 0] = all_ids[0, 0]  # each window starts as a text does, with the start token
            # Only the logits that predict new tokens are made: the vocabulary is 262k wide for Gemma.
            logits = model(input_ids=inputs, logits_to_keep=count + 1).logits[0, :-1]
            nll += float(F.cross_entropy(logits.float(), all_ids[0, end - count : end], reduction="sum"))
            scored, windows, previous_end = scored + count, windows + 1, end
            if end == len(ids):
                break
    return Perplexity(nll, scored, windows)


def start_token(tokenizer: Any) -> int:  # noqa: ANN401 - a transformers tokenizer
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token is None:
        raise EvalError("the generator's tokenizer has neither a BOS nor an EOS token to start the text with")
    return int(token)


def text_ids(generator: TransformersGenerator, text: str) -> list[int]:
    """The start token, then the text's tokens (no other special token)."""
    generator.load()
    return [start_token(generator.tokenizer), *generator.tokenizer(text, add_special_tokens=False).input_ids]


def measure(
    generator: TransformersGenerator, text: str, window: int = DEFAULT_WINDOW, stride: int = DEFAULT_STRIDE
) -> Perplexity:
    """The generator's perplexity on ``text``."""
    ids = text_ids(generator, text)
    result = score_tokens(generator.model, ids, window, stride)
    return Perplexity(result.nll, result.tokens, result.windows, len(text.encode("utf-8")))


# ---------------------------------------------------------------- the stored run


@dataclass(frozen=True)
class PerplexityRun:
    run_id: str
    out_dir: Path
    metrics: dict[str, Any]


def read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise EvalError(f"{path}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise EvalError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if not text.strip():
        raise EvalError(f"{path}: the file holds no text")
    return text


def run_perplexity(
    data: Path,
    settings: RagSettings,
    window: int = DEFAULT_WINDOW,
    stride: int = DEFAULT_STRIDE,
    run_id: str | None = None,
    out: Path | None = None,
    echo: Callable[[str], None] | None = None,
    generator: TransformersGenerator | None = None,
) -> PerplexityRun:
    """Measure ``settings.generator`` (or a loaded ``generator`` of that name) on the text file ``data`` and
    store it as a finished run (no question rows) in ``settings.store``'s SQL, with metrics.json, report.md
    and report.html in its output folder."""
    _check_window(window, stride, None)
    text = read_text(data)
    if generator is None:
        generator = TransformersGenerator(resolve_generator(settings.generator), settings.generator)
    elif generator.name != settings.generator:
        raise EvalError(f"generator {generator.name!r} given for a run of {settings.generator!r}")
    generator.load()
    config = {
        "mode": "perplexity",
        "format": "text",
        "dataset_path": str(data),
        "generator": settings.generator,
        "backend": "transformers",
        "dtype": str(generator.model.dtype).removeprefix("torch."),
        "window": window,
        "stride": stride,
        "start_token": start_token(generator.tokenizer),
        "versions": versions(),
    }
    run_id = run_id or f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{data.stem}-perplexity-{secrets.token_hex(2)}"
    digest = file_sha256(data)
    with Store.open(settings.store, database_url=settings.database_url) as store:
        runs.start_run(store.engine, run_id, str(data), digest, config)
        try:
            started = time.perf_counter()
            result = measure(generator, text, window, stride)
            wall = time.perf_counter() - started
            metrics = {
                "perplexity": result.perplexity,
                "bits_per_byte": result.bits_per_byte,
                "nll_per_token": result.nll / result.tokens,
                "tokens": result.tokens,
                "bytes": result.text_bytes,
                "windows": result.windows,
                "wall_seconds": wall,
                "tokens_per_second": result.tokens / wall if wall > 0 else None,
            }
            out_dir = Path(out) if out else Path(store.root) / "eval-runs" / run_id
            header = {"run_id": run_id, "dataset": str(data), "dataset_sha256": digest, "config": config}
            write_outputs(out_dir, header, [], metrics)
            runs.set_status(store.engine, run_id, "finished", metrics)
        except KeyboardInterrupt:
            runs.set_status(store.engine, run_id, "interrupted")
            raise
        except BaseException:
            runs.set_status(store.engine, run_id, "failed")
            raise
    (echo or log.info)(f"run {run_id}: {result.tokens} tokens in {result.windows} windows; files in {out_dir}")
    return PerplexityRun(run_id, out_dir, metrics)
