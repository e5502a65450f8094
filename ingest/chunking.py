"""Token-aware recursive splitting, measured in the embedder's own tokenizer, with character offsets.

The rules are LangChain's RecursiveCharacterTextSplitter's, with the separators below kept at the end of each
piece: split on the first separator the text holds, merge the pieces greedily up to the token budget with some
overlap, and split any piece that alone reaches the budget on the next separator, down to single characters.
Pieces are followed by their offsets rather than searched for afterwards, each piece is measured once (a short
one once per document), and a run with no separator is walked character by character without a list of them, so
the time grows linearly with the text; a test pins the chunks to LangChain's on the shared documents.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ingest.budget import MAX_CHARS_PER_TOKEN, MAX_TEXT_CHARS
from ingest.types import ChunkSpan

SEPARATORS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ")  # then single characters
# Pieces up to this many characters are counted once per document; longer ones rarely repeat.
_MEMO_CHARS = 64

Span = tuple[int, int]
Item = tuple[int, int, int]  # start, end, tokens


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """Tokens in a text, without special tokens, as `len(tokenizer.tokenize(text))` counts them.

    A fast tokenizer is copied with truncation and padding off, so a setting on the caller's tokenizer neither
    changes a count nor is changed here; others are asked through `tokenize`.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return lambda text: len(tokenizer.tokenize(text))
    from tokenizers import Tokenizer

    own = Tokenizer.from_str(backend.to_str())
    own.no_truncation()
    own.no_padding()
    return lambda text: len(own.encode(text, add_special_tokens=False))


class TokenChunker:
    """Splits on paragraphs, then lines, sentences and words until each piece fits `chunk_tokens`.

    Pieces overlap by about `overlap_tokens`, so an answer that straddles a boundary is whole in one chunk. A text
    longer than `max_text_chars` is refused (ValueError); a chunk longer than `max_chunk_chars` (by default
    MAX_CHARS_PER_TOKEN characters per token of `chunk_tokens`) is cut by characters, each counting as a token at
    least.
    """

    def __init__(
        self,
        tokenizer: Any,
        chunk_tokens: int = 254,
        overlap_tokens: int = 32,
        max_chunk_chars: int | None = None,
        max_text_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        if chunk_tokens <= 0 or not 0 <= overlap_tokens < chunk_tokens:
            raise ValueError(
                f"need chunk_tokens > 0 and 0 <= overlap_tokens < chunk_tokens, got {chunk_tokens}, {overlap_tokens}"
            )
        max_chunk_chars = MAX_CHARS_PER_TOKEN * chunk_tokens if max_chunk_chars is None else max_chunk_chars
        if max_chunk_chars < chunk_tokens:
            raise ValueError(f"max_chunk_chars must be at least chunk_tokens ({chunk_tokens}), got {max_chunk_chars}")
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self.max_chunk_chars = max_chunk_chars
        self.max_text_chars = max_text_chars
        self._count = token_counter(tokenizer)

    def split(self, text: str) -> list[ChunkSpan]:
        if len(text) > self.max_text_chars:
            raise ValueError(f"text of {len(text):,} characters is over the chunker's limit of {self.max_text_chars:,}")
        run = _Run(text, self._count, self.chunk_tokens, self.overlap_tokens)
        spans: list[Span] = []
        for start, end in run.split(0, len(text), 0):
            if end - start <= self.max_chunk_chars:
                spans.append((start, end))
            else:
                spans.extend(run.split_chars(start, end, floor=1))
        return [ChunkSpan(ordinal, start, end, text[start:end]) for ordinal, (start, end) in enumerate(spans)]


class _Run:
    """One document's splitting: its text, the budget, and the token counts of its short pieces."""

    def __init__(self, text: str, count: Callable[[str], int], limit: int, overlap: int) -> None:
        self.text, self.count, self.limit, self.overlap = text, count, limit, overlap
        self.memo: dict[str, int] = {}

    def tokens(self, piece: str) -> int:
        if len(piece) > _MEMO_CHARS:
            return self.count(piece)
        known = self.memo.get(piece)
        if known is None:
            known = self.memo[piece] = self.count(piece)
        return known

    def split(self, start: int, end: int, level: int) -> list[Span]:
        """Chunks of text[start:end], trying SEPARATORS from `level` on."""
        text = self.text
        found = next(
            (depth for depth in range(level, len(SEPARATORS)) if text.find(SEPARATORS[depth], start, end) >= 0), None
        )
        if found is None:
            return self.split_chars(start, end)
        items = ((a, b, self.tokens(text[a:b])) for a, b in _pieces(text, start, end, SEPARATORS[found]))
        return self._gather(items, lambda a, b: self.split(a, b, found + 1))

    def split_chars(self, start: int, end: int, floor: int = 0) -> list[Span]:
        """Chunks of text[start:end] merged from single characters, each counting at least `floor` tokens."""
        chars = self.text[start:end]
        counts = {char: max(self.tokens(char), floor) for char in set(chars)}
        items = ((start + i, start + i + 1, counts[char]) for i, char in enumerate(chars))
        return self._gather(items, None)

    def _gather(self, items: Iterable[Item], deeper: Callable[[int, int], list[Span]] | None) -> list[Span]:
        """Merge pieces under the budget; a piece that reaches it alone goes `deeper`, or stays whole at the end."""
        spans: list[Span] = []
        window = _Window(self.text, self.limit, self.overlap, spans)
        for start, end, tokens in items:
            if tokens < self.limit:
                window.add(start, end, tokens)
                continue
            window.close()
            if deeper is not None:
                spans.extend(deeper(start, end))
            elif self.text[start:end].strip():
                spans.append((start, end))
        window.close()
        return spans


class _Window:
    """LangChain's greedy merge, one piece at a time: a chunk ends where the next piece would pass the budget, and
    the next starts with as many trailing pieces as fit in the overlap. Chunks are stripped of outer whitespace."""

    def __init__(self, text: str, limit: int, overlap: int, out: list[Span]) -> None:
        self.text, self.limit, self.overlap, self.out = text, limit, overlap, out
        self.items: deque[Item] = deque()
        self.total = 0

    def add(self, start: int, end: int, tokens: int) -> None:
        if self.items and self.total + tokens > self.limit:
            self._emit()
            while self.total > self.overlap or (self.total + tokens > self.limit and self.total > 0):
                self.total -= self.items.popleft()[2]
        self.items.append((start, end, tokens))
        self.total += tokens

    def close(self) -> None:
        if self.items:
            self._emit()
        self.items.clear()
        self.total = 0

    def _emit(self) -> None:
        start, end = self.items[0][0], self.items[-1][1]
        piece = self.text[start:end]
        body = piece.lstrip()
        if body:
            self.out.append((start + len(piece) - len(body), end - (len(piece) - len(piece.rstrip()))))


def _pieces(text: str, start: int, end: int, separator: str) -> Iterator[Span]:
    """text[start:end] cut after each occurrence of `separator` (leftmost, not overlapping), no empty piece."""
    step = len(separator)
    found = text.find(separator, start, end)
    while found >= 0:
        yield start, found + step
        start = found + step
        found = text.find(separator, start, end)
    if start < end:
        yield start, end
