"""A short excerpt of a span's readable text around the words of the query."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from retrace_server.embeddings.text import HIGHLIGHT_SOURCE_CHARS, span_text
from retrace_server.search.lexical import stem, terms

WIDTH = 200


def _pattern(query: str) -> re.Pattern[str] | None:
    words = terms(query)
    if not words:
        return None
    # Stems, so that "failing" finds "failed" as FTS5's porter stemmer does.
    stems = sorted({stem(w) for w in words}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(s) for s in stems) + ")", re.IGNORECASE)


def highlight(span: Mapping[str, Any], query: str) -> str:
    source = " ".join(span_text(span, limit=HIGHLIGHT_SOURCE_CHARS).split())
    pattern = _pattern(query)
    best_start = 0
    if pattern is not None:
        starts = [m.start() for m in pattern.finditer(source)]
        if starts:
            # The window holding the most matches, starting a little before its first one.
            best_count = -1
            for first in starts:
                count = sum(1 for s in starts if first <= s < first + WIDTH)
                if count > best_count:
                    best_count, best_start = count, max(0, first - 40)
    excerpt = source[best_start : best_start + WIDTH]
    prefix = "..." if best_start > 0 else ""
    suffix = "..." if best_start + WIDTH < len(source) else ""
    return f"{prefix}{excerpt}{suffix}"
