"""Question + passage windows for a fast tokenizer: overflowing windows with a stride, and character offsets
that map every passage token back to the passage text (the standard SQuAD preprocessing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reader.squad_files import QAExample

MAX_QUESTION_TOKENS = 64


@dataclass(frozen=True)
class Window:
    """One tokenized window. `offsets[i]` is the (start, end) of token i in its passage text, or None for
    tokens outside the passage (question, special tokens); `null_index` is the [CLS] position."""

    item: int  # which (question, passage) pair this window reads
    input_ids: list[int]
    token_type_ids: list[int] | None
    offsets: list[tuple[int, int] | None]
    null_index: int = 0


def _short_question(tokenizer: Any, question: str) -> str:
    """Questions over MAX_QUESTION_TOKENS are cut (at a token end) so every window keeps room for the passage."""
    encoded = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    if len(offsets) <= MAX_QUESTION_TOKENS:
        return question
    return question[: offsets[MAX_QUESTION_TOKENS - 1][1]]


def tokenize_windows(
    tokenizer: Any, questions: Sequence[str], passages: Sequence[str], max_seq_len: int, stride: int
) -> list[Window]:
    """Windows of every (question, passage) pair, in pair order; long passages overflow into several."""
    if not tokenizer.is_fast:
        raise ValueError("the reader needs a fast tokenizer (offset mappings)")
    if stride >= max_seq_len - MAX_QUESTION_TOKENS - 3:
        raise ValueError(f"stride {stride} leaves no room for new passage tokens in {max_seq_len}-token windows")
    pad_right = tokenizer.padding_side == "right"
    encoded = tokenizer(
        [_short_question(tokenizer, q) for q in questions] if pad_right else list(passages),
        list(passages) if pad_right else [_short_question(tokenizer, q) for q in questions],
        truncation="only_second" if pad_right else "only_first",
        max_length=max_seq_len,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    passage_side = 1 if pad_right else 0
    windows = []
    for w, item in enumerate(encoded["overflow_to_sample_mapping"]):
        sequence_ids = encoded.sequence_ids(w)
        offsets = [
            tuple(span) if side == passage_side else None
            for side, span in zip(sequence_ids, encoded["offset_mapping"][w], strict=True)
        ]
        types = encoded["token_type_ids"][w] if "token_type_ids" in encoded else None
        windows.append(Window(item, encoded["input_ids"][w], types, offsets))  # type: ignore[arg-type]
    return windows


def answer_positions(window: Window, answer_start: int, answer_end: int) -> tuple[int, int]:
    """Token positions of the answer [answer_start, answer_end) in this window, or the null position when the
    window does not hold the whole answer."""
    inside = [i for i, span in enumerate(window.offsets) if span is not None]
    if not inside:
        return window.null_index, window.null_index
    first, last = window.offsets[inside[0]], window.offsets[inside[-1]]
    if not (first[0] <= answer_start and last[1] >= answer_end):  # type: ignore[index]
        return window.null_index, window.null_index
    start = next(i for i in inside if window.offsets[i][1] > answer_start)  # type: ignore[index]
    end = next(i for i in reversed(inside) if window.offsets[i][0] < answer_end)  # type: ignore[index]
    return start, end


def training_features(
    tokenizer: Any, examples: Sequence[QAExample], max_seq_len: int, stride: int
) -> list[dict[str, Any]]:
    """Training rows: input ids with start/end positions (the null position for unanswerable windows)."""
    windows = tokenize_windows(
        tokenizer, [e.question for e in examples], [e.context for e in examples], max_seq_len, stride
    )
    rows = []
    for window in windows:
        example = examples[window.item]
        if example.is_impossible:
            start = end = window.null_index
        else:
            text, begin = example.answers[0]
            start, end = answer_positions(window, begin, begin + len(text))
        row: dict[str, Any] = {"input_ids": window.input_ids, "start_positions": start, "end_positions": end}
        if window.token_type_ids is not None:
            row["token_type_ids"] = window.token_type_ids
        rows.append(row)
    return rows
