"""transformers backend: the reference path, GPU-ready; loads hub names, local folders and GGUF files.

A GGUF file is de-quantised by transformers on first load (slow), so the converted weights are cached
once under the user's cache folder and later loads take about a second.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rag.errors import GenerationError
from rag.generators.chat import plain_chat
from rag.models import ModelLocation
from rag.spans import SpanConstraint, SpanLogitsProcessor, hf_tokenize_fn
from rag.types import Generation, GenerationRequest, SpanLocation

log = logging.getLogger(__name__)


def _repeat_args(request: GenerationRequest) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if request.repetition_penalty != 1.0:
        args["repetition_penalty"] = request.repetition_penalty
    if request.no_repeat_ngram_size:
        args["no_repeat_ngram_size"] = request.no_repeat_ngram_size
    return args


def cache_root() -> Path:
    base = os.environ.get("RAG_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / ("" if os.environ.get("RAG_CACHE_DIR") else "ragkit")


def converted_dir(gguf_path: str) -> Path:
    stat = Path(gguf_path).stat()
    key = hashlib.sha256(f"{Path(gguf_path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_root() / "converted" / f"{Path(gguf_path).stem}-{key}"


def _convert_gguf(gguf_path: str, target: Path) -> None:
    """De-quantise a GGUF file once and save it as a plain transformers folder, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, filename = str(Path(gguf_path).parent), Path(gguf_path).name
    log.info("converting %s for transformers (once; cached in %s)", gguf_path, target)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename)
    # The weights are de-quantised already; drop the GGUF quantizer marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _LogprobRecorder:
    """A logits processor that keeps each chosen token's log-probability and only one step of scores:
    keeping every step's logits would hold batch x steps x vocabulary floats (400 MB for Gemma at batch 16)."""

    def __init__(self) -> None:
        self.steps: list[Any] = []
        self._last: Any = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self._last is not None:  # the token chosen at the previous step is the last input id now
            self.steps.append(self._last.gather(1, input_ids[:, -1:]).squeeze(1))
        self._last = scores.float().log_softmax(-1)
        return scores

    def finish(self, last_tokens: Any) -> Any:
        import torch

        if self._last is not None:
            self.steps.append(self._last.gather(1, last_tokens[:, None]).squeeze(1))
        return torch.stack(self.steps, dim=1)


class _StopWhenSet:
    """A transformers stopping criterion: generate() ends at its next token once `event` is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def _failed(exc: Exception) -> GenerationError:
    return GenerationError(f"transformers generation failed: {type(exc).__name__}: {exc}")


class TransformersGenerator:
    """`stream_wait_s` bounds how long a stream waits for its next piece of text, the wait for a model busy
    with another request included; past it the stream raises GenerationError and its generation is cancelled."""

    def __init__(
        self, location: ModelLocation, name: str, device: str | None = None, stream_wait_s: float = 120.0
    ) -> None:
        if stream_wait_s <= 0:
            raise ValueError(f"stream_wait_s must be positive, got {stream_wait_s}")
        self.location = location
        self.name = name
        self.device = device
        self.stream_wait_s = stream_wait_s
        self.model: Any = None
        self.tokenizer: Any = None
        self._lock = threading.Lock()
        self._stop_cache: dict[tuple[str, ...], list[int]] = {}

    def load(self) -> None:
        if self.model is not None:  # loaded: do not wait on the lock, which a running generation holds
            return
        with self._lock:
            if self.model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            path = self.location.path
            if self.location.gguf:
                target = converted_dir(path)
                if not (target / "config.json").exists():
                    _convert_gguf(path, target)
                path = str(target)
            local_only = self.location.local or self.location.gguf
            self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            dtype = torch.float16 if self.device == "cuda" else torch.float32
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
            tokenizer.padding_side = "left"  # decoder-only batches pad on the left
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=local_only, dtype=dtype)
            self.tokenizer = tokenizer
            self.model = model.to(self.device).eval()  # last: a set model means a loaded generator

    def format_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        self.load()
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return plain_chat(messages)

    def _stop_ids(self, stops: Sequence[str]) -> list[int]:
        """EOS plus every token whose text contains a stop string: ending on those is cheaper than
        transformers' stop_strings, which scans the whole vocabulary for each new set of strings."""
        key = tuple(stops)
        if key not in self._stop_cache:
            eos = self.tokenizer.eos_token_id
            ids = {eos} if isinstance(eos, int) else set(eos or [])
            if key:
                vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
                decoded = [self.tokenizer.convert_tokens_to_string([t]) if t else "" for t in vocab]
                ids |= {i for i, text in enumerate(decoded) if any(stop in text for stop in key)}
            self._stop_cache[key] = sorted(ids)
        return self._stop_cache[key]

    def count_tokens(self, text: str) -> int:
        self.load()
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.load()
        results: list[Generation | None] = [None] * len(requests)
        # One generate() call per group of requests that share decoding settings.
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, r in enumerate(requests):
            key = (r.max_new_tokens, tuple(r.stop), r.spans is None, r.temperature, *_repeat_args(r).items())
            groups.setdefault(key, []).append(i)
        for indices in groups.values():
            for i, generation in zip(indices, self._generate_batch([requests[i] for i in indices]), strict=True):
                results[i] = generation
        return [r for r in results if r is not None]

    def _generate_batch(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        import torch
        from transformers import LogitsProcessorList

        first = requests[0]
        inputs = self.tokenizer([r.prompt for r in requests], return_tensors="pt", padding=True).to(self.device)
        prompt_len = inputs.input_ids.shape[1]
        kwargs: dict[str, Any] = {
            "max_new_tokens": first.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            **_repeat_args(first),
        }
        if first.temperature > 0:
            kwargs.update(do_sample=True, temperature=first.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        stop_ids = self._stop_ids(first.stop)
        kwargs["eos_token_id"] = stop_ids
        constraints: list[SpanConstraint] = []
        if first.spans is not None:
            tokenize = hf_tokenize_fn(self.tokenizer)
            constraints = [
                SpanConstraint(
                    tokenize,
                    r.spans or [],
                    eos_token_ids=[self.tokenizer.eos_token_id],
                    stop_token_ids=stop_ids,
                    known_words=r.known_words,
                )
                for r in requests
            ]
            kwargs["logits_processor"] = LogitsProcessorList([SpanLogitsProcessor(constraints, prompt_len)])
        recorder = _LogprobRecorder()
        # First in the list: it sees the model's raw scores, before the span constraint masks them.
        kwargs["logits_processor"] = LogitsProcessorList([recorder, *kwargs.get("logits_processor", [])])
        with self._lock, torch.inference_mode():
            try:
                output = self.model.generate(**inputs, **kwargs, return_dict_in_generate=True)
            except Exception as exc:  # noqa: BLE001 - any failure inside transformers or torch is the generator's
                raise _failed(exc) from exc
        generated = output.sequences[:, prompt_len:]
        token_logprobs = recorder.finish(generated[:, -1])
        stop_set = set(stop_ids)
        generations = []
        for row in range(generated.shape[0]):
            tokens = [int(t) for t in generated[row]]
            length = next((j for j, t in enumerate(tokens) if t in stop_set), len(tokens))
            ids = tokens[:length]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            for stop in first.stop:
                text = text.split(stop)[0] if stop else text
            mean_logprob = None
            if ids:
                mean_logprob = float(token_logprobs[row, :length].mean())
            match = constraints[row].locate(ids) if constraints else None
            span = SpanLocation(match.passage_index, match.start, match.end) if match else None
            generations.append(
                Generation(text=match.text if match else text, tokens=length, span=span, mean_logprob=mean_logprob)
            )
        return generations

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        self.load()
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=self.stream_wait_s
        )
        inputs = self.tokenizer(request.prompt, return_tensors="pt").to(self.device)
        cancel = threading.Event()
        kwargs: dict[str, Any] = {
            "max_new_tokens": request.max_new_tokens,
            "do_sample": request.temperature > 0,
            "pad_token_id": self.tokenizer.pad_token_id,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_StopWhenSet(cancel)]),
            **_repeat_args(request),
        }
        if request.temperature > 0:
            kwargs["temperature"] = request.temperature
        kwargs["eos_token_id"] = self._stop_ids(request.stop)
        failure: list[Exception] = []
        worker = threading.Thread(target=self._stream_worker, args=(inputs, kwargs, cancel, failure), daemon=True)
        worker.start()
        text, sent = "", 0
        try:
            for piece in streamer:
                text += piece
                cuts = [text.find(stop) for stop in request.stop if stop and stop in text]
                end = min(cuts) if cuts else len(text)
                if end > sent:
                    yield text[sent:end]
                    sent = end
                if cuts:
                    break
        except queue.Empty as exc:
            raise GenerationError(f"the model produced no text for {self.stream_wait_s:g} s") from exc
        finally:
            # However the consumer stops (done, a stop string, closed early, timed out), the model stops too:
            # an abandoned generation would keep the model busy until max_new_tokens.
            cancel.set()
        worker.join()  # a token's time at most: the generation has ended or was just told to
        if failure:
            raise _failed(failure[0]) from failure[0]

    def _stream_worker(
        self, inputs: Any, kwargs: dict[str, Any], cancel: threading.Event, failure: list[Exception]
    ) -> None:
        """generate() for `stream`, on its own thread; a failure goes to the consumer, which raises it."""
        import torch

        try:
            with self._lock, torch.inference_mode():
                if cancel.is_set():  # the consumer gave up while this waited for the model
                    return
                self.model.generate(**inputs, **kwargs)
        except Exception as exc:  # noqa: BLE001 - raised again on the consumer's thread
            failure.append(exc)
            # transformers ends the stream only after a successful generate(): end it here, or the consumer waits.
            kwargs["streamer"].on_finalized_text("", stream_end=True)
