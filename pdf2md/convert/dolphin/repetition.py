"""Degenerate-loop guard: greedy decoding can repeat an n-gram until max_length; stop early and cut it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MIN_COPIES = 4
"""A tail repeated at least this many times in a row..."""
MIN_SPAN = 100
"""...and covering at least this many characters (or tokens) is a loop, not content."""
MAX_UNIT = 64
"""Longest repeated unit looked for (characters or tokens)."""


def repeated_tail(seq: Sequence[Any], min_copies: int = MIN_COPIES, min_span: int = MIN_SPAN, max_unit: int = MAX_UNIT) -> tuple[int, int] | None:
    """(start of the repeats, unit length) when seq ends in a loop, else None; works on str and token lists."""
    n = len(seq)
    for unit in range(1, min(max_unit, n // min_copies) + 1):
        tail = seq[n - unit:]
        start = n - unit
        while start >= unit and seq[start - unit:start] == tail:
            start -= unit
        copies = (n - start) // unit
        if copies >= min_copies and n - start >= min_span:
            return start, unit
    return None


def cut_repetition(text: str, min_copies: int = MIN_COPIES, min_span: int = MIN_SPAN) -> str:
    """Keep one copy of a looping tail (the content before the loop is usually right)."""
    found = repeated_tail(text, min_copies, min_span)
    if found is None:
        return text
    start, unit = found
    return text[:start + unit].rstrip()
