"""Word-level differences between two texts, as pieces a page renders as text."""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

import orjson

Piece = tuple[Literal["same", "removed", "added"], str]
# Words, runs of spaces, and single other characters: whitespace changes show, punctuation splits.
_TOKENS = re.compile(r"\w+|\s+|[^\w\s]")
# Beyond this many tokens a side, the word matcher's quadratic worst case is not worth it.
MAX_TOKENS = 20_000


def as_text(value: Any) -> str:
    """What a reader compares: text as it is, chat messages by their content, other JSON pretty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        content = value.get("content")
        if isinstance(content, str) and set(value) <= {"role", "content", "name"}:
            return content
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def word_diff(old: str, new: str) -> list[Piece]:
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    if len(a) > MAX_TOKENS or len(b) > MAX_TOKENS:
        return [("removed", old), ("added", new)] if old != new else [("same", old)]
    pieces: list[Piece] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            pieces.append(("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(("removed", "".join(a[i1:i2])))
        if j2 > j1:
            pieces.append(("added", "".join(b[j1:j2])))
    return pieces
