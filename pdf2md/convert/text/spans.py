"""A page's text layer as spans (runs of non-space characters) with boxes and font facts.

Per-character ctypes calls dominate the cost of a text layer, so the page text is read in one call
and only each span's first and last characters are measured; font facts are cached per text object.
"""

from __future__ import annotations

import ctypes
import math
import re
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as raw

_WORD = re.compile(r"\S+")
_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demi|[,-]b$|cmbx|\.b$", re.IGNORECASE)
_MONO_NAME = re.compile(r"courier|mono|consol|cmtt|menlo|code|typewriter|lucidaconsole|sfmono", re.IGNORECASE)
_FIXED_PITCH_FLAG = 1
INVISIBLE_RENDER_MODE = 3
MIN_FONT_SIZE = 2.0


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


@dataclass(frozen=True, slots=True)
class PageSpans:
    spans: list[Span]
    text: str
    width: float
    height: float


def read_page(doc: pdfium.PdfDocument, index: int) -> PageSpans:
    """Every span of one page, plus the page's raw text (for the router's character statistics)."""
    page = doc[index]
    try:
        width, height = page.get_size()
        textpage = raw.FPDFText_LoadPage(page.raw)
        try:
            text = _page_text(textpage)
            spans = _spans(textpage, text)
        finally:
            raw.FPDFText_ClosePage(textpage)
    finally:
        page.close()
    return PageSpans(spans, text, width, height)


def _page_text(textpage: raw.FPDF_TEXTPAGE) -> str:
    """All characters in one call; per-character reads only where pdfium's text and char lists differ."""
    n = raw.FPDFText_CountChars(textpage)
    if n <= 0:
        return ""
    buffer = (ctypes.c_ushort * (n + 1))()
    raw.FPDFText_GetText(textpage, 0, n, buffer)
    text = bytes(buffer)[: 2 * n].decode("utf-16-le", errors="replace")
    if len(text) == n and not any(0xD800 <= u <= 0xDFFF for u in buffer[:n]):
        return text
    return "".join(chr(raw.FPDFText_GetUnicode(textpage, i) or 0xFFFD) for i in range(n))


def _spans(textpage: raw.FPDF_TEXTPAGE, text: str) -> list[Span]:
    rect = raw.FS_RECTF()
    rect_ref = ctypes.byref(rect)
    fonts: dict[int, FontFacts] = {}
    spans: list[Span] = []
    for match in _WORD.finditer(text):
        first, last = match.start(), match.end() - 1
        raw.FPDFText_GetLooseCharBox(textpage, first, rect_ref)
        ax0, ax1, ay0, ay1 = rect.left, rect.right, rect.bottom, rect.top
        raw.FPDFText_GetLooseCharBox(textpage, last, rect_ref)
        bx0, bx1, by0, by1 = rect.left, rect.right, rect.bottom, rect.top
        font = _font_facts(textpage, first, fonts)
        x0, y0, x1, y1 = _to_frame(min(ax0, bx0), min(ay0, by0, ay1, by1), max(ax1, bx1), max(ay0, ay1, by0, by1), font.orient)
        size = font.size if font.size >= MIN_FONT_SIZE else y1 - y0  # text scaled by its matrix reports size 1
        spans.append(Span(match.group(), x0, y0, x1, y1, size, font.bold, font.mono, font.invisible, font.orient))
    return spans


def _quarter_turns(angle: float) -> int:
    """pdfium's character angle (radians, -1 when unknown) rounded to a multiple of 90 degrees."""
    if angle < 0:
        return 0
    return round(angle / (math.pi / 2)) % 4


def _to_frame(x0: float, y0: float, x1: float, y1: float, orient: int) -> tuple[float, float, float, float]:
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
    return FontFacts(size, bold, mono, invisible, orient)


def _font_name(font: raw.FPDF_FONT) -> str:
    buffer = ctypes.create_string_buffer(128)
    n = raw.FPDFFont_GetBaseFontName(font, buffer, len(buffer))
    return buffer.value.decode("latin-1", errors="replace") if n else ""
