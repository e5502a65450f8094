"""Readers: what turns a question and its passages into a Reading.

`ExtractiveReader` (the default) points at the answer span with a trained question-answering model and gives
a calibrated no-answer probability. `GenerativeReader` prompts a causal LM (span-constrained for short answers).
`create_reader` picks one by `settings.reader`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from index import Passage
from index.keyword import STOPWORDS, query_terms
from index.sentences import sentence_around
from index.types import Embedder
from rag.config import RagSettings
from rag.errors import ConfigurationError
from rag.focus import focus_passages
from rag.generators import count_tokens, create_generator
from rag.grounding import declines
from rag.prompt import sentence_messages, short_prompt
from rag.types import Generation, GenerationRequest, Generator, Reader, Reading

# The reader this repository trains and ships (see models/reader/README.md).
SHIPPED_READER = Path(__file__).resolve().parents[1] / "models" / "reader"


def resolve_reader_model(name: str | None) -> Path:
    """The shipped reader for None or "shipped", else a local reader folder."""
    path = SHIPPED_READER if name in (None, "", "shipped") else Path(name).expanduser()
    if not (path / "reader.json").is_file():
        raise ConfigurationError(f"{path}: not a reader folder (no reader.json); train one with `rag train reader`")
    return path


class ExtractiveReader:
    """A trained span model over all of a question's passages in one batch. Short answers are the best span;
    sentence answers are the sentence around it, quoted verbatim (nothing to hallucinate, nothing to loop)."""

    def __init__(self, model: str | Path | None = None, device: str | None = None) -> None:
        from reader.manifest import manifest_calibration, read_manifest
        from reader.model import SpanModel

        self.path = resolve_reader_model(str(model) if model else None)
        self.manifest = read_manifest(self.path)
        self.calibration = manifest_calibration(self.manifest)
        self.no_answer_threshold = self.calibration.threshold
        shape = self.manifest.get("inference", {})
        self.model = SpanModel(self.path, device=device, **shape)
        self.name = f"extractive:{self.path.name}"

    def load(self) -> None:
        self.model.load()

    def read(
        self, questions: Sequence[str], contexts: Sequence[Sequence[Passage]], style: str = "short"
    ) -> list[Reading]:
        ranked = self.model.spans(questions, [[p.text for p in context] for context in contexts])
        readings = []
        for context, spans in zip(contexts, ranked, strict=True):
            if not spans:
                readings.append(Reading("", no_answer=1.0))
                continue
            best = spans[0]
            text = context[best.item].text
            start, end = (best.start, best.end) if style == "short" else sentence_around(text, best.start, best.end)
            no_answer = self.calibration.probability(best.margin)
            extra = {"span": text[best.start : best.end], "margin": best.margin}
            readings.append(Reading(text[start:end], best.item, start, end, best.score, no_answer, extra))
        return readings

    def to_dict(self) -> dict[str, Any]:
        return {
            "reader": "extractive",
            "model": str(self.path),
            "calibration": self.calibration.to_dict(),
            **self.manifest.get("inference", {}),
        }


class GenerativeReader:
    """A causal LM answering from a prompt; short answers copy a span out of the passages' best sentences."""

    no_answer_threshold = 1.0  # the model's own token probabilities do not separate answerable questions

    def __init__(self, generator: Generator, settings: RagSettings, embedder: Embedder) -> None:
        self.generator, self.settings, self.embedder = generator, settings, embedder
        self.name = generator.name

    def load(self) -> None:
        self.generator.load()

    def focus(self, questions: Sequence[str], contexts: Sequence[Sequence[Passage]], style: str) -> list[list[Passage]]:
        if style == "short" and self.settings.focus_sentences:
            return focus_passages(questions, contexts, self.embedder, self.settings.focus_sentences)
        return [list(c) for c in contexts]

    def count_tokens(self, text: str) -> int:
        return count_tokens(self.generator, text)

    def request(self, question: str, context: Sequence[Passage], style: str) -> GenerationRequest:
        if style == "short":
            spans = [p.text for p in context] if self.settings.span_answers else None
            # A short answer that only repeats the question's words (or stopwords) answers nothing.
            known = STOPWORDS | set(query_terms(question))
            return GenerationRequest(
                short_prompt(question, context), self.settings.max_new_tokens, ("\n",), spans, known_words=known
            )
        prompt = self.generator.format_chat(sentence_messages(question, context))
        return GenerationRequest(
            prompt, max(self.settings.max_new_tokens, 96), ("\n\n",), repetition_penalty=1.15, no_repeat_ngram_size=4
        )

    def read(
        self, questions: Sequence[str], contexts: Sequence[Sequence[Passage]], style: str = "short"
    ) -> list[Reading]:
        focused = self.focus(questions, contexts, style)
        requests = [self.request(q, c, style) for q, c in zip(questions, focused, strict=True)]
        generations = self.generator.generate(requests) if requests else []
        return [reading(g, c, contexts_of) for g, c, contexts_of in zip(generations, focused, contexts, strict=True)]

    def stream(
        self,
        question: str,
        context: Sequence[Passage],
        style: str,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Iterator[str | Reading]:
        focused = self.focus([question], [context], style)[0]
        request = self.request(question, focused, style)
        overrides = {"max_new_tokens": max_new_tokens, "temperature": temperature}
        request = replace(request, **{k: v for k, v in overrides.items() if v is not None})
        prompt_tokens = self.count_tokens(request.prompt)
        if request.spans is not None:  # a span can only be checked on the whole generation
            generation = self.generator.generate([request])[0]
            yield generation.text
            yield replace(reading(generation, focused, context), extra={"prompt_tokens": prompt_tokens})
            return
        pieces = []
        for piece in self.generator.stream(request):
            pieces.append(piece)
            yield piece
        yield replace(reading(Generation("".join(pieces), 0), focused, context), extra={"prompt_tokens": prompt_tokens})

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        return {
            "reader": "generative",
            "generator": self.generator.name,
            "generator_class": type(self.generator).__name__,
            "span_answers": s.span_answers,
            "focus_sentences": s.focus_sentences,
            "max_new_tokens": s.max_new_tokens,
        }


def reading(generation: Generation, focused: Sequence[Passage], context: Sequence[Passage]) -> Reading:
    """A generation as a Reading. Span offsets are moved from the focused passage back into the passage the
    policy cites, which is the same passage narrowed to a sentence (same document offsets)."""
    text = generation.text.strip()
    if declines(text):
        return Reading("", no_answer=1.0, extra={"declined": generation.text})
    no_answer = None if generation.mean_logprob is None else 1.0 - math.exp(generation.mean_logprob)
    where = generation.span
    if where is None:
        return Reading(text, no_answer=no_answer)
    piece, whole = focused[where.index], context[where.index]
    shift = piece.start - whole.start
    return Reading(text, where.index, where.start + shift, where.end + shift, 0.0, no_answer)


READERS: dict[str, Callable[[RagSettings, Embedder, Generator | None], Reader]] = {
    "extractive": lambda settings, _embedder, _generator: ExtractiveReader(settings.reader_model),
    "generative": lambda settings, embedder, generator: GenerativeReader(
        generator or create_generator(settings.generator, settings.backend), settings, embedder
    ),
}


def create_reader(settings: RagSettings, embedder: Embedder, generator: Generator | None = None) -> Reader:
    """The reader `settings.reader` names."""
    factory = READERS.get(settings.reader)
    if factory is None:
        raise ConfigurationError(f"unknown reader {settings.reader!r}; choose one of {sorted(READERS)}")
    return factory(settings, embedder, generator)
