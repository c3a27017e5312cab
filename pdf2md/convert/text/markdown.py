"""Ordered lines to Markdown blocks: paragraphs, headings, lists, code and tables."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pdf2md.convert.text.layout import Line
from pdf2md.convert.text.tables import Table

LIGATURES = str.maketrans({"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"})
SOFT_HYPHENS = ("\x02", "\ufffe")  # pdfium's marks for a hyphen it judged to be a line-end hyphenation
PARAGRAPH_GAP = 0.45
"""A vertical gap larger than this many line heights starts a new block."""
HEADING_RATIO = 1.15
"""A block this much larger than the body text is a heading."""
MAX_HEADING_CHARS = 150
MAX_HEADING_LINES = 3

_BULLET = re.compile(r"^([•●▪◦○■□►▸‣⁃∙·*–\x80-\x9f\uf000-\uf0ff-])\s*")  # symbol-font bullets
_NUMBERED = re.compile(r"^(\(?(\d{1,3}|[a-z]|[ivx]{1,4})[.)])\s+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?:;]['\")\]]?$")
_EMPHATIC_FONT = re.compile(r"bold|black|heavy|semibold|demi|medium|italic|oblique", re.IGNORECASE)
"""A face that sets a line apart from body text: a heading at body size is often only this."""


@dataclass
class DocStyle:
    """Font statistics of the whole document: what body text looks like, which sizes are headings."""

    body_size: float = 10.0
    heading_sizes: list[float] = field(default_factory=list)
    mostly_mono: bool = False
    body_font: str = ""

    @classmethod
    def from_lines(cls, lines: Iterable[Line]) -> DocStyle:
        sizes: Counter[float] = Counter()
        fonts: Counter[str] = Counter()
        mono = chars = 0
        for line in lines:
            n = len(line.text)
            sizes[round(line.size * 2) / 2] += n
            fonts[line.font] += n
            chars += n
            mono += n * line.mono
        if not sizes:
            return cls()
        body = sizes.most_common(1)[0][0]
        larger = sorted((s for s in sizes if s >= body * HEADING_RATIO), reverse=True)
        return cls(body_size=body, heading_sizes=larger, mostly_mono=mono > 0.5 * chars,
                   body_font=fonts.most_common(1)[0][0])

    def emphatic(self, line: Line) -> bool:
        """Bold, or set in another face than body text that is itself bold, italic or medium."""
        return line.bold or (bool(line.font) and line.font != self.body_font and bool(_EMPHATIC_FONT.search(line.font))
                             and not _EMPHATIC_FONT.search(self.body_font))

    def heading_level(self, size: float, bold: bool) -> int:
        """1.. for headings by size rank (at most 3 levels from size), then bold body text; 0 otherwise."""
        rounded = round(size * 2) / 2
        if rounded >= self.body_size * HEADING_RATIO and rounded in self.heading_sizes:
            return min(self.heading_sizes.index(rounded) + 1, 3)
        if bold and rounded >= self.body_size * 0.95:
            return min(len([s for s in self.heading_sizes if s > rounded]) + 1, 4)
        return 0


@dataclass
class Block:
    lines: list[Line]


def render_page(items: Sequence[Line | Table], style: DocStyle) -> str:
    """A page's items, already in reading order, as Markdown blocks separated by blank lines."""
    out: list[str] = []
    for block in _blocks(items):
        text = block.markdown() if isinstance(block, Table) else _render_block(block, style)
        if text.strip():
            out.append(text)
    return "\n\n".join(out)


def _blocks(items: Sequence[Line | Table]) -> list[Block | Table]:
    blocks: list[Block | Table] = []
    for item in items:
        if isinstance(item, Table):
            blocks.append(item)
        elif blocks and isinstance(blocks[-1], Block) and _continues(blocks[-1], item):
            blocks[-1].lines.append(item)
        else:
            blocks.append(Block([item]))
    return blocks


def _continues(block: Block, line: Line) -> bool:
    """Whether a line carries on the block above it rather than starting a new one."""
    prev = block.lines[-1]
    height = min(prev.height, line.height)
    gap = prev.y0 - line.y1
    if gap > PARAGRAPH_GAP * height or gap < -0.5 * height:
        return False
    if min(prev.x1, line.x1) <= max(prev.x0, line.x0):
        return False
    if prev.mono != line.mono or prev.bold != line.bold or abs(prev.size - line.size) > 0.1 * max(prev.size, line.size):
        return False
    if prev.font and line.font and prev.font != line.font and len(block.lines) == 1:
        return False  # a one-line block in its own face (an italic run-in heading) ends where the face changes
    if prev.mono:
        return True
    if _list_marker(line.text):
        return False
    first = block.lines[0]
    if _list_marker(first.text):
        return line.x0 > first.x0 + 0.3 * height
    if line.x0 > prev.x0 + 1.0 * height and len(block.lines) > 1:
        return False
    right = max(ln.x1 for ln in block.lines)
    return not (_SENTENCE_END.search(prev.text) and prev.x1 < max(right, line.x1) - 3 * height)


def _list_marker(text: str) -> re.Match[str] | None:
    return _BULLET.match(text) or _NUMBERED.match(text)


def _render_block(block: Block, style: DocStyle) -> str:
    lines = block.lines
    if lines[0].mono and not style.mostly_mono and len(lines) > 1:
        return _code(lines)
    text = join_lines([ln.text for ln in lines])
    marker = _list_marker(text)
    level = _heading_level(lines, text, style) if not marker or _numbered_heading(lines, text, style) else 0
    if level:
        return "#" * level + " " + text
    if marker:
        rest = text[marker.end():]
        if _BULLET.match(text):
            return "- " + rest
        label = marker.group(1)
        return f"{label[:-1]}. {rest}" if label[:-1].isdigit() and not label.startswith("(") else f"- {label} {rest}"
    return text


def _numbered_heading(lines: list[Line], text: str, style: DocStyle) -> bool:
    """'1. Introduction' or '(2) Scope' on a line of its own in an emphatic face: a heading, not a list item."""
    return (len(lines) == 1 and not _BULLET.match(text) and style.emphatic(lines[0])
            and not _SENTENCE_END.search(text) and len(text) <= MAX_HEADING_CHARS // 2)


def _heading_level(lines: list[Line], text: str, style: DocStyle) -> int:
    if len(lines) > MAX_HEADING_LINES or len(text) > MAX_HEADING_CHARS or sum(ch.isalpha() for ch in text) < 2:
        return 0
    size = max(ln.size for ln in lines)
    bold = all(style.emphatic(ln) for ln in lines)
    if not bold and size < style.body_size * HEADING_RATIO:
        return 0
    if bold and size < style.body_size * HEADING_RATIO and (text.endswith(".") or len(text) > 100):
        return 0
    return style.heading_level(size, bold)


def _code(lines: list[Line]) -> str:
    """Monospace lines fenced, with their indentation in character widths."""
    left = min(ln.x0 for ln in lines)
    widths = [(ln.x1 - ln.x0) / len(ln.text) for ln in lines if ln.text]
    char = sorted(widths)[len(widths) // 2] or 1.0
    body = "\n".join(" " * round((ln.x0 - left) / char) + ln.text.translate(LIGATURES) for ln in lines)
    return f"```\n{body}\n```"


def join_lines(texts: Sequence[str]) -> str:
    """Lines of one paragraph as one string: hyphenations undone, ligatures spelled out."""
    out = ""
    for text in texts:
        if not out:
            out = text
        elif out.endswith(SOFT_HYPHENS):
            out = out[:-1] + text
        elif out.endswith("-") and len(out) > 1 and out[-2].isalpha() and text[:1].islower():
            out = out[:-1] + text
        else:
            out += " " + text
    for mark in SOFT_HYPHENS:
        out = out.replace(mark, "-")
    return out.translate(LIGATURES)
