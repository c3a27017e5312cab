"""Spans to lines, and lines to reading order: rows by vertical overlap, fragments by gaps, XY-cut."""

from __future__ import annotations

import math
import re
import statistics
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pdf2md.convert.text.spans import SPACE_GAP, Span

T = TypeVar("T")

ROW_OVERLAP = 0.5
"""Two spans share a row when their boxes overlap vertically by this share of the smaller height."""
FRAGMENT_GAP = 1.0
"""A horizontal gap wider than this many line heights splits a row into fragments (columns, cells)."""
WORD_GAP = 0.15
"""A gap wider than this many line heights between two spans is a space."""
MIN_COLUMN_WIDTH = 3.0
"""A column cut needs this many line heights of content on each side (bullets are not a column)."""
_RTL_LETTER = re.compile(r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")


@dataclass(slots=True)
class Line:
    """A fragment of a row: spans close enough to read as one run of text."""

    spans: list[Span]
    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    size: float
    bold: bool
    mono: bool
    font: str = ""

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass(slots=True)
class Row:
    """Fragments sharing a baseline, left to right."""

    lines: list[Line] = field(default_factory=list)

    @property
    def y0(self) -> float:
        return min(line.y0 for line in self.lines)

    @property
    def y1(self) -> float:
        return max(line.y1 for line in self.lines)


def build_rows(spans: Sequence[Span]) -> list[Row]:
    """Group spans into rows (top to bottom) and each row into fragments (left to right)."""
    rows: list[list[Span]] = []
    top = bottom = 0.0
    for span in sorted(spans, key=lambda s: -(s.y0 + s.y1)):
        if (rows and _overlap(span.y0, span.y1, bottom, top) >= ROW_OVERLAP * min(span.height, top - bottom)
                and not (_off_line(span, rows[-1][0]) and _stacked(span, rows[-1]))):
            rows[-1].append(span)
            top, bottom = max(top, span.y1), min(bottom, span.y0)
        else:
            rows.append([span])
            top, bottom = span.y1, span.y0
    return [Row(_fragments(row)) for row in rows]


def _off_line(span: Span, first: Span) -> bool:
    """Whether the span's middle is off the line the row started with (a cheap test before _stacked)."""
    return abs(span.y0 + span.y1 - first.y0 - first.y1) > 0.6 * min(span.height, first.height)


def _stacked(span: Span, row: list[Span]) -> bool:
    """Whether the span sits above or below a span of the row rather than beside it: then a tall span
    (a big title, a cell of two lines) had merged lines of smaller text into one row."""
    mid = span.y0 + span.y1
    for other in row:
        if (min(other.x1, span.x1) - max(other.x0, span.x0) > 0.3 * min(other.x1 - other.x0, span.x1 - span.x0)
                and abs(other.y0 + other.y1 - mid) > 0.6 * min(other.height, span.height)):
            return True
    return False


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return min(a1, b1) - max(a0, b0)


def _fragments(row: list[Span]) -> list[Line]:
    row.sort(key=lambda s: s.x0)
    height = statistics.median(s.height for s in row)
    groups: list[list[Span]] = [[row[0]]]
    right = row[0].x1
    for span in row[1:]:
        if span.x0 - right > FRAGMENT_GAP * height:
            groups.append([span])
        else:
            groups[-1].append(span)
        right = max(right, span.x1)
    return [make_line(g) for g in groups]


def make_line(spans: list[Span]) -> Line:
    """One fragment from spans sorted left to right: text with spaces where the gaps are."""
    height = statistics.median(s.height for s in spans)
    sizes = [s.size for s in spans]
    letters = sum(len(s.text) for s in spans)
    return Line(
        spans=spans,
        text=_line_text(spans, height),
        x0=min(s.x0 for s in spans),
        y0=min(s.y0 for s in spans),
        x1=max(s.x1 for s in spans),
        y1=max(s.y1 for s in spans),
        size=max(set(sizes), key=sizes.count),
        bold=sum(len(s.text) for s in spans if s.bold) > 0.6 * letters,
        mono=all(s.mono for s in spans),
        font=spans[0].font if all(s.font == spans[0].font for s in spans) else "",
    )


def _line_text(spans: list[Span], height: float) -> str:
    """Join spans left to right, or right to left (with left-to-right runs kept) for RTL lines."""
    words: list[list[Span]] = [[spans[0]]]
    tight = _tight_gap(spans, height)
    for prev, span in zip(spans, spans[1:]):
        gap = span.x0 - prev.x1
        if gap > WORD_GAP * height or (span.spaced and gap > -WORD_GAP * height) or (span.generated and gap > tight):
            words.append([span])
        else:
            words[-1].append(span)
    texts = ["".join(s.text for s in word) for word in words]
    if is_rtl("".join(texts)):
        texts = _visual_to_logical(texts)
    return " ".join(texts)


def _tight_gap(spans: list[Span], height: float) -> float:
    """The narrowest gap at which a space pdfium generated parts two words on this line.

    Tight justified text sets words closer than WORD_GAP; pdfium's spaces tell those gaps apart from
    kerning. Where pdfium also puts spaces between touching letters (fonts whose glyph boxes are narrower
    than their advance), its spaces say nothing on this line.
    """
    floor = SPACE_GAP * height
    generated = [b.x0 - a.x1 for a, b in zip(spans, spans[1:]) if b.generated]
    if not generated or sum(gap <= floor for gap in generated) > len(generated) / 4:
        return math.inf
    return floor


def is_rtl(text: str) -> bool:
    """More right-to-left letters (Hebrew, Arabic, ...) than left-to-right ones."""
    if not _RTL_LETTER.search(text):
        return False
    rtl = ltr = 0
    for ch in text:
        if ch.isalpha():
            if unicodedata.bidirectional(ch) in ("R", "AL"):
                rtl += 1
            else:
                ltr += 1
    return rtl > ltr


def _visual_to_logical(words: list[str]) -> list[str]:
    """Words of an RTL line, given left to right, in reading order: runs of LTR words keep their order."""
    out: list[str] = []
    run: list[str] = []
    for word in reversed(words):
        if is_rtl(word) or not any(ch.isalnum() for ch in word):
            out.extend(reversed(run))
            run = []
            out.append(word)
        else:
            run.append(word)
    out.extend(reversed(run))
    return out


# --- reading order ------------------------------------------------------------------------------


@dataclass(slots=True)
class Box:
    """Anything placed on the page: a line, or a table standing in for its lines."""

    x0: float
    y0: float
    x1: float
    y1: float
    item: object


def reading_order(boxes: list[Box], unit: float, rtl: bool = False) -> list[Box]:
    """Recursive XY-cut: columns (full-height gutters) first, else sections top to bottom.

    A section is a run of horizontal bands that share a gutter, so two columns are not read
    line by line in turns wherever both happen to have a gap at the same height. Right-to-left
    pages read their columns from the right.
    """
    if len(boxes) <= 1:
        return boxes
    columns = _split_columns(boxes, unit)
    if len(columns) > 1:
        return [b for column in (columns[::-1] if rtl else columns) for b in reading_order(column, unit, rtl)]
    sections = _sections(_split_bands(boxes), unit)
    if len(sections) > 1:
        return [b for section in sections for b in reading_order(section, unit, rtl)]
    return _by_lines(boxes, rtl)


def joined_side_by_side(items: Sequence[T]) -> list[T | Line]:
    """Fragments of one line that are read one after the other become one line ("1" and "OVERVIEW.....6",
    "Name:" and its value): a row that is no table reads as a line of text, its gaps as spaces. (Columns
    of a page are read one after the other, so their lines never meet here side by side.)"""
    out: list[T | Line] = []
    for item in items:
        prev = out[-1] if out else None
        if isinstance(item, Line) and isinstance(prev, Line) and item.x0 > prev.x1 and _one_line(prev, item):
            out[-1] = make_line([*prev.spans, *item.spans])
        else:
            out.append(item)
    return out


def _one_line(a: Box | Line, b: Box | Line) -> bool:
    """Whether two boxes sit on one line of text: their bottoms level (to a quarter of the taller one's
    height) and each one's middle within the other. Display type stacked tightly overlaps more than that
    and is still two lines."""
    taller = max(a.y1 - a.y0, b.y1 - b.y0)
    return (abs(a.y0 - b.y0) <= 0.25 * taller and a.y0 < (b.y0 + b.y1) / 2 < a.y1
            and b.y0 < (a.y0 + a.y1) / 2 < b.y1)


def _by_lines(boxes: list[Box], rtl: bool) -> list[Box]:
    """Top to bottom, and along each line in reading direction: boxes side by side on one line (a section
    number and its title, a label and its value) have different heights, so their tops alone do not
    order them."""
    ordered = sorted(boxes, key=lambda b: -b.y1)
    lines: list[list[Box]] = []
    for box in ordered:
        first = lines[-1][0] if lines else None
        if first is not None and _box_height(first) and _box_height(box) and _one_line(first, box):
            lines[-1].append(box)
        else:
            lines.append([box])
    return [box for line in lines for box in sorted(line, key=lambda b: -b.x1 if rtl else b.x0)]


def _sections(bands: list[list[Box]], unit: float) -> list[list[Box]]:
    """Consecutive bands merged while together they still split into columns."""
    sections: list[list[Box]] = []
    for band in bands:
        if sections and len(_split_columns(sections[-1] + band, unit)) > 1:
            sections[-1] = sections[-1] + band
        else:
            sections.append(list(band))
    return sections


def _split_bands(boxes: list[Box]) -> list[list[Box]]:
    """Cut where no box covers a horizontal strip of the region."""
    ordered = sorted(boxes, key=lambda b: -b.y1)
    bands: list[list[Box]] = [[ordered[0]]]
    bottom = ordered[0].y0
    for box in ordered[1:]:
        if box.y1 <= bottom:
            bands.append([box])
        else:
            bands[-1].append(box)
        bottom = min(bottom, box.y0)
    return bands


def _split_columns(boxes: list[Box], unit: float) -> list[list[Box]]:
    """Cut at vertical gutters no box crosses, when both sides are wide enough to be columns."""
    ordered = sorted(boxes, key=lambda b: b.x0)
    columns: list[list[Box]] = [[ordered[0]]]
    edge = ordered[0]  # the box reaching furthest right so far
    for box in ordered[1:]:
        if box.x0 - edge.x1 > 0.5 * max(unit, min(_box_height(box), _box_height(edge))):
            columns.append([box])
        else:
            columns[-1].append(box)
        if box.x1 > edge.x1:
            edge = box
    if len(columns) == 1:
        return columns
    merged: list[list[Box]] = [columns[0]]
    for column in columns[1:]:
        if _width(column) < MIN_COLUMN_WIDTH * unit or _width(merged[-1]) < MIN_COLUMN_WIDTH * unit:
            merged[-1].extend(column)
        else:
            merged.append(column)
    return merged


def _box_height(box: Box) -> float:
    """A line's height; a table (many lines) counts as no taller than the page's text."""
    return box.y1 - box.y0 if isinstance(box.item, Line) else 0.0


def _width(boxes: list[Box]) -> float:
    return max(b.x1 for b in boxes) - min(b.x0 for b in boxes)
