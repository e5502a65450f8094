"""Attach citations to an answer: the passage it was copied from, or the passage sentence it overlaps most."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from index import Passage
from rag.types import Citation

_TOKEN = re.compile(r"\w+")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_DECLINES = re.compile(
    r"\b(i (do not|don't|cannot|can't) (know|answer|say|find)|not (mentioned|stated|provided|given) in|"
    r"no (information|answer)|cannot be (answered|determined)|unanswerable)\b",
    re.IGNORECASE,
)


def declines(answer: str) -> bool:
    """True when the model's own words say it cannot answer."""
    return not answer.strip() or bool(_DECLINES.search(answer))


def cite(passage: Passage, number: int, start: int, end: int) -> Citation:
    """A citation for passage-relative offsets [start, end), converted to document offsets."""
    return Citation(
        number=number,
        chunk_id=passage.chunk_id,
        document_id=passage.document_id,
        source=passage.source,
        title=passage.title,
        start=passage.start + start,
        end=passage.start + end,
        quote=passage.text[start:end],
    )


def find_verbatim(answer: str, passages: Sequence[Passage]) -> Citation | None:
    """The first passage holding the answer word for word (ignoring case), at word boundaries."""
    needle = answer.strip().strip(".").strip()
    if not needle:
        return None
    pattern = re.compile(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", re.IGNORECASE)
    for number, passage in enumerate(passages, start=1):
        match = pattern.search(passage.text)
        if match:
            return cite(passage, number, match.start(), match.end())
    return None


def _overlap(a: Counter[str], b: Counter[str]) -> float:
    common = sum((a & b).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(b.values()), common / sum(a.values())
    return 2 * precision * recall / (precision + recall)


def best_sentence(answer: str, passages: Sequence[Passage]) -> Citation | None:
    """The passage sentence with the highest token F1 against the answer; None when nothing overlaps."""
    answer_tokens = Counter(t.lower() for t in _TOKEN.findall(answer))
    best: tuple[float, int, int, int] | None = None
    for number, passage in enumerate(passages, start=1):
        for match in _SENTENCE.finditer(passage.text):
            score = _overlap(answer_tokens, Counter(t.lower() for t in _TOKEN.findall(match.group())))
            if score > 0 and (best is None or score > best[0]):
                best = (score, number, match.start(), match.end())
    if best is None:
        return None
    _, number, start, end = best
    passage = passages[number - 1]
    text = passage.text[start:end]
    lead = len(text) - len(text.lstrip())
    return cite(passage, number, start + lead, end)


def ground(answer: str, passages: Sequence[Passage]) -> list[Citation]:
    citation = find_verbatim(answer, passages) or best_sentence(answer, passages)
    return [citation] if citation else []
