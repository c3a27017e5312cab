"""Page furniture found on one page alone: running heads, folios, banners and stamps in the margin bands.

Repetition across pages (see textlayer) cannot find the furniture of a one-page or short document. What a
reader sees can: furniture sits in the top or bottom band of the page, apart from the body block (or ruled
off from it by a rule across the body), and is set smaller than the body, carries a page number at its outer
end, or has a shape no body line has (a URL, a DOI, a date, a copyright or "downloaded from" line, a
volume/issue banner, a volume:page folio). Removing body text is as wrong as keeping furniture, so every rule
needs the row to be short, not a sentence, not a caption, source note or footnote, and separated from the
body by a gap or a rule.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from pdf2md.convert.text.layout import Line, Row
from pdf2md.convert.text.spans import Rect, Span

BAND = 0.18
"""Share of the page height, at the top and at the bottom, where a furniture row's middle may lie."""
MAX_ROWS = 3
"""At most this many rows at each end of a page are furniture (a banner, a running head, a stamp)."""
MIN_GAP = 0.5
"""Furniture stands this many body line heights further from the body block than body lines from each other."""
LONE_GAP = 2.5
"""A plain line with nothing else marking it as furniture must stand this far apart."""
SMALL = 0.9
"""Text at most this share of the body size is set smaller than the body."""
LARGE = 1.15
MAX_WORDS = 16
MAX_CHARS = 110
LONE_MAX_WORDS = 10
MIN_ROWS = 4
RULE_SPAN = 0.6
"""A rule that sets furniture off spans this share of the body's width (a footnote rule is shorter)."""
RULE_REACH = 1.2
"""... and lies within this many body line heights of the furniture it sets off."""
"""A page with fewer rows has no body block to tell furniture from."""
PROSE_CHARS = 25
"""Body lines of running text hold this many characters on average."""

PAGE_NUMBER = re.compile(
    r"^(page\s*|p\.\s*)?[-–—]?\s*(\d{1,4}|[ivxlc]{1,6})\s*[-–—]?(\s*(of|/)\s*\d{1,4})?$", re.IGNORECASE)
"""'12', '- 12 -', 'iv', 'Page 3 of 10', '1/2'."""
FOLIO_AND_FOOT = re.compile(r"^\d{1,4}\s+[A-Z][^.!?]*$|^[A-Z][^.!?]*\s\d{1,4}$")
"""A page number and a running foot set as one line ('206  Law Enforcement, Courts, and Prisons'): at the
foot of a page only (at its top the same shape is a numbered heading, '2 Methods')."""
ARTICLE_FOLIO = re.compile(r"^\d{1,4}:\s?\d{1,5}\b(?!:)|(?<!:)\b\d{1,4}:\s?\d{1,5}$")
"""A journal's volume:page or article:page folio at either end of a running title ('26:2 Short title',
'Short title 14:1203'): section numbers are set with dots, never with a colon, so at the top of a page
this is no numbered heading."""
_MONTH = (r"(jan(uary)?|feb(ruary)?|mar(ch)?|apr(il)?|may|june?|july?|aug(ust)?|sept?(ember)?|oct(ober)?"
          r"|nov(ember)?|dec(ember)?|janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre"
          r"|novembre|décembre|januar|februar|märz|juni|juli|oktober|dezember)")
_PATTERNS = re.compile("|".join((
    r"https?://\S+|\bwww\.\S+|\b[\w-]+(\.[\w-]+)*\.(com|org|net|gov|edu|int|io|ac\.\w\w|co\.\w\w)\b",  # URL, site
    r"\bdoi\b|\b10\.\d{4,9}/\S+",  # DOI
    rf"\b\d{{1,2}}[./-]\d{{1,2}}[./-]\d{{2,4}}\b|\b\d{{4}}-\d\d-\d\d\b|\b{_MONTH}\.?\s+(\d{{1,2}},?\s+)?\d{{4}}\b"
    rf"|\b\d{{1,2}}\.?\s+{_MONTH}\.?\s+\d{{4}}\b|\b\d\d?:\d\d\b|\d{{4}}\s*年|\b(19|20)\d\d-(0[1-9]|1[0-2])\b",  # dates
    r"©|\(c\)\s*\d{4}|\bcopyright\b|\ball rights reserved\b|\blicen[cs]e[ds]? under\b",
    r"\b(downloaded|retrieved|accessed|printed)\s+(from|on|at)\b",
    r"\bvol(ume)?\.?\s*[\dxivl]+\b|\bno\.?\s*\d+\b|\bno\.\s*x+\b|\bissue\s+\d+|\bpp?\.\s*\d+|\bissn\b|\bisbn\b|\barxiv:",
    r"\bpage\s+\d+\b|\brev(ision)?\.?\s*[a-z]?\d|\bpart\s+(no|number)\b",
)), re.IGNORECASE)
_URL_ONLY = re.compile(r"^((https?://)?(www\.)?[\w-]+(\.[\w-]+)+(/\S*)?|doi:?\s*\S+|10\.\d{4,9}/\S+)$", re.IGNORECASE)
_CAPTION = re.compile(r"^(fig(ure)?|tab(le)?|listing|exhibit|chart|scheme|algorithm)\.?\s*[A-Z]?[-.]?\d", re.IGNORECASE)
_NOTE = re.compile(r"^(sources?|notes?|quelle|anmerkung)\s*:", re.IGNORECASE)
"""A table's or figure's source note ('Source: LSA Février, 1998'): body text, however dated."""
_TEXT_RULE = re.compile(r"^[\s_\-–—=~·.•*]{8,}$")
"""A rule typed as text ('_______'), under a running head or over a footer as a drawn rule would be."""
_SENTENCE_END = re.compile(r"[.!?]['\")\]]?$")
_FOOTNOTE_SYMBOL = re.compile(r"^[*†‡§¶]")


class Kind(Enum):
    """Why a row is furniture: marked by its typography or shape, or only by standing alone."""

    MARKED = "marked"
    LONE = "lone"


@dataclass(frozen=True)
class BodyFacts:
    """What the body text of a page looks like: its size, line height and where its lines start."""

    size: float
    height: float
    lefts: tuple[float, ...]
    x0: float
    x1: float
    gap: float
    """The usual gap between a row and the next (line spacing): furniture stands apart by more."""
    prose: bool
    """Whether the body is running text (a cover or a poster is not: its display type is no measure)."""

    @classmethod
    def of(cls, rows: list[Row]) -> BodyFacts | None:
        lines = [line for row in rows for line in row.lines]
        sizes: Counter[float] = Counter()
        for line in lines:
            sizes[round(line.size, 1)] += len(line.text)
        if not sizes:
            return None
        size = sizes.most_common(1)[0][0]
        body = [line for line in lines if abs(line.size - size) <= 0.05 * size] or lines
        heights = sorted(line.height for line in body)
        x0, x1 = min(ln.x0 for ln in body), max(ln.x1 for ln in body)
        height = heights[len(heights) // 2]
        starts: dict[int, list[Line]] = {}
        for line in body:
            starts.setdefault(round(line.x0), []).append(line)
        lefts = (x0, *(x for x, group in starts.items()
                       if len(group) >= 2 and max(ln.x1 for ln in group) >= x1 - height))
        gaps = sorted(above.y0 - below.y1 for above, below in zip(rows, rows[1:]))
        prose = len(body) >= MIN_ROWS and sum(len(line.text) for line in body) >= PROSE_CHARS * len(body)
        gap = max(gaps[len(gaps) // 2], 0.0) if gaps else 0.0
        return cls(size, height, lefts, x0, x1, gap, prose)

    def at_left_edge(self, line: Line) -> bool:
        """Whether the line starts where the lines of a paragraph start (lines that run to the right edge start
        there): a paragraph's last line, not a centred or flush-right one."""
        return any(abs(line.x0 - x) <= 0.5 * self.height for x in self.lefts)


def split_furniture(rows: list[Row], frame: Rect, rules: Sequence[Rect] = ()) -> tuple[list[Row], list[Row]]:
    """The rows of the body, and the furniture rows at the top and bottom of the page (frame: the page box;
    rules: the page's drawn horizontal and vertical rules, in the rows' frame)."""
    if len(rows) < MIN_ROWS:
        return rows, []
    body = BodyFacts.of(rows)
    if body is None or body.height <= 0:
        return rows, []
    across = [r for r in rules if r[3] - r[1] <= 0.3 * body.height
              and min(r[2], body.x1) - max(r[0], body.x0) >= RULE_SPAN * (body.x1 - body.x0)]
    if across:
        verticals = [v for v in rules if v[2] - v[0] <= 2 < v[3] - v[1]]
        across = [r for r in across if not _boxed(r, verticals)]
    top = max(_peel(rows, body, frame, from_top=True), _ruled_off(rows, body, frame, across, from_top=True))
    rest = rows[top:][::-1]
    bottom = max(_peel(rest, body, frame, from_top=False), _ruled_off(rest, body, frame, across, from_top=False))
    if not top and not bottom:
        return rows, []
    return rows[top:len(rows) - bottom], rows[:top] + rows[len(rows) - bottom:]


def _peel(rows: list[Row], body: BodyFacts, frame: Rect, from_top: bool) -> int:
    """How many rows from this end of the page (rows listed from that end) are furniture."""
    page_height = frame[3] - frame[1]
    candidates = rows[:max(0, min(MAX_ROWS, len(rows) - 2))]
    found: list[Kind | None] = []
    for index, row in enumerate(candidates):
        middle = (row.y0 + row.y1) / 2
        depth = frame[3] - middle if from_top else middle - frame[1]
        kind = row_kind(row, body, at_foot=not from_top) if depth <= BAND * page_height else None
        if kind is not None and _numbered(row) and (_folio_column(row, rows[index + 1:], body)
                                                     or (index and len(row.lines) == 1)):
            kind = None  # a table of contents, a numeric table, or axis labels; a lone folio is outermost
        found.append(kind)
    _beyond_folio(candidates, found, body, at_foot=not from_top)
    kinds: list[Kind] = []
    for kind in found:
        if kind is None or (kind is Kind.LONE and kinds):
            break
        kinds.append(kind)
        if kind is Kind.LONE:
            break
    for k in range(len(kinds), 0, -1):
        outer, inner = rows[k - 1], rows[k]
        gap = outer.y0 - inner.y1 if from_top else inner.y0 - outer.y1
        if gap >= body.gap + (LONE_GAP if Kind.LONE in kinds[:k] else MIN_GAP) * body.height:
            return k
        if not from_top and _display_folio(outer, body) and gap >= body.gap - 0.25 * body.height:
            return k  # set off by its type, not by space
    return 0


def _ruled_off(rows: list[Row], body: BodyFacts, frame: Rect, rules: list[Rect], from_top: bool) -> int:
    """How many rows at this end (rows listed from it) a rule across the body sets off: a running head over
    a rule, a footer under one. The rule may be drawn or typed as a row of underscores. A table's header has
    a rule above it too (and its last row one below), so a rule on the outer side means no furniture."""
    page_height = frame[3] - frame[1]
    reach = RULE_REACH * body.height
    for k in range(1, min(MAX_ROWS, len(rows) - 2) + 1):
        outer, inner = rows[k - 1], rows[k]
        middle = (outer.y0 + outer.y1) / 2
        if (frame[3] - middle if from_top else middle - frame[1]) > BAND * page_height:
            return 0
        if not all(len(row.lines) <= 2 and all(_short(line.text) and not _kept(line, body) for line in row.lines)
                   for row in rows[:k]):
            return 0  # a row of three cells or more over a rule is a table's header
        edge = outer.y0 if from_top else outer.y1  # the side of the outer rows facing the body
        if _typed_rule(inner, body) and abs((inner.y1 if from_top else inner.y0) - edge) <= reach:
            return k + 1
        far = rows[0].y1 if from_top else rows[0].y0
        below = [r for r in rules if abs(r[1] - edge) <= reach and not _underline(r, outer)
                 and (inner.y1 <= r[1] <= middle if from_top else middle <= r[1] <= inner.y0)]
        beyond = [r for r in rules if abs(r[1] - far) <= reach and (r[1] >= far if from_top else r[1] <= far)]
        if below and not beyond:
            return k
    return 0


def _boxed(rule: Rect, verticals: list[Rect]) -> bool:
    """Whether a horizontal rule is the edge of a box (a vertical rule meets one of its ends): a frame
    round a formula or a table, which sets nothing off from the body."""
    return any(v[1] - 2 <= rule[1] <= v[3] + 2
               and (abs(v[0] - rule[0]) <= 2 or abs(v[2] - rule[2]) <= 2) for v in verticals)


def _underline(rule: Rect, row: Row) -> bool:
    """Whether the rule underlines one line of the row (a link, an emphasis): its ends are that line's."""
    return any(abs(rule[0] - line.x0) <= 0.5 * line.height and abs(rule[2] - line.x1) <= 0.5 * line.height
               for line in row.lines)


def _typed_rule(row: Row, body: BodyFacts) -> bool:
    """A row typed as a rule across the body. Not in a monospaced face: preformatted text underlines its
    own headings with '~~~~' or '----'."""
    line = row.lines[0]
    return (len(row.lines) == 1 and not line.mono and bool(_TEXT_RULE.match(line.text))
            and line.x1 - line.x0 >= RULE_SPAN * (body.x1 - body.x0))


def _beyond_folio(rows: list[Row], kinds: list[Kind | None], body: BodyFacts, at_foot: bool) -> None:
    """Short rows further out than a folio row, set small or with a shape of their own, are furniture too
    (the publisher's line under the page number; a plain line there is body text beyond a label that only
    looked like a folio, 'Definition 17'); `kinds` is updated in place."""
    folio = next((i for i in range(len(rows) - 1, 0, -1) if kinds[i] is Kind.MARKED and _folio_row(rows[i], at_foot)), None)
    for i in range(folio or 0):
        if kinds[i] is None and all(_short(line.text) and not _kept(line, body)
                                    and (line.size <= SMALL * body.size or _PATTERNS.search(line.text))
                                    for line in rows[i].lines):
            kinds[i] = Kind.MARKED


def _display_folio(row: Row, body: BodyFacts) -> bool:
    """A page number joined to its running foot, set larger or smaller than the body: its type sets it off."""
    return _folio_and_foot(row) and not SMALL * body.size < row.lines[0].size < LARGE * body.size


def _folio_and_foot(row: Row) -> bool:
    """The row is one line: a page number and its running foot (FOLIO_AND_FOOT)."""
    return len(row.lines) == 1 and bool(FOLIO_AND_FOOT.match(row.lines[0].text))


def _folio_row(row: Row, at_foot: bool) -> bool:
    return _numbered(row) or (at_foot and any(FOLIO_AND_FOOT.match(line.text) for line in (row.lines[0], row.lines[-1])))


def _numbered(row: Row) -> bool:
    return bool(PAGE_NUMBER.match(row.lines[0].text) or PAGE_NUMBER.match(row.lines[-1].text))


def _folio_column(row: Row, others: list[Row], body: BodyFacts) -> bool:
    """Whether other rows end or start with a number aligned with this row's: a column of numbers, no folio."""
    ends = [line for line in (row.lines[0], row.lines[-1]) if PAGE_NUMBER.match(line.text)]
    aligned = 0
    for other in others:
        for line in (other.lines[0], other.lines[-1]):
            if PAGE_NUMBER.match(line.text) and any(abs(line.x1 - end.x1) <= body.height
                                                    or abs(line.x0 - end.x0) <= body.height for end in ends):
                aligned += 1
                break
    return aligned >= 2


def row_kind(row: Row, body: BodyFacts, at_foot: bool = False) -> Kind | None:
    """Whether a margin row looks like furniture, and why; None for a row that may be body text.

    `at_foot`: the row is at the foot of the page, where a page number joined to a running foot in display
    type is furniture (a heading does not end a page)."""
    lines = row.lines
    if at_foot and _folio_and_foot(row) and _short(lines[0].text) and not (
            _CAPTION.match(lines[0].text) or _NOTE.match(lines[0].text) or _footnote(lines[0])):
        return Kind.MARKED
    if len(lines) == 1 and ARTICLE_FOLIO.search(lines[0].text) and _short(lines[0].text) and not (
            _CAPTION.match(lines[0].text) or _footnote(lines[0])):
        return Kind.MARKED  # whatever its type: a running title is no heading
    if any(_kept(line, body) for line in lines if len(lines) == 1 or not PAGE_NUMBER.match(line.text)):
        return None  # a page number set large beside its running foot is no title; a big number alone may be
    numbers = [line for line in lines if PAGE_NUMBER.match(line.text)]
    others = [line for line in lines if not PAGE_NUMBER.match(line.text)]
    if not all(_short(line.text) for line in others):
        return None
    if numbers and (lines[0] in numbers or lines[-1] in numbers):
        return Kind.MARKED  # a folio at the outer end: the rest of the row is its running head
    if all(_PATTERNS.search(line.text) or (body.prose and line.size <= SMALL * body.size) for line in others) and (
            len(lines) > 1 or not body.at_left_edge(lines[0]) or _PATTERNS.search(lines[0].text)):
        return Kind.MARKED
    line = lines[0]
    if (body.prose and len(lines) == 1 and len(line.text.split()) <= LONE_MAX_WORDS and line.size < LARGE * body.size
            and not line.bold and not body.at_left_edge(line) and sum(ch.isalnum() for ch in line.text) >= 2):
        return Kind.LONE
    return None


def _kept(line: Line, body: BodyFacts) -> bool:
    """Lines furniture rules must never take: titles and headings, captions, footnotes."""
    if line.size >= LARGE * body.size and line.bold:
        return True
    if line.size >= 1.3 * body.size and not _URL_ONLY.match(line.text):
        return True
    return bool(_CAPTION.match(line.text) or _NOTE.match(line.text)) or _footnote(line)


def _footnote(line: Line) -> bool:
    """A line opening with a footnote mark: a symbol, or a number raised or set smaller than the text after it."""
    if _FOOTNOTE_SYMBOL.match(line.text):
        return True
    if len(line.spans) < 2:
        return False
    mark, text = line.spans[0], line.spans[1]
    if not (len(mark.text) <= 3 and mark.text.isdigit()):
        return False
    return mark.size < 0.85 * text.size or mark.y0 > text.y0 + 0.25 * text.height


def _short(text: str) -> bool:
    """Few words, and not a sentence of running text."""
    words = text.split()
    if len(words) > MAX_WORDS or len(text) > MAX_CHARS:
        return False
    lower = sum(word[:1].islower() for word in words)
    return not (len(words) >= 6 and _SENTENCE_END.search(text) and lower >= 0.5 * len(words))


def page_x_range(span: Span) -> tuple[float, float]:
    """A span's horizontal extent on the page, whatever its orientation (undoes spans._to_frame)."""
    if span.orient == 1:
        return span.y0, span.y1
    if span.orient == 2:
        return -span.x1, -span.x0
    if span.orient == 3:
        return -span.y1, -span.y0
    return span.x0, span.x1


def in_side_margin(spans: list[Span], body: BodyFacts) -> bool:
    """Whether text set across the main direction lies wholly beside the body block: a stamp in the margin."""
    ranges = [page_x_range(span) for span in spans]
    return all(x1 <= body.x0 for _, x1 in ranges) or all(x0 >= body.x1 for x0, _ in ranges)
