"""llama.cpp backend (llama-cpp-python): about 5x faster than transformers on a CPU for GGUF models."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from rag.errors import GenerationError
from rag.generators.chat import plain_chat
from rag.spans import SpanConstraint, llama_logits_processor, llama_tokenize_fn
from rag.types import Generation, GenerationRequest, SpanLocation

log = logging.getLogger(__name__)


_LOAD_LOCK = threading.Lock()


def load_llama(model_path: str, n_ctx: int = 4096, n_threads: int | None = None) -> Any:
    """A llama_cpp.Llama loaded without llama.cpp's "extra buffer types".

    Some virtual machines advertise Intel AMX but fault on its tile instructions (SIGSEGV inside
    ggml_backend_amx_mul_mat); llama.cpp only uses AMX through those extra buffers. Llama() takes no
    argument for them, so the default model parameters are patched while the model loads.
    """
    try:
        import llama_cpp
    except ImportError as exc:
        raise GenerationError("the llama.cpp backend needs: pip install 'ragkit[llamacpp]'") from exc
    bindings = llama_cpp.llama_cpp
    defaults = bindings.llama_model_default_params

    def without_extra_buffers() -> Any:
        params = defaults()
        params.use_extra_bufts = False
        return params

    with _LOAD_LOCK:
        bindings.llama_model_default_params = without_extra_buffers
        try:
            return llama_cpp.Llama(model_path=model_path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        finally:
            bindings.llama_model_default_params = defaults


class LlamaCppGenerator:
    def __init__(self, model_path: str, name: str, n_ctx: int = 4096, n_threads: int | None = None) -> None:
        self.model_path = model_path
        self.name = name
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, os.cpu_count() or 1)
        self._llama: Any = None
        # One llama context serves one request at a time.
        self._lock = threading.Lock()
        self._stop_cache: dict[tuple[str, ...], list[int]] = {}

    def load(self) -> None:
        with self._lock:
            if self._llama is None:
                self._llama = load_llama(self.model_path, n_ctx=self.n_ctx, n_threads=self.n_threads)

    @property
    def llama(self) -> Any:
        self.load()
        return self._llama

    def format_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        template = self.llama.metadata.get("tokenizer.chat_template")
        if not template:
            return plain_chat(messages)
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        formatter = Jinja2ChatFormatter(
            template,
            eos_token=self.llama.detokenize([self.llama.token_eos()]).decode("utf-8", "ignore"),
            bos_token=self.llama.detokenize([self.llama.token_bos()]).decode("utf-8", "ignore"),
        )
        return formatter(messages=list(messages)).prompt

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        return [self._generate_one(request) for request in requests]

    def _constraint(self, request: GenerationRequest) -> SpanConstraint | None:
        if request.spans is None:
            return None
        return SpanConstraint(
            llama_tokenize_fn(self._llama),
            request.spans,
            eos_token_ids=[self._llama.token_eos()],
            stop_token_ids=self._stop_ids(tuple(request.stop)),
            known_words=request.known_words,
        )

    def _stop_ids(self, stops: tuple[str, ...]) -> list[int]:
        """Tokens whose text contains a stop string: the constraint lets the answer end on them."""
        if stops not in self._stop_cache:
            pieces = (self._llama.detokenize([i]) for i in range(self._llama.n_vocab()))
            encoded = [stop.encode("utf-8") for stop in stops if stop]
            self._stop_cache[stops] = [i for i, piece in enumerate(pieces) if any(s in piece for s in encoded)]
        return self._stop_cache[stops]

    def _completion_args(self, request: GenerationRequest, constraint: SpanConstraint | None) -> dict[str, Any]:
        args: dict[str, Any] = {
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "stop": list(request.stop),
            "repeat_penalty": request.repetition_penalty,
        }
        if constraint is not None:
            from llama_cpp import LogitsProcessorList

            prompt_len = len(self._llama.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=True))
            args["logits_processor"] = LogitsProcessorList([llama_logits_processor(constraint, prompt_len)])
        return args

    def _generate_one(self, request: GenerationRequest) -> Generation:
        self.load()
        with self._lock:
            constraint = self._constraint(request)
            args = self._completion_args(request, constraint)
            out = self._with_retry(lambda: self._llama.create_completion(request.prompt, **args))
        text = out["choices"][0]["text"]
        match = constraint.locate_text(text) if constraint else None
        span = SpanLocation(match.passage_index, match.start, match.end) if match else None
        return Generation(text=match.text if match else text, tokens=int(out["usage"]["completion_tokens"]), span=span)

    def _with_retry(self, call: Callable[[], Any]) -> Any:
        # llama-cpp-python 0.3.x can fail with "llama_decode returned 1" once its KV cache fills after many
        # calls that share a prompt prefix: clear the cache and try once more.
        try:
            return call()
        except RuntimeError as exc:
            self._clear_for_retry(exc)
        try:
            return call()
        except RuntimeError as exc:
            self.clear_cache()
            raise GenerationError(f"llama.cpp failed again after clearing its KV cache: {exc}") from exc

    def _stream_with_retry(self, start: Callable[[], Iterator[str]]) -> Iterator[str]:
        """`_with_retry` for a stream, whose decode failures come while it is read, not when it is made.

        A failure before the first piece retries once; after it, the client already holds part of an answer
        that a restart would repeat, so the stream ends with a GenerationError instead.
        """
        sent = False
        for attempt in range(2):
            try:
                for piece in start():
                    sent = True
                    yield piece
                return
            except RuntimeError as exc:
                if sent or attempt:
                    self.clear_cache()  # the next request must not inherit a half-decoded cache
                    where = "in the middle of a streamed answer" if sent else "again after clearing its KV cache"
                    raise GenerationError(f"llama.cpp failed {where}: {exc}") from exc
                self._clear_for_retry(exc)

    def _clear_for_retry(self, exc: RuntimeError) -> None:
        """Clear the KV cache after a decode failure, for one more try; any other failure is final."""
        if "llama_decode" not in str(exc) and "memory slot" not in str(exc):
            raise GenerationError(f"llama.cpp failed: {exc}") from exc
        log.warning("llama.cpp decode failed (%s); clearing the KV cache and retrying", exc)
        self.clear_cache()

    def clear_cache(self) -> None:
        self._llama.reset()
        ctx = getattr(self._llama, "_ctx", None)
        if ctx is not None and hasattr(ctx, "kv_cache_clear"):
            ctx.kv_cache_clear()

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        self.load()
        with self._lock:
            args = self._completion_args(request, self._constraint(request))

            def pieces() -> Iterator[str]:
                for chunk in self._llama.create_completion(request.prompt, stream=True, **args):
                    piece = chunk["choices"][0]["text"]
                    if piece:
                        yield piece

            yield from self._stream_with_retry(pieces)
