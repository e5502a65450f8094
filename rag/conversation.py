"""Turn a follow-up question into one that retrieval can answer on its own.

A small LLM rewrites follow-ups unreliably, so this is a heuristic. The last user turn is a follow-up when it
is short (at most SHORT_WORDS words), refers back (he, she, it, they, his, her, its, their, that, this, those,
there, then, ...), or opens with "and", "what about" or "how about". A follow-up gets the content words of the
earlier user questions put in front of it, newest first, walking back until a question that stood on its own
(and at most MAX_TURNS turns). "Who was Ada Lovelace?" then "and when did she die?" retrieves as
"Ada Lovelace and when did she die?". Assistant turns are not used: their text may be wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

SHORT_WORDS = 4
MAX_TURNS = 3

ANAPHORA = frozenset(
    "he she it they him them his her hers its their theirs that this those these there then "
    "he's she's it's they're".split()
)
OPENERS = ("and ", "what about", "how about", "also ", "and,")
STOPWORDS = (
    frozenset(
        "a an the of in on at to for from by with about as is are was were be been being do does did done "
        "what who whom whose which when where why how and or but not no yes so than too very can could would "
        "should will shall may might must have has had i you we me my your our us please tell give say said "
        "much many more most some any all each".split()
    )
    | ANAPHORA
)

_WORD = re.compile(r"[\w'-]+", re.UNICODE)


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def is_follow_up(question: str) -> bool:
    words = [w.lower() for w in _words(question)]
    if not words:
        return False
    opens = question.strip().lower().startswith(OPENERS)
    return len(words) <= SHORT_WORDS or opens or any(w in ANAPHORA for w in words)


def content_words(text: str) -> list[str]:
    """Words that carry the topic: not stopwords, not pronouns, original case kept."""
    return [w for w in _words(text) if w.lower() not in STOPWORDS and len(w) > 1]


# A turn that holds nothing but these is no question: white space as Python and as JSON Schema (which adds
# U+FEFF) define it, so the service refuses exactly the turns its schema calls empty.
_BLANK = re.compile(r"[\s\ufeff]*")


def condense_query(messages: Sequence[Mapping[str, str]]) -> str:
    """The retrieval query for a conversation: the last user turn, standalone if it was a follow-up."""
    questions = [str(m.get("content") or "").strip() for m in messages if m.get("role") == "user"]
    questions = [q for q in questions if not _BLANK.fullmatch(q)]
    if not questions:
        return ""
    last = questions[-1]
    if len(questions) == 1 or not is_follow_up(last):
        return last
    seen = {w.lower() for w in _words(last)}
    context: list[str] = []
    for earlier in reversed(questions[:-1][-MAX_TURNS:]):
        fresh = [w for w in content_words(earlier) if w.lower() not in seen]
        seen.update(w.lower() for w in fresh)
        context = fresh + context
        if not is_follow_up(earlier):
            break
    return f"{' '.join(context)} {last}".strip()
