"""Prompts built from numbered passages. The worked examples are our own, not drawn from any evaluation set."""

from __future__ import annotations

from collections.abc import Sequence

from index import Passage

NO_ANSWER = "I don't know: the retrieved passages do not answer this question."

# A plain completion after worked examples makes small models answer in short phrases copied from the
# passage; through a chat template they answer in whole sentences (measured: EM 14 vs 2 on SQuAD dev).
SHORT_EXAMPLES = (
    (
        "The Amazon River flows through Peru, Colombia and Brazil. It discharges about 209,000 cubic metres "
        "of water per second, more than the next seven largest rivers combined.",
        "How much water does the Amazon discharge each second?",
        "about 209,000 cubic metres",
    ),
    (
        "Marie Curie was born in Warsaw in 1867. In 1891 she moved to Paris, where she studied physics and "
        "mathematics at the Sorbonne and met Pierre Curie.",
        "Where did Marie Curie study physics?",
        "the Sorbonne",
    ),
)

SENTENCE_SYSTEM = (
    "You answer questions using only the numbered passages you are given. Answer in one or two sentences. "
    "If the passages do not contain the answer, reply exactly: I don't know."
)


def passage_block(passages: Sequence[Passage]) -> str:
    return "\n".join(f"[{i}] {' '.join(p.text.split())}" for i, p in enumerate(passages, start=1))


def short_prompt(question: str, passages: Sequence[Passage]) -> str:
    shots = "".join(f"Passage: {text}\nQuestion: {q}\nShort answer: {a}\n\n" for text, q, a in SHORT_EXAMPLES)
    return f"{shots}Passage: {passage_block(passages)}\nQuestion: {question.strip()}\nShort answer:"


def sentence_messages(
    question: str, passages: Sequence[Passage], history: Sequence[dict[str, str]] = ()
) -> list[dict[str, str]]:
    """Chat messages for sentence-style answers: system rules, earlier turns, then passages and the question."""
    user = f"Passages:\n{passage_block(passages)}\n\nQuestion: {question.strip()}"
    return [{"role": "system", "content": SENTENCE_SYSTEM}, *history, {"role": "user", "content": user}]


def sentence_prompt(question: str, passages: Sequence[Passage]) -> str:
    """Plain-text fallback for models without a chat template."""
    return f"{SENTENCE_SYSTEM}\n\nPassages:\n{passage_block(passages)}\n\nQuestion: {question.strip()}\nAnswer:"
