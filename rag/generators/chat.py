"""Chat formatting shared by the backends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def plain_chat(messages: Sequence[Mapping[str, str]]) -> str:
    """A readable transcript for base models that have no chat template."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(lines) + "\n\nAssistant:"
