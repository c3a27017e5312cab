"""A page's text layer as spans (runs of non-space characters) with boxes and font facts.

Per-character ctypes calls dominate the cost of a text layer, so the page text is read in one call
and only each span's first and last characters are measured; font facts are cached per text object.
"""

from __future__ import annotations

import ctypes
import math
import re
import unicodedata
from dataclasses import dataclass, field

import pypdfium2 as pdfium
import pypdfium2.raw as raw

_WORD = re.compile(r"\S+")
_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demi|[,-]b$|cmbx|sfbx|\.b$|-bd$", re.IGNORECASE)  # cmbx/sfbx: TeX bold
_MONO_NAME = re.compile(r"courier|mono|consol|cmtt|menlo|code|typewriter|lucidaconsole|sfmono", re.IGNORECASE)
_FIXED_PITCH_FLAG = 1
INVISIBLE_RENDER_MODE = 3
MIN_FONT_SIZE = 2.0
MAX_RULE_THICKNESS = 3.0
"""A path thinner than this (points) in one direction is a rule: a table border or a separator."""
MIN_RULE_LENGTH = 4.0
TALL_GLYPH = 2.0
"""A lone glyph whose box is this many times its font size tall reports its font's box, not its own."""
DESCENT = 0.2
"""Share of the font size below the baseline, for a glyph box rebuilt from its origin."""
_CASE_JOIN = re.compile(r"[a-z][A-Z]")
SPACE_GAP = 0.1
"""A gap this many character heights wider than usual between two letters is a word space (layout uses it too)."""
LEADER_DOTS = 2
"""Dots in a row (". . . ." or "....") that lead the eye along a table row to its figures (the label's own
trailing dots count)."""
FIGURE = re.compile(r"[-+(]?[$€£]?\d[\d.,]*%?\)?|[-–—xX]|\(X\)|\(NA\)|NA|\(Z\)|\(D\)|\(S\)")
"""A table entry that is a figure, or one of the signs statistical tables put where a figure is missing."""
_DOTS = r"[.\u2026\u00b7\u2024\u2025]+"
"""Full stops, ellipses, middle dots and leader dots."""
_LEADER = re.compile(_DOTS)
_TRAILING_DOTS = re.compile(_DOTS + "$")
LONG_RUN = 16
"""Runs this long are measured letter by letter: words run together where a line set its spaces as gaps."""
_RTL = re.compile(r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
_ALEFS = frozenset("\u0622\u0623\u0625\u0627")
_LAM = "\u0644"


@dataclass(slots=True)
class Span:
    """A run of characters between spaces, in a frame where its text runs left to right, y up."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    size: float
    bold: bool
    mono: bool
    invisible: bool
    orient: int  # quarter turns of the text as pdfium measures them (clockwise)
    spaced: bool = False  # a space of the PDF's own (not one pdfium generated) comes before it
    font: str = ""  # base font name without a subset prefix: tells headings set in another face
    generated: bool = False  # a space pdfium generated (judging by the gap) comes before it

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass(frozen=True, slots=True)
class FontFacts:
    """What one text object says about all of its characters."""

    size: float
    bold: bool
    mono: bool
    invisible: bool
    orient: int
    name: str = ""


Rect = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class PageSpans:
    spans: list[Span]
    text: str
    width: float
    height: float
    rules: list[Rect] = field(default_factory=list)  # thin paths (x0, y0, x1, y1): where ruled tables are
    box: Rect | None = None
    """The visible page (media box within crop box) in the coordinates of the text: where its margins are."""
    rotation: int = 0
    """The page's /Rotate in degrees clockwise (0, 90, 180, 270): how it is displayed."""

    def frame(self, orient: int) -> Rect:
        """The page box in the frame of text set in the given orientation (see to_frame)."""
        box = self.box or (0.0, 0.0, self.width, self.height)
        return to_frame(*box, orient)


def read_page(doc: pdfium.PdfDocument, index: int) -> PageSpans:
    """Every span of one page, plus the page's raw text (for the router's character statistics) and rules."""
    page = doc[index]
    try:
        width, height = page.get_size()
        textpage = raw.FPDFText_LoadPage(page.raw)
        try:
            text = _page_text(textpage)
            spans = _spans(textpage, text)
        finally:
            raw.FPDFText_ClosePage(textpage)
        rules = _rules(page) if spans else []
        box = page.get_bbox()
        rotation = page.get_rotation()
    finally:
        page.close()
    return PageSpans(spans, text, width, height, rules, box, rotation)


def _rules(page: pdfium.PdfPage) -> list[Rect]:
    """Horizontal and vertical rules drawn as paths: thin lines and thin rectangles, and the edges of boxes.

    Only bounds are read (one call per path), so a curve or a diagonal inside a path counts by its box;
    that is why a path with many segments (an icon, a chart) is skipped.
    """
    rules: list[Rect] = []
    left, bottom, right, top = ctypes.c_float(), ctypes.c_float(), ctypes.c_float(), ctypes.c_float()
    for i in range(raw.FPDFPage_CountObjects(page.raw)):
        obj = raw.FPDFPage_GetObject(page.raw, i)
        if raw.FPDFPageObj_GetType(obj) != raw.FPDF_PAGEOBJ_PATH or raw.FPDFPath_CountSegments(obj) > 6:
            continue
        if not raw.FPDFPageObj_GetBounds(obj, left, bottom, right, top):
            continue
        x0, y0, x1, y1 = left.value, bottom.value, right.value, top.value
        if max(x1 - x0, y1 - y0) < MIN_RULE_LENGTH:
            continue
        if min(x1 - x0, y1 - y0) <= MAX_RULE_THICKNESS:
            rules.append((x0, y0, x1, y1))
        else:  # a box: its four edges
            rules += [(x0, y0, x1, y0), (x0, y1, x1, y1), (x0, y0, x0, y1), (x1, y0, x1, y1)]
    return rules


def _page_text(textpage: raw.FPDF_TEXTPAGE) -> str:
    """All characters in one call; per-character reads only where pdfium's text and char lists differ.

    GetText can leave characters out (it wrote fewer than asked: every later index would be off by
    one, words cut across lines), and a surrogate pair is two units for one character.
    """
    n = raw.FPDFText_CountChars(textpage)
    if n <= 0:
        return ""
    buffer = (ctypes.c_ushort * (n + 1))()
    written = raw.FPDFText_GetText(textpage, 0, n, buffer)
    text = bytes(buffer)[: 2 * n].decode("utf-16-le", errors="replace")
    if written == n + 1 and len(text) == n and not any(0xD800 <= u <= 0xDFFF for u in buffer[:n]):
        return text
    return "".join(map(_safe_chr, (raw.FPDFText_GetUnicode(textpage, i) for i in range(n))))


def _safe_chr(code: int) -> str:
    """A character, with lone surrogates and unknown codes (0) as U+FFFD."""
    return "\ufffd" if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF else chr(code)


def _spans(textpage: raw.FPDF_TEXTPAGE, text: str) -> list[Span]:
    rect = raw.FS_RECTF()
    fonts: dict[int, FontFacts] = {}
    spans: list[Span] = []
    for match in _WORD.finditer(text):
        first, last = match.start(), match.end() - 1
        word = match.group()
        if _RTL.search(word):
            word = _logical_clusters(textpage, word, first, rect)
        font = _font_facts(textpage, first, fonts)
        a = _char_box(textpage, first, rect)
        b = _char_box(textpage, last, rect) if last > first else a
        if last == first and font.orient == 0 and a[3] - a[1] > TALL_GLYPH * font.size >= MIN_FONT_SIZE:
            a = b = _on_baseline(textpage, first, a, font.size)
        vertical = font.orient % 2 == 1
        if _continuous(a, b, last - first + 1, vertical):
            pieces = [_make_span(word, a, b, font)]
            if not vertical and (len(word) >= LONG_RUN or _CASE_JOIN.search(word)):
                pieces = _split_at_spaces(textpage, word, first, rect, font) or pieces
        else:
            pieces = _split_span(textpage, word, first, rect, fonts, vertical)
        if first > 0 and text[first - 1] == " ":
            generated = bool(raw.FPDFText_IsGenerated(textpage, first - 1))
            pieces[0].spaced, pieces[0].generated = not generated, generated
        spans.extend(pieces)
    return without_leaders(spans)


def without_leaders(spans: list[Span]) -> list[Span]:
    """Spans with the dot leaders of table rows taken out ("Total . . . . . 11,062.6  1,540.0  9,522.6").

    A leader is only a way of drawing a gap: read as text, each dot became a word or a table column of its
    own, and the row's label ran into its figures. Removing it leaves the gap that tables are read from.
    A leader is LEADER_DOTS dots or more, the label's own trailing dots included ("Burglary. . . ."), with
    two figures or more after it on its line: prose does not put figures after an ellipsis, and a
    contents line ("Preface ...... xi") keeps its leader (one entry follows it; read as text the dots do
    no harm). The label loses its trailing dots with the leader (its full stop among them)."""
    kept: list[Span] = []
    i = 0
    while i < len(spans):
        j = i
        while j < len(spans) and _LEADER.fullmatch(spans[j].text) and _same_line(spans[j], spans[i]):
            j += 1
        if j == i:  # a word
            kept.append(spans[i])
            i += 1
            continue
        label = kept[-1] if kept and _same_line(kept[-1], spans[i]) else None
        trailing = _TRAILING_DOTS.search(label.text) if label is not None else None
        own = _dot_count(trailing.group()) if trailing and trailing.start() > 0 else 0
        if own + sum(_dot_count(span.text) for span in spans[i:j]) >= LEADER_DOTS and _figures_follow(spans, j):
            if label is not None and trailing is not None and own:
                kept[-1] = _cut(label, trailing.start())
        else:
            kept.extend(spans[i:j])
        i = j
    return _unspaced_leaders(kept)


def _unspaced_leaders(spans: list[Span]) -> list[Span]:
    """A leader set without spaces stays in its label's span ("Total.........."): cut it there."""
    out: list[Span] = []
    for k, span in enumerate(spans):
        trailing = _TRAILING_DOTS.search(span.text)
        if trailing and trailing.start() > 0 and _dot_count(trailing.group()) >= 3 and _figures_follow(spans, k + 1):
            span = _cut(span, trailing.start())
        out.append(span)
    return out


def _figures_follow(spans: list[Span], j: int) -> bool:
    """Whether spans[j] and the span after it are figures further along the line of spans[j - 1]."""
    return (0 < j and j + 1 < len(spans) and _follows_on_line(spans[j], spans[j - 1])
            and _follows_on_line(spans[j + 1], spans[j]) and all(FIGURE.fullmatch(spans[k].text) for k in (j, j + 1)))


def _dot_count(text: str) -> int:
    return sum(2 if ch == "\u2025" else 3 if ch == "\u2026" else 1 for ch in text)


def _same_line(span: Span, first: Span) -> bool:
    return span.orient == first.orient and min(span.y1, first.y1) - max(span.y0, first.y0) > 0.5 * min(span.height, first.height)


def _follows_on_line(span: Span, before: Span) -> bool:
    return _same_line(span, before) and span.x0 >= before.x1 - 0.5 * before.height


def _cut(span: Span, end: int) -> Span:
    """`span` up to character `end`, its box shortened in proportion (its characters were not measured)."""
    width = (span.x1 - span.x0) * end / len(span.text)
    return Span(span.text[:end], span.x0, span.y0, span.x0 + width, span.y1, span.size, span.bold, span.mono,
                span.invisible, span.orient, span.spaced, span.font, span.generated)


def _split_at_spaces(textpage: raw.FPDF_TEXTPAGE, word: str, start: int, rect: raw.FS_RECTF,
                     font: FontFacts) -> list[Span]:
    """A run where justified text moved words apart without any space character ('ChiefOperating',
    'andthefirm'): split where two letters stand clearly further apart than the run's letters usually do
    (letter-spaced text has wide gaps everywhere). Empty when there is nothing to split."""
    boxes = [_char_box(textpage, start + i, rect) for i in range(len(word))]
    gaps = [b[0] - a[2] for a, b in zip(boxes, boxes[1:])]
    usual = sorted(gaps)[len(gaps) // 2]
    height = max(b[3] - b[1] for b in boxes)
    cuts = [i + 1 for i, gap in enumerate(gaps) if gap - usual > SPACE_GAP * height]
    if not cuts:
        return []
    pieces = [_make_span(word[i:k], boxes[i], boxes[k - 1], font) for i, k in zip([0, *cuts], [*cuts, len(word)])]
    for piece in pieces[1:]:
        piece.spaced = True
    return pieces


def _on_baseline(textpage: raw.FPDF_TEXTPAGE, index: int, box: Rect, size: float) -> Rect:
    """A lone glyph's box cut to its font size about its baseline: a symbol font's bullet can report a box
    two or three lines tall (its font's ascent and descent), which puts it in the row above its text."""
    x, y = ctypes.c_double(), ctypes.c_double()
    if not raw.FPDFText_GetCharOrigin(textpage, index, ctypes.byref(x), ctypes.byref(y)):
        return box
    return box[0], y.value - DESCENT * size, box[2], y.value + (1 - DESCENT) * size


def _char_box(textpage: raw.FPDF_TEXTPAGE, index: int, rect: raw.FS_RECTF) -> tuple[float, float, float, float]:
    raw.FPDFText_GetLooseCharBox(textpage, index, ctypes.byref(rect))
    return rect.left, min(rect.bottom, rect.top), rect.right, max(rect.bottom, rect.top)


def _logical_clusters(textpage: raw.FPDF_TEXTPAGE, word: str, start: int, rect: raw.FS_RECTF) -> str:
    """Right-to-left ligatures pdfium reversed along with the line: a lam-alef glyph read as alef-lam,
    a mark before its base letter. Two characters of one glyph share one box; that tells them apart
    from a real alef-lam (the Arabic article), which is two glyphs."""
    chars = list(word)
    i = 0
    while i < len(chars) - 1:
        swapped = (chars[i] in _ALEFS and chars[i + 1] == _LAM) or (
            unicodedata.category(chars[i]) == "Mn" and unicodedata.category(chars[i + 1]) != "Mn")
        if swapped and _char_box(textpage, start + i, rect) == _char_box(textpage, start + i + 1, rect):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
            i += 1
        i += 1
    return "".join(chars)


def _continuous(a: tuple[float, float, float, float], b: tuple[float, float, float, float], n: int,
                vertical: bool = False) -> bool:
    """Whether a span's first and last characters could belong to one word: same line, plausible length."""
    if vertical:  # measure along the text: swap the axes
        a, b = (a[1], a[0], a[3], a[2]), (b[1], b[0], b[3], b[2])
    height = max(a[3] - a[1], b[3] - b[1], 0.1)
    width = max(a[2], b[2]) - min(a[0], b[0])
    return abs(a[1] - b[1]) < 0.5 * height and width <= (n + 1) * 1.2 * height


def _split_span(textpage: raw.FPDF_TEXTPAGE, word: str, start: int, rect: raw.FS_RECTF,
                fonts: dict[int, FontFacts], vertical: bool) -> list[Span]:
    """A run pdfium joined though its characters lie apart (streams out of order): measure each one."""
    boxes = [_char_box(textpage, start + i, rect) for i in range(len(word))]
    pieces: list[Span] = []
    begin = 0
    for i in range(1, len(word) + 1):
        if i == len(word) or not _continuous(boxes[i - 1], boxes[i], 2, vertical):
            pieces.append(_span(textpage, word[begin:i], start + begin, _union(boxes[begin:i]), boxes[i - 1], fonts))
            begin = i
    return pieces


def _union(boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def _span(textpage: raw.FPDF_TEXTPAGE, text: str, first: int, a: tuple[float, float, float, float],
          b: tuple[float, float, float, float], fonts: dict[int, FontFacts]) -> Span:
    return _make_span(text, a, b, _font_facts(textpage, first, fonts))


def _make_span(text: str, a: tuple[float, float, float, float], b: tuple[float, float, float, float],
               font: FontFacts) -> Span:
    x0, y0, x1, y1 = to_frame(min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]), font.orient)
    size = font.size if font.size >= MIN_FONT_SIZE else y1 - y0  # text scaled by its matrix reports size 1
    return Span(text, x0, y0, x1, y1, size, font.bold, font.mono, font.invisible, font.orient, font=font.name)


def _quarter_turns(angle: float) -> int:
    """pdfium's character angle (radians, -1 when unknown) rounded to a multiple of 90 degrees."""
    if angle < 0:
        return 0
    return round(angle / (math.pi / 2)) % 4


def to_frame(x0: float, y0: float, x1: float, y1: float, orient: int) -> Rect:
    """Rotate a box so text of the given orientation reads left to right with y up (pdfium turns clockwise)."""
    if orient == 0:
        return x0, y0, x1, y1
    if orient == 1:
        return -y1, x0, -y0, x1
    if orient == 2:
        return -x1, -y1, -x0, -y0
    return y0, -x1, y1, -x0


def _font_facts(textpage: raw.FPDF_TEXTPAGE, index: int, cache: dict[int, FontFacts]) -> FontFacts:
    """Size, weight, pitch and visibility of the text object holding a character, once per object."""
    obj = raw.FPDFText_GetTextObject(textpage, index)
    key = ctypes.cast(obj, ctypes.c_void_p).value or 0
    facts = cache.get(key)
    if facts is None:
        facts = _read_font_facts(textpage, index, obj)
        cache[key] = facts
    return facts


def _read_font_facts(textpage: raw.FPDF_TEXTPAGE, index: int, obj: raw.FPDF_PAGEOBJECT) -> FontFacts:
    size = raw.FPDFText_GetFontSize(textpage, index)
    orient = _quarter_turns(raw.FPDFText_GetCharAngle(textpage, index))
    if not obj:
        return FontFacts(size, False, False, False, orient)
    invisible = raw.FPDFTextObj_GetTextRenderMode(obj) == INVISIBLE_RENDER_MODE
    font = raw.FPDFTextObj_GetFont(obj)
    if not font:
        return FontFacts(size, False, False, invisible, orient)
    name = _font_name(font)
    weight = raw.FPDFFont_GetWeight(font)
    flags = raw.FPDFFont_GetFlags(font)
    bold = weight >= 600 or bool(_BOLD_NAME.search(name))
    mono = bool(flags & _FIXED_PITCH_FLAG) or bool(_MONO_NAME.search(name))
    return FontFacts(size, bold, mono, invisible, orient, name.split("+", 1)[-1])


def _font_name(font: raw.FPDF_FONT) -> str:
    buffer = ctypes.create_string_buffer(128)
    n = raw.FPDFFont_GetBaseFontName(font, buffer, len(buffer))
    return buffer.value.decode("latin-1", errors="replace") if n else ""
