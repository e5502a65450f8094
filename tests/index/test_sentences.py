"""What a chunk is embedded as: itself, then each of its sentences under the document title."""

from __future__ import annotations

import pytest

from index.sentences import split_sentences, vector_texts
from index.vectors import SLOTS

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # prose: abbreviations and decimals stay inside their sentence
            "It opened in 1889. Was it tall? Yes! Prices rose 3.5 per cent. e.g. lower-case words continue.",
            ["It opened in 1889.", "Was it tall?", "Yes!", "Prices rose 3.5 per cent. e.g. lower-case words continue."],
        ),
        (  # markdown: blank lines end headings and code blocks
            "# Database\n\n```yaml\ncontent: sqlite\n```\n\nEnables content storage. It is off by default.",
            ["# Database", "```yaml\ncontent: sqlite\n```", "Enables content storage.", "It is off by default."],
        ),
    ],
)
def test_splits_into_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_vector_texts_start_with_the_chunk_then_titled_sentences() -> None:
    chunk = "The tower is 330 m tall. It was finished in 1889."
    assert vector_texts(chunk, "Eiffel Tower") == [
        chunk,
        "Eiffel Tower\n\nThe tower is 330 m tall.",
        "Eiffel Tower\n\nIt was finished in 1889.",
    ]
    assert vector_texts(chunk, "")[1] == "The tower is 330 m tall."


def test_long_chunks_stay_within_their_id_slots() -> None:
    chunk = " ".join(f"Sentence number {i} ends here." for i in range(200))
    texts = vector_texts(chunk, "T")
    assert len(texts) == SLOTS
    assert texts[-1].endswith("Sentence number 199 ends here.")
