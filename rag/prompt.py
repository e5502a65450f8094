"""Prompts built from numbered passages. The worked examples are our own, not drawn from any evaluation set."""

from __future__ import annotations

from collections.abc import Sequence

from index import Passage

NO_ANSWER = "I don't know: the retrieved passages do not answer this question."

# A plain completion after worked examples makes small models answer in short phrases copied from the
# passage; through a chat template they answer in whole sentences (measured: EM 14 vs 2 on SQuAD dev).
# More examples help a base model most: on 200 seeded SQuAD v1.1 dev questions (gold paragraph cut to its
# best sentence, Gemma-3-270M), 2 examples gave EM 32.5, 6 gave 40.0 and these 10 gave 42.5.
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
    (
        "The first transatlantic telegraph cable was completed in August 1858 by Cyrus Field's company. "
        "It failed after three weeks.",
        "Who completed the first transatlantic telegraph cable?",
        "Cyrus Field's company",
    ),
    (
        "The orchestra has 96 permanent members and performs about 120 concerts a year in its home hall in Leeds.",
        "How many concerts does the orchestra perform each year?",
        "about 120",
    ),
    (
        "After the flood of 1927, engineers built levees along the lower river to protect the farms of the delta.",
        "Why did engineers build levees along the lower river?",
        "to protect the farms of the delta",
    ),
    (
        "The museum reopened in 2011 after a renovation that added a glass roof over its central courtyard.",
        "When did the museum reopen?",
        "2011",
    ),
    (
        "The suspension bridge, designed by the engineer Joseph Strauss, opened to traffic in May 1937.",
        "Who designed the suspension bridge?",
        "Joseph Strauss",
    ),
    (
        "Roughly 40 percent of the island's electricity comes from geothermal plants built on its volcanic slopes.",
        "What share of the island's electricity comes from geothermal plants?",
        "Roughly 40 percent",
    ),
    (
        "In 1965 the council moved the weekly market to the old railway yard, which had stood empty since the war.",
        "Where did the council move the weekly market?",
        "the old railway yard",
    ),
    (
        "Because its cones open only in intense heat, the jack pine depends on regular forest fires to spread "
        "its seeds.",
        "What do the jack pine's cones need in order to open?",
        "intense heat",
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
