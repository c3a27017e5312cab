"""Degenerate-loop guard: greedy decoding can repeat an n-gram until max_length; stop early and cut it.

Repetition is also content: a form's empty rows, a schedule's identical lines, a matrix of zeros. So the
thresholds depend on the element kind (LOOP_RULES), and in a table a repeat made of whole, well-formed rows
(`<tr>` cells `</tr>`) is never a loop: upstream has no such stop at all (its 1.x decoding runs to
max_length, v2 to max_new_tokens), and a table's rows are what the table prompt asks for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pdf2md.convert.dolphin.prompts import PROMPTS

MIN_COPIES = 4
"""A tail repeated at least this many times in a row..."""
MIN_SPAN = 100
"""...and covering at least this many characters (or tokens) is a loop, not content."""
MAX_UNIT = 64
"""Longest repeated unit looked for (characters or tokens)."""
MAX_ROW_CHARS = 2048
"""Longest table row looked for when deciding whether a repeat is whole rows."""


@dataclass(frozen=True)
class LoopRule:
    """When a repeated tail is a loop, for one element kind.

    stop_copies/stop_span_tokens: the decoding stop (generation.RepetitionStop), in tokens;
    cut_copies/cut_span_chars: the cut of the answer's tail (cut_repetition), in characters;
    rows_are_content: a repeat of whole, well-formed table rows is never a loop.
    """

    stop_copies: int
    stop_span_tokens: int
    cut_copies: int
    cut_span_chars: int
    rows_are_content: bool = False


TEXT_LOOP = LoopRule(stop_copies=8, stop_span_tokens=128, cut_copies=MIN_COPIES, cut_span_chars=MIN_SPAN)
LOOP_RULES: dict[str, LoopRule] = {
    "text": TEXT_LOOP,
    "formula": TEXT_LOOP,
    "code": LoopRule(stop_copies=12, stop_span_tokens=256, cut_copies=8, cut_span_chars=200),
    "table": LoopRule(stop_copies=12, stop_span_tokens=256, cut_copies=8, cut_span_chars=200, rows_are_content=True),
}
"""Element kind (markdown.LabelRule.kind) -> its loop rule. Code repeats lines (closing braces, similar
calls) and a table repeats cells more than prose does: both need more copies over a longer span."""

_ROWS = re.compile(r"(?:\s*<tr\b[^>]*>(?:\s*<t([dh])\b[^>]*>(?:[^<]|<(?!/?t(?:[rdh]|able)\b))*</t\1>)*\s*</tr>)+\s*")
"""One or more complete rows, each cell opened and closed in order (cells may hold inline markup, not rows)."""


def loop_rule(prompt: str) -> LoopRule:
    """The loop rule of the element kind a prompt asks for (the layout prompt: text's)."""
    kind = next((kind for kind, asked in PROMPTS.items() if asked == prompt), "text")
    return LOOP_RULES.get(kind, TEXT_LOOP)


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


def whole_rows(stretch: str) -> bool:
    """Whether a repeating stretch of a table answer is whole, well-formed rows repeated (however it is cut).

    The stretch may start and end inside a row (decoding stops anywhere): its period, turned so that it
    starts at a `<tr`, must be one or more complete rows whose cells open and close in order.
    """
    period = _period(stretch)
    if period is None:
        return False
    doubled = stretch[:period] * 2
    return any(doubled.startswith("<tr", p) and _ROWS.fullmatch(doubled, p, p + period) is not None for p in range(period))


def _period(text: str) -> int | None:
    """The smallest shift that maps `text` onto itself (at most MAX_ROW_CHARS, at least two copies), or None."""
    for shift in range(1, min(MAX_ROW_CHARS, len(text) // 2) + 1):
        if text[shift:] == text[:-shift]:
            return shift
    return None


def cut_repetition(text: str, rule: LoopRule = TEXT_LOOP) -> str:
    """Keep one copy of a looping tail (the content before the loop is usually right)."""
    found = repeated_tail(text, rule.cut_copies, rule.cut_span_chars)
    if found is None:
        return text
    start, unit = found
    if rule.rows_are_content and whole_rows(text[start:]):
        return text
    return text[:start + unit].rstrip()
