"""Token-aware recursive splitting, measured in the embedder's own tokenizer, with character offsets."""

from __future__ import annotations

from typing import Any

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ingest.types import ChunkSpan


class TokenChunker:
    """Splits on paragraphs, then lines, sentences and words until each piece fits `chunk_tokens`.

    Pieces overlap by about `overlap_tokens`, so an answer that straddles a boundary is whole in one chunk.
    """

    def __init__(self, tokenizer: Any, chunk_tokens: int = 254, overlap_tokens: int = 32) -> None:
        if chunk_tokens <= 0 or not 0 <= overlap_tokens < chunk_tokens:
            raise ValueError(
                f"need chunk_tokens > 0 and 0 <= overlap_tokens < chunk_tokens, got {chunk_tokens}, {overlap_tokens}"
            )
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self._splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
            tokenizer,
            chunk_size=chunk_tokens,
            chunk_overlap=overlap_tokens,
            separators=["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""],
            keep_separator="end",
        )

    def split(self, text: str) -> list[ChunkSpan]:
        spans: list[ChunkSpan] = []
        cursor = 0
        for piece in self._splitter.split_text(text):
            # Pieces are verbatim substrings in order (only their ends are stripped), so search forward.
            start = text.find(piece, cursor)
            if start < 0:
                start = text.find(piece)
            if start < 0 or not piece.strip():
                continue
            spans.append(ChunkSpan(ordinal=len(spans), start=start, end=start + len(piece), text=piece))
            cursor = start + 1
        return spans
