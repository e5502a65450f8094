"""Generators that fail, stall or lose their consumer, on the real packaged Gemma-3-270M: failures reach the
caller as GenerationError, waits are bounded, abandoned generations stop, and llama.cpp retries a decode failure
once, and only while nothing of the answer has been sent."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator

import pytest

from rag.errors import GenerationError
from rag.generators import create_generator
from rag.generators.hf import TransformersGenerator
from rag.generators.llamacpp import LlamaCppGenerator
from rag.types import GenerationRequest

pytestmark = pytest.mark.integration

MODEL = "gemma-3-270m"
# A tiny positive temperature turns every logit into +-inf: sampling then fails inside transformers.
HOSTILE_TEMPERATURE = 1e-300
# A prompt the model continues for as long as it is allowed to.
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8,"
# Generating this many tokens takes about a minute on two CPU cores; a cancelled generation stops within one.
LONG = 400
PROMPT_WAIT_S = 20.0


def drain(stream: Iterator[str], within_s: float = 60.0) -> list[str]:
    """Read a whole stream on another thread, so that a stream that never ends fails the test instead of hanging it."""
    outcome: queue.Queue[list[str] | Exception] = queue.Queue()

    def read() -> None:
        try:
            outcome.put(list(stream))
        except Exception as exc:  # noqa: BLE001 - raised again on the test's thread
            outcome.put(exc)

    threading.Thread(target=read, daemon=True).start()
    try:
        result = outcome.get(timeout=within_s)
    except queue.Empty:
        pytest.fail(f"the stream did not end within {within_s:g} s")
    if isinstance(result, Exception):
        raise result
    return result


def answers_promptly(generator: TransformersGenerator) -> float:
    """Seconds a one-token generation takes: long when an abandoned generation still holds the model."""
    started = time.perf_counter()
    generator.generate([GenerationRequest(COUNTING, max_new_tokens=1, stop=())])
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def hf() -> TransformersGenerator:
    generator = create_generator(MODEL, "transformers")
    assert isinstance(generator, TransformersGenerator)
    generator.load()
    return generator


@pytest.fixture(scope="module")
def llama() -> LlamaCppGenerator:
    generator = create_generator(MODEL, "llamacpp")
    assert isinstance(generator, LlamaCppGenerator)
    generator.load()
    return generator


class TestTransformersStream:
    def test_a_failure_inside_generate_ends_the_stream_as_a_generation_error(self, hf: TransformersGenerator) -> None:
        hostile = GenerationRequest(COUNTING, max_new_tokens=8, stop=(), temperature=HOSTILE_TEMPERATURE)
        with pytest.raises(GenerationError, match="probability tensor") as caught:
            drain(hf.stream(hostile))
        assert isinstance(caught.value.__cause__, RuntimeError)  # the worker thread's own exception
        assert drain(hf.stream(GenerationRequest(COUNTING, max_new_tokens=4, stop=())))  # the model still answers

    def test_a_failure_inside_generate_is_a_generation_error_without_streaming(self, hf: TransformersGenerator) -> None:
        hostile = GenerationRequest(COUNTING, max_new_tokens=4, stop=(), temperature=HOSTILE_TEMPERATURE)
        with pytest.raises(GenerationError, match="probability tensor"):
            hf.generate([hostile])

    def test_closing_a_stream_early_stops_its_generation(self, hf: TransformersGenerator) -> None:
        stream = hf.stream(GenerationRequest(COUNTING, max_new_tokens=LONG, stop=()))
        assert next(stream) and next(stream)
        stream.close()
        assert answers_promptly(hf) < PROMPT_WAIT_S

    def test_a_stream_that_waits_too_long_gives_up_and_its_generation_never_runs(
        self, hf: TransformersGenerator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        busy = hf.stream(GenerationRequest(COUNTING, max_new_tokens=LONG, stop=()))
        assert next(busy)  # this generation now holds the model
        monkeypatch.setattr(hf, "stream_wait_s", 0.5)
        started = time.perf_counter()
        with pytest.raises(GenerationError, match="no text for 0.5 s"):
            drain(hf.stream(GenerationRequest(COUNTING, max_new_tokens=LONG, stop=())), within_s=30)
        assert time.perf_counter() - started < 10
        busy.close()
        assert answers_promptly(hf) < PROMPT_WAIT_S  # neither the busy generation nor the late one runs on


class TestLlamaCppRetry:
    def test_a_real_decode_failure_retries_once_then_is_a_generation_error(
        self, llama: LlamaCppGenerator, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Token ids given as the prompt, one far outside the vocabulary: llama_decode refuses the batch.
        hostile = GenerationRequest([llama.llama.token_bos(), 10**7], max_new_tokens=4, stop=())  # type: ignore[arg-type]
        for call in (lambda: drain(llama.stream(hostile)), lambda: llama.generate([hostile])):
            caplog.clear()
            with (
                caplog.at_level(logging.WARNING, logger="rag.generators.llamacpp"),
                pytest.raises(GenerationError, match="failed again after clearing its KV cache"),
            ):
                call()
            assert sum("retrying" in r.getMessage() for r in caplog.records) == 1
        assert drain(llama.stream(GenerationRequest(COUNTING, max_new_tokens=4, stop=())))

    def test_a_stream_that_fails_before_its_first_piece_is_retried_on_a_cleared_cache(
        self, llama: LlamaCppGenerator
    ) -> None:
        llama.generate([GenerationRequest(COUNTING, max_new_tokens=2, stop=())])
        assert llama.llama.n_tokens > 0  # the prompt is cached
        calls = []

        def fails_once() -> Iterator[str]:
            calls.append(llama.llama.n_tokens)
            if len(calls) == 1:
                raise RuntimeError("llama_decode returned 1")
            yield from ["nine", ", ten"]

        assert list(llama._stream_with_retry(fails_once)) == ["nine", ", ten"]
        assert len(calls) == 2 and calls[1] == 0  # retried once, from an empty cache

    def test_a_stream_that_fails_after_a_piece_is_not_restarted(self, llama: LlamaCppGenerator) -> None:
        calls = []

        def fails_midway() -> Iterator[str]:
            calls.append(1)
            yield "nine"
            raise RuntimeError("llama_decode returned 1")

        received = []
        with pytest.raises(GenerationError, match="in the middle of a streamed answer"):
            for piece in llama._stream_with_retry(fails_midway):
                received.append(piece)
        assert received == ["nine"] and len(calls) == 1  # nothing sent twice
        assert llama.llama.n_tokens == 0  # the half-decoded cache is not left to the next request

    def test_other_failures_are_not_retried(self, llama: LlamaCppGenerator) -> None:
        calls = []

        def broken() -> Iterator[str]:
            calls.append(1)
            raise RuntimeError("failed to sample")
            yield ""  # never reached: it makes this a generator function, as llama.cpp's streams are

        with pytest.raises(GenerationError, match="llama.cpp failed: failed to sample"):
            list(llama._stream_with_retry(broken))
        assert len(calls) == 1
