"""The born-digital path: every page's own text layer, read with pypdfium2, as Markdown.

Pages are laid out one by one (rows, tables, reading order), then the document as a whole decides
what body text and headings look like and which lines are running headers, footers and page numbers.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pypdfium2 as pdfium

from pdf2md.convert.document_model import Block, join_blocks
from pdf2md.convert.text.banded import find_banded_tables
from pdf2md.convert.text.furniture import PAGE_NUMBER, BodyFacts, in_side_margin, split_furniture
from pdf2md.convert.text.layout import Box, Line, Row, build_rows, is_rtl, joined_side_by_side, reading_order
from pdf2md.convert.text.markdown import DocStyle, render_blocks
from pdf2md.convert.text.placement import page_blocks
from pdf2md.convert.text.ruled import find_ruled_tables
from pdf2md.convert.text.spans import PageSpans, Span, read_page
from pdf2md.convert.text.tables import Table, find_tables

MARGIN_ROWS = 2
"""Rows at the top and at the bottom of a page that may be running headers or footers."""
RUNNING_SHARE = 0.4
"""A margin line repeated (digits aside) on at least this share of the pages is a running header/footer."""
_HARMLESS_CONTROLS = frozenset("\r\n\t\x02")


@dataclass(frozen=True)
class LayerStats:
    """What the router needs to judge a page's text layer."""

    chars: int
    alnum: int
    invisible: int
    bad: int


@dataclass(frozen=True)
class PageText:
    markdown: str
    stats: LayerStats
    blocks: tuple[Block, ...] = ()
    """The page's Markdown as the document model's blocks (in reading order, with their boxes)."""


@dataclass(frozen=True)
class DocumentText:
    pages: list[PageText]
    unreadable: frozenset[int] = frozenset()
    """Pages pdfium cannot load (0-based): they come out empty; the caller decides if that is too many."""


@dataclass
class _PageLayout:
    items: list[Line | Table]
    ends: tuple[list[list[Line]], list[list[Line]]]
    """The lines of the margin rows at the top and at the bottom, each end listed from the page's edge inward."""
    stats: LayerStats
    folios: frozenset[int] = frozenset()
    """Margin lines alone in their row with a page number's shape (ids): a number beside other cells is data."""
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    """The visible page in user space, and its /Rotate: where the blocks lie on the page as displayed."""
    rotation: int = 0


def extract(doc: pdfium.PdfDocument) -> DocumentText:
    """Read and lay out every page, then render them with the document's own style and margins."""
    spans = [_read_or_none(doc, i) for i in range(len(doc))]
    unreadable = frozenset(i for i, page in enumerate(spans) if page is None)
    layouts = [_layout(page) if page is not None else _PageLayout([], ([], []), LayerStats(0, 0, 0, 0)) for page in spans]
    style = DocStyle.from_lines(item for page in layouts for item in page.items if isinstance(item, Line))
    running = _running_keys(layouts)
    pages = []
    for page in layouts:
        drop = _running_lines(page, running)
        items = [item for item in page.items if id(item) not in drop] if len(drop) < len(page.items) else page.items
        blocks = page_blocks(render_blocks(items, style), page.box, page.rotation)
        pages.append(PageText(join_blocks(blocks), page.stats, blocks))
    return DocumentText(pages, unreadable)


def _read_or_none(doc: pdfium.PdfDocument, index: int) -> PageSpans | None:
    """One broken page must not sink a long document: it is reported, not raised."""
    try:
        return read_page(doc, index)
    except pdfium.PdfiumError:
        return None


def _layout(page: PageSpans) -> _PageLayout:
    """Items in reading order: each text orientation on its own, the most used one first.

    The main orientation's margin rows that look like furniture on this page alone are left out, and so is
    text set across it wholly beside its body block (a stamp up the margin).
    """
    visible = [span for span in page.spans if not span.invisible]
    groups: dict[int, list[Span]] = {}
    for span in visible or page.spans:  # an invisible layer alone is still the page's only text
        groups.setdefault(span.orient, []).append(span)
    items: list[Line | Table] = []
    margin: tuple[list[Row], list[Row]] = ([], [])
    body: BodyFacts | None = None
    for rank, orient in enumerate(sorted(groups, key=lambda o: -len(groups[o]))):
        if body is not None and in_side_margin(groups[orient], body):
            continue
        ruled, rest = find_ruled_tables(groups[orient], page.rules) if orient == 0 else ([], groups[orient])
        if orient == 0:
            banded, rest = find_banded_tables(rest, page.rules)
            ruled = [*ruled, *banded]
        rows = build_rows(rest)
        if rank == 0:
            rows, _ = split_furniture(rows, page.frame(orient), page.rules if orient == 0 else ())
            body = BodyFacts.of(rows) if orient == 0 else None
        items.extend(ordered_items(rows, ruled))
        if orient == 0:
            margin = _margin_rows(rows)
    folios = frozenset(id(row.lines[0]) for end in margin for row in end
                       if len(row.lines) == 1 and PAGE_NUMBER.match(row.lines[0].text))
    ends = ([row.lines for row in margin[0]], [row.lines for row in margin[1]])
    return _PageLayout(items, ends, _stats(page), folios, page.box or (0.0, 0.0, page.width, page.height), page.rotation)


def ordered_items(rows: list[Row], ruled: Sequence[Table] = ()) -> list[Line | Table]:
    """Tables found among the rows (besides the ruled ones given), then tables and lines in reading order."""
    tables = [*ruled, *find_tables(rows)]
    in_table = {id(line) for table in tables for line in table.lines}
    lines = [line for row in rows for line in row.lines if id(line) not in in_table]
    if not lines and not tables:
        return []
    unit = statistics.median(line.height for line in lines) if lines else 10.0
    rtl = is_rtl("".join(line.text for line in lines) + "".join(c for t in tables for row in t.cells for c in row))
    if rtl:
        tables = [table.mirrored() for table in tables]
    boxes = [Box(t.x0, t.y0, t.x1, t.y1, t) for t in tables]
    boxes += [Box(ln.x0, ln.y0, ln.x1, ln.y1, ln) for ln in lines]
    return joined_side_by_side([box.item for box in reading_order(boxes, unit, rtl)])  # type: ignore[misc]


def _margin_rows(rows: list[Row]) -> tuple[list[Row], list[Row]]:
    """The rows at the top and at the bottom that may be running heads or footers, from the edge inward."""
    if len(rows) <= 2 * MARGIN_ROWS:
        return (rows[:1], rows[-1:]) if len(rows) > 2 else ([], [])
    return rows[:MARGIN_ROWS], rows[::-1][:MARGIN_ROWS]


def _running_lines(page: _PageLayout, running: set[str]) -> set[int]:
    """Ids of the page's running heads, footers and folios. Furniture sits at the page's edge: a repeated
    line counts only where every row between it and the edge is furniture too, so a body line that opens
    two sections alike ('Lorem ipsum' under two headings) is not taken for a running head."""
    drop: set[int] = set()
    for end in page.ends:
        for row in end:
            gone = [id(line) for line in row if _margin_key(line) in running or id(line) in page.folios]
            if not gone:
                break
            drop.update(gone)
    return drop


def _margin_key(line: Line) -> str:
    """A margin line's text with digits masked, so 'Page 3' and 'Page 4' repeat."""
    return re.sub(r"\d+", "#", re.sub(r"\s+", "", line.text.lower()))


def _running_keys(layouts: list[_PageLayout]) -> set[str]:
    if len(layouts) < 2:
        return set()
    counts = Counter(key for page in layouts
                     for key in {_margin_key(line) for end in page.ends for row in end for line in row})
    threshold = max(2, RUNNING_SHARE * len(layouts))
    return {key for key, n in counts.items() if n >= threshold}


def _stats(page: PageSpans) -> LayerStats:
    text = page.text
    chars = alnum = bad = 0
    for ch in text:
        if ch.isspace():
            continue
        chars += 1
        if ch.isalnum():
            alnum += 1
        elif ch == "\ufffd" or (unicodedata.category(ch) in ("Co", "Cc", "Cs") and ch not in _HARMLESS_CONTROLS):
            bad += 1
    invisible = sum(len(s.text) for s in page.spans if s.invisible)
    return LayerStats(chars=chars, alnum=alnum, invisible=invisible, bad=bad)
