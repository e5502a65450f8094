"""Text and metadata made safe to store and serve: valid Unicode, and values strict JSON accepts."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` with NUL removed and lone surrogates replaced by U+FFFD (a split surrogate pair is joined).

    JSON's `\\ud800` escapes and surrogate-escaped file names put surrogates in a str; tokenizers and UTF-8
    encoders reject them, and PostgreSQL rejects NUL in text.
    """
    text = text.replace("\x00", "")
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def json_safe(value: Any) -> Any:
    """A copy that `json.dumps(..., allow_nan=False)` accepts and UTF-8 can encode.

    Strings are cleaned, non-finite floats become None, tuples become lists, keys become strings, other
    numbers (numpy's) become int or float, and anything else becomes `str(value)`.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, Mapping):
        return {clean_text(str(key)): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return clean_text(str(value))
