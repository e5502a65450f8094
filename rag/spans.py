"""Span-grounded decoding: the reader may only emit word-aligned text that occurs verbatim in its passages.

The prompt shows each passage with its whitespace collapsed (a hard-wrapped line break reads as one space), so
the constraint copies from that same view and maps what it finds back to the raw passage's character offsets.

The core (:class:`SpanConstraint`) sees only token ids and character offsets, so one implementation serves both
backends; :func:`hf_tokenize_fn` / :class:`SpanLogitsProcessor` adapt it to transformers and
:func:`llama_tokenize_fn` / :func:`llama_logits_processor` to llama-cpp-python.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import LogitsProcessor

TokenizeFn = Callable[[str], list[tuple[int, int, int]]]
"""text -> [(token_id, char_start, char_end)], no special tokens; each span covers what the token decodes to."""

_Cursor = tuple[int, int, int]  # (track index, position of the next token in the track, answer's first char)
_APOSTROPHES = "'’"
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class SpanMatch:
    """Where an answer sits: ``passages[passage_index][start:end]`` with its whitespace runs collapsed to single
    spaces is ``text`` (the raw slice keeps any line break the answer crosses)."""

    passage_index: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class _Track:
    """One token sequence through a passage: the passage's own tokenization, or a short space-prefixed
    'bridge' to a word the passage has no ' word' token for, which then runs on into the main track."""

    passage: int
    ids: tuple[int, ...]
    ends: tuple[int, ...]  # passage char offset where each token ends
    word_end: tuple[bool, ...]  # len(ids) + 1 entries: may the answer stop after ids[:pos]?
    cont: tuple[int, int] | None  # (track, pos) a bridge continues at once its tokens run out


@dataclass(frozen=True)
class _Flat:
    """A passage as the prompt shows it, ``" ".join(raw.split())``; ``raw_at[i]`` is where ``text[i]`` sits in
    the raw passage (for a collapsed run of whitespace, its first character)."""

    text: str
    raw_at: tuple[int, ...]

    @classmethod
    def of(cls, raw: str) -> _Flat:
        chars: list[str] = []
        raw_at: list[int] = []
        for i, ch in enumerate(raw):
            if ch.isspace():
                continue
            if chars and raw_at[-1] < i - 1:
                chars.append(" ")
                raw_at.append(raw_at[-1] + 1)
            chars.append(ch)
            raw_at.append(i)
        return cls("".join(chars), tuple(raw_at))

    def raw_span(self, start: int, end: int) -> tuple[int, int]:
        """Raw offsets of the non-empty flat span ``text[start:end]``, which starts and ends on non-space."""
        return self.raw_at[start], self.raw_at[end - 1] + 1


def _is_word_start(text: str, i: int) -> bool:
    if i == 0 or text[i - 1].isspace():
        return True
    # "(Paris", "1889–1890" start words; "don't" and "1889" (mid-number) do not.
    return text[i].isalnum() and not text[i - 1].isalnum() and text[i - 1] not in _APOSTROPHES


def _is_word_end(text: str, e: int) -> bool:
    if e == 0 or text[e - 1].isspace():
        return False
    return e == len(text) or not (text[e - 1].isalnum() and text[e].isalnum())


def _normalise(text: str, tokens: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Give a token the whitespace gap before it: some tokenizers trim ' Paris' to the offsets of 'Paris'."""
    out, prev = [], 0
    for tid, s, e in tokens:
        if s > prev and text[prev:s].isspace():
            s = prev
        out.append((tid, s, e))
        prev = max(prev, e)
    return out


def hf_tokenize_fn(tokenizer: Any) -> TokenizeFn:
    """Adapt a transformers *fast* tokenizer (it must support ``return_offsets_mapping``)."""

    def tokenize(text: str) -> list[tuple[int, int, int]]:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        raw = [(int(t), int(s), int(e)) for t, (s, e) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)]
        return _normalise(text, raw)

    return tokenize


def llama_tokenize_fn(llama: Any) -> TokenizeFn:
    """Adapt a ``llama_cpp.Llama``: offsets come from each token's detokenized bytes."""

    def tokenize(text: str) -> list[tuple[int, int, int]]:
        data = text.encode("utf-8")
        ids = llama.tokenize(data, add_bos=False, special=False)
        pieces = [llama.detokenize([t]) for t in ids]
        if b"".join(pieces) != data:
            raise ValueError(f"llama tokenization does not round-trip {text[:60]!r}; offsets would be wrong")
        # char_of[b]: the character holding byte b. A token ending inside a character (a byte-level split of an
        # emoji) ends after that character, so it overlaps the next token and is no clean boundary.
        char_of = np.repeat(np.arange(len(text)), [len(ch.encode("utf-8")) for ch in text]).tolist()
        char_of.append(len(text))
        out, b = [], 0
        for tid, piece in zip(ids, pieces, strict=True):
            end = b + len(piece)
            out.append((int(tid), char_of[b], char_of[end - 1] + 1 if piece else char_of[b]))
            b = end
        return out

    return tokenize


class SpanConstraint:
    """Which next tokens keep the generated answer a word-aligned substring of one of the passages.

    The state is a set of cursors, each a place in a passage the tokens so far could have come from; it is
    cached for the last prefix, so each decoding step costs O(live cursors).
    """

    def __init__(
        self,
        tokenize_fn: TokenizeFn,
        passages: Sequence[str],
        eos_token_ids: Collection[int],
        stop_token_ids: Collection[int] = (),
        known_words: Collection[str] = (),
    ) -> None:
        """`known_words` (lower case): an answer may only stop once it holds a word outside them, so with
        the question's words and stopwords there, "the", "there are" or a phrase lifted from the question
        is never a whole answer. Ignored when no passage has such a word."""
        if not eos_token_ids:
            raise ValueError("eos_token_ids must not be empty: decoding could never stop")
        self.passages = tuple(passages)
        self._flat = tuple(_Flat.of(text) for text in self.passages)
        self._tokenize = tokenize_fn
        self._eos = np.array(sorted(eos_token_ids), dtype=np.int64)
        self._stops = np.array(sorted({*eos_token_ids, *stop_token_ids}), dtype=np.int64)
        self._stop_set = frozenset(self._stops.tolist())
        known = frozenset(known_words)
        has_new = any(word not in known for flat in self._flat for word in _WORD.findall(flat.text.lower()))
        self._known = known if has_new else frozenset()
        self._tracks: list[_Track] = []
        starts: list[_Cursor] = []
        for index, flat in enumerate(self._flat):
            starts += self._add_passage(index, flat.text)
        # After the first token, the cursors it leaves, keyed by that token: the only O(passages) step.
        self._first: dict[int, list[_Cursor]] = {}
        for track, pos, start in starts:
            self._first.setdefault(self._tracks[track].ids[pos], []).append(self._norm(track, pos + 1, start))
        # No passage (or none with a word in it): the answer can only be empty, so a batch row still decodes.
        self._start_ids = np.array(sorted(self._first), dtype=np.int64) if self._first else self._eos
        self._cache: tuple[tuple[int, ...], list[_Cursor]] = ((), [])

    def _add_track(
        self, passage: int, text: str, toks: list[tuple[int, int, int]], min_end: int, cont: tuple[int, int] | None
    ) -> int:
        word_end = [False]
        for pos, (_, _, e) in enumerate(toks):
            clean = pos + 1 == len(toks) or toks[pos + 1][1] >= e  # not inside a byte-split character
            word_end.append(clean and e > min_end and _is_word_end(text, e))
        self._tracks.append(
            _Track(passage, tuple(t for t, _, _ in toks), tuple(e for _, _, e in toks), tuple(word_end), cont)
        )
        return len(self._tracks) - 1

    def _add_passage(self, index: int, text: str) -> list[_Cursor]:
        toks = self._tokenize(text)
        main = self._add_track(index, text, toks, 0, None)
        starts: list[_Cursor] = []
        clean_starts: list[int] = []  # char offsets where a token starts cleanly, ascending
        clean_pos: list[int] = []  # ... and that token's position
        for pos, (_, s, _) in enumerate(toks):
            if pos > 0 and s < toks[pos - 1][2]:
                continue
            clean_starts.append(s)
            clean_pos.append(pos)
            c = s
            while c < len(text) and text[c].isspace():
                c += 1
            # A start token may carry a leading space (" Paris", or a lone " " before "1889").
            if c < len(text) and _is_word_start(text, c):
                starts.append((main, pos, c))
        # The reader writes " word" after "Short answer:", but a word opening the passage or following "(",
        # a quote or a dash has no such token: bridge to it through tokenize(" word").
        for i in range(len(text)):
            if text[i].isspace() or (i > 0 and text[i - 1] == " ") or not _is_word_start(text, i):
                continue
            j = i + 1
            while text[i].isalnum() and j < len(text) and text[j].isalnum():
                j += 1
            at = bisect.bisect_left(clean_starts, j)  # run on into the first clean token boundary after the word
            k = clean_starts[at] if at < len(clean_starts) else len(text)
            bridge = [(t, i - 1 + s, i - 1 + e) for t, s, e in self._tokenize(" " + text[i:k])]
            if bridge:
                cont = (main, clean_pos[at]) if at < len(clean_starts) else None
                starts.append((self._add_track(index, text, bridge, i, cont), 0, i))
        return starts

    def _norm(self, track: int, pos: int, start: int) -> _Cursor:
        cont = self._tracks[track].cont
        if cont is not None and pos == len(self._tracks[track].ids):
            return (cont[0], cont[1], start)
        return (track, pos, start)

    def _advance(self, cursors: list[_Cursor], token: int) -> list[_Cursor]:
        out = []
        for track, pos, start in cursors:
            ids = self._tracks[track].ids
            if pos < len(ids) and ids[pos] == token:
                out.append(self._norm(track, pos + 1, start))
        return list(dict.fromkeys(out))

    def _cursors(self, generated: Sequence[int]) -> list[_Cursor]:
        """Cursors after a non-empty ``generated``, advanced from the cached prefix when it extends it."""
        ids = tuple(int(t) for t in generated)
        prefix, cursors = self._cache
        if not prefix or ids[: len(prefix)] != prefix:  # not an extension of the cached prefix: start over
            prefix, cursors = ids[:1], self._first.get(ids[0], [])
        for token in ids[len(prefix) :]:
            cursors = self._advance(cursors, token)
        self._cache = (ids, cursors)
        return cursors

    def allowed(self, generated: Sequence[int]) -> np.ndarray:
        """Token ids that may follow ``generated`` (the answer's tokens so far, prompt excluded)."""
        if len(generated) == 0:
            return self._start_ids
        cursors = self._cursors(generated)
        if not cursors:
            # A finished row (EOS, then padding) or a prefix decoded without this mask: only let it end.
            return self._eos
        nxt = {self._tracks[t].ids[p] for t, p, _ in cursors if p < len(self._tracks[t].ids)}
        ids = np.fromiter(nxt, dtype=np.int64, count=len(nxt))
        # At a passage's end there is nothing left to copy: the known-words rule yields rather than trap the row.
        novel = bool(nxt)
        if any(self._may_stop(t, p, start, novel) for t, p, start in cursors):
            ids = np.union1d(ids, self._stops)
        return ids if ids.size else self._eos

    def _may_stop(self, track: int, pos: int, start: int, novel: bool = True) -> bool:
        """At a word end, with at least one letter or digit copied (an answer of bare punctuation or markup,
        "`" or "[", is never complete; "[11]" is), and, if `novel`, a word outside `known_words`."""
        tr = self._tracks[track]
        if pos == 0 or not tr.word_end[pos]:
            return False
        answer = self._flat[tr.passage].text[start : tr.ends[pos - 1]]
        if not (self._known and novel):
            return any(ch.isalnum() for ch in answer)
        return any(word not in self._known for word in _WORD.findall(answer.lower()))

    def locate(self, generated: Sequence[int]) -> SpanMatch | None:
        """The passage span the answer tokens came from (trailing EOS/stop tokens ignored); word-aligned spans
        first, then the earliest passage and position. None when no passage holds them."""
        ids = [int(t) for t in generated]
        while ids and ids[-1] in self._stop_set:
            ids.pop()
        if not ids:
            return None
        found = [(not self._tracks[t].word_end[p], self._tracks[t].passage, s, t, p) for t, p, s in self._cursors(ids)]
        if not found:
            return None
        _, index, start, track, pos = min(found)
        return self._match(index, start, self._tracks[track].ends[pos - 1])

    def locate_text(self, answer: str) -> SpanMatch | None:
        """Like :meth:`locate` for a decoded answer (llama.cpp's completions return text, not ids)."""
        needle = " ".join(answer.split())
        candidates = []
        for index, flat in enumerate(self._flat):
            text = flat.text
            at = text.find(needle) if needle else -1
            while at >= 0:
                aligned = _is_word_start(text, at) and _is_word_end(text, at + len(needle))
                candidates.append((not aligned, index, at))
                at = text.find(needle, at + 1)
        if not candidates:
            return None
        _, index, at = min(candidates)
        return self._match(index, at, at + len(needle))

    def _match(self, index: int, start: int, end: int) -> SpanMatch | None:
        """The flat span ``[start:end)`` of passage ``index``, trailing space trimmed, at its raw offsets."""
        flat = self._flat[index]
        while end > start and flat.text[end - 1].isspace():
            end -= 1
        if end <= start:
            return None
        raw_start, raw_end = flat.raw_span(start, end)
        return SpanMatch(index, raw_start, raw_end, flat.text[start:end])


class SpanLogitsProcessor(LogitsProcessor):
    """transformers processor: every token outside the row's constraint gets -inf.

    ``prompt_len`` is where generation starts in ``input_ids`` (the padded prompt width when left-padding),
    one per row or one for all; pass one constraint per row for a batch.
    """

    def __init__(self, constraints: SpanConstraint | Sequence[SpanConstraint], prompt_len: int | Sequence[int]) -> None:
        self.constraints = [constraints] if isinstance(constraints, SpanConstraint) else list(constraints)
        lens = [prompt_len] * len(self.constraints) if isinstance(prompt_len, int) else list(prompt_len)
        if len(lens) != len(self.constraints):
            raise ValueError(f"{len(lens)} prompt lengths for {len(self.constraints)} constraints")
        self.prompt_lens = lens

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[0] != len(self.constraints):
            raise ValueError(f"batch of {input_ids.shape[0]} rows for {len(self.constraints)} constraints")
        keep = np.zeros(tuple(scores.shape), dtype=bool)
        for row, (constraint, start) in enumerate(zip(self.constraints, self.prompt_lens, strict=True)):
            keep[row, constraint.allowed(input_ids[row, start:].tolist())] = True
        return scores.masked_fill(~torch.from_numpy(keep).to(scores.device), float("-inf"))


class _LlamaSpanProcessor:
    def __init__(self, constraint: SpanConstraint, prompt_len: int | None) -> None:
        self.constraint, self.prompt_len = constraint, prompt_len

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.prompt_len is None:
            self.prompt_len = len(input_ids)  # the first call comes before any generated token
        allowed = self.constraint.allowed(input_ids[self.prompt_len :].tolist())
        out = np.full_like(scores, -np.inf)
        out[allowed] = scores[allowed]
        return out


def llama_logits_processor(
    constraint: SpanConstraint, prompt_len: int | None = None
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A processor for llama-cpp-python's ``logits_processor=LogitsProcessorList([...])``.

    ``prompt_len`` counts the prompt's tokens (BOS included); None learns it from the first call, so use one
    processor per completion then.
    """
    return _LlamaSpanProcessor(constraint, prompt_len)
