"""Sentence focus with the real packaged embedder: the reader gets the sentence that answers, at document offsets."""

from __future__ import annotations

import pytest

from index import Passage
from rag.focus import focus_passages

pytestmark = pytest.mark.integration

DOCUMENT = (
    "Intro text. The river town grew around a mill. Its market sold wool and grain for centuries. "
    "In 1902 a glassworks opened beside the old bridge. Tourists now come for the cathedral."
)
CHUNK_START = DOCUMENT.index("The river")


def passage(text: str, start: int) -> Passage:
    return Passage(7, 1, "town.txt", "Millford", text, start, start + len(text), 0, "default")


def test_focus_keeps_the_answering_sentence_at_document_offsets(embedder) -> None:
    whole = passage(DOCUMENT[CHUNK_START:], CHUNK_START)
    short = passage("Paris is the capital of France.", 0)
    [[focused, untouched]] = focus_passages(["When did the glassworks open?"], [[whole, short]], embedder)
    assert focused.text == "In 1902 a glassworks opened beside the old bridge."
    assert DOCUMENT[focused.start : focused.end] == focused.text
    assert focused.chunk_id == whole.chunk_id
    assert untouched == short  # one sentence: nothing to cut


def test_focus_follows_the_question(embedder) -> None:
    whole = passage(DOCUMENT[CHUNK_START:], CHUNK_START)
    questions = ["What did the market sell?", "Why do tourists visit now?"]
    results = focus_passages(questions, [[whole], [whole]], embedder)
    assert [r[0].text for r in results] == [
        "Its market sold wool and grain for centuries.",
        "Tourists now come for the cathedral.",
    ]
    two = focus_passages(questions[:1], [[whole]], embedder, keep=2)[0][0]
    assert "Its market sold wool and grain" in two.text and DOCUMENT[two.start : two.end] == two.text
