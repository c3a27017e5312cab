"""Ordered lines to Markdown blocks: paragraphs, headings, lists, code and tables."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from pdf2md.convert.text.layout import Line
from pdf2md.convert.text.tables import Table

LIGATURES = str.maketrans({"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"})
SOFT_HYPHENS = ("\x02", "\ufffe")  # pdfium's marks for a hyphen it judged to be a line-end hyphenation
PARAGRAPH_GAP = 0.45
"""A vertical gap larger than this many line heights starts a new block, unless the text's own line
spacing is wider (then a gap must exceed that spacing by LEADING_SLACK)."""
LEADING_SLACK = 0.15
MAX_LEADING = 1.0
"""Line spacing measured wider than this many line heights is paragraph spacing, not leading."""
MIN_LEADING_SAMPLES = 3
HEADING_RATIO = 1.15
"""A block this much larger than the body text is a heading."""
BOLD_HEADING_RATIO = 0.95
"""A bold block at least this share of the body size can be a heading."""
MIN_PAGE_CHARS = 300
"""A page with this much text has a body size of its own (a brochure page set smaller than the rest)."""
SMALL_TITLE = 0.9
"""A title told by its shape alone is set at least this share of the body size (small capitals run smaller)."""
NUMBERED_TITLE = 0.5
"""...and one with a section number at least this share (small capitals measured by their lower-case size)."""
MAX_HEADING_CHARS = 150
MAX_HEADING_LINES = 3
CODE_GAP = 2.0
"""Monospace lines this many line heights apart (a blank line between them) belong to one listing."""
BLANK_CODE_LINE = 0.8
"""A gap this many line heights wide between two lines of a listing is a blank line of the code."""

_BULLET = re.compile(r"^([•●▪◦○■□►▸‣⁃∙·\x80-\x9f\uf000-\uf0ff]\s*|[*–-]\s+)")  # symbol-font bullets
"""A bullet glyph, or a dash or asterisk before a space ('-5 °C', '-2-5 Scope' are not list items)."""
_NUMBERED = re.compile(r"^(\(?(\d{1,3}|[a-z]|[ivx]{1,4})[.)])\s+", re.IGNORECASE)
_LETTER_LABEL = re.compile(r"^\(?([a-z]|[ivx]{1,4})\.\s", re.IGNORECASE)
"""'J. Smith' or 'a. first': a letter with a full stop is an initial unless a neighbouring block is an item too."""
_SENTENCE_END = re.compile(r"[.!?:;]['\")\]]?$")
_CAPTION = re.compile(r"^(fig(ure)?|tab(le)?|example|listing|exhibit|chart|scheme)\.?\s*[A-Z]?\d+([-.:]\d+)*\b", re.I)
"""'Figure 1-2 ...', 'Table 3.1: ...': a caption in bold is not a heading."""
_CONTACT = re.compile(
    r"\S@\S+\.\w|https?://|\bwww\.|\b(tel|phone|fax|mobile|e-?mail)\b\.?\s*[:+(\d]|\+?\(?\d{1,4}\)?[\s.-]\d{2,4}[\s.-]\d{3,4}\b"
    r"|\b[A-Z]{2}\s+\d{5}(-\d{4})?\b|^\d{1,5}\s+\w+(\s\w+)*\s(street|st\.|avenue|ave\.?|road|rd\.|boulevard|blvd\.?"
    r"|drive|lane|suite|floor|place|square)\b|,$", re.IGNORECASE)
"""E-mail addresses, web sites, phone numbers and postal addresses: cover-page details, never headings."""
_DATE_LINE = re.compile(
    r"^((mon|tue|wed|thu|fri|sat|sun)\w*\.?,?\s+)?(\d{1,2}\.?\s+)?(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
    r"(\s+\d{1,2}(st|nd|rd|th)?,?)?(\s+\d\d?:\d\d(:\d\d)?)?\s+\d{4}$|^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}$", re.IGNORECASE)
"""A date on a line of its own ('October 14, 1998', '5 May 2023', 'Tue Jun 5 22:15:55 2001', '2024-03-26')."""
_MULTI_NUMBER = re.compile(r"^\d{1,2}(\.\d{1,2}){1,3}\.?\s+(?=[A-Z\u00c0-\u024f])")
"""'2.3 Methods', '4.1.2. Data': a section number of several levels before a capitalised title."""
_SINGLE_NUMBER = re.compile(r"^\d{1,2}\.?\s+(?=[A-Z])")
_ROMAN_NUMBER = re.compile(r"^[IVX]{1,5}\.\s+(?=[A-Z])")
_KEYWORD_NUMBER = re.compile(r"^(Article|Section|Chapter|Part|Appendix|Annex|Schedule|ARTICLE|SECTION|CHAPTER|PART"
                             r"|APPENDIX|ANNEX|SCHEDULE)\s+(\d{1,3}|[IVXLC]{1,6}|[A-Z])\b")
"""'Article 5', 'CHAPTER IV', 'Appendix B': a division of a legal text or a book."""
_PROSE_SENTENCE = re.compile(r"[a-z\u00df-\u024f)\]][.!?]['\")\u201d]?(\s|$)")
"""A word ending a sentence: running text has them, listings and lists of terms seldom do."""
MAX_TITLE_WORDS = 12
SHORT_TITLE_WORDS = 6
"""A title with a single-level number ('3 Results') is this short: longer, it reads as a numbered list item."""
_MINOR_WORD = re.compile(r"^(a|an|and|as|at|but|by|for|from|in|into|of|on|or|the|to|via|with|vs\.?|de|la|le|des|du|et"
                         r"|und|der|die|das|von)$", re.IGNORECASE)
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")
"""A '<' that Markdown would read as the start of an HTML tag ('@<Clear the arrays@>'): written as an entity."""
_EMPHATIC_FONT = re.compile(r"bold|black|heavy|semibold|demi|medium|italic|oblique", re.IGNORECASE)
"""A face that sets a line apart from body text: a heading at body size is often only this."""


@dataclass
class DocStyle:
    """Font statistics of the whole document: what body text looks like, which sizes are headings."""

    body_size: float = 10.0
    heading_sizes: list[float] = field(default_factory=list)
    mostly_mono: bool = False
    body_font: str = ""
    leading: dict[float, float] = field(default_factory=dict)
    """Usual gap between the lines of a paragraph, in line heights, by rounded font size."""
    page_body: float = 0.0
    """The current page's own body size where it is smaller than the document's (0: none)."""

    @classmethod
    def from_lines(cls, lines: Iterable[Line]) -> DocStyle:
        sizes: Counter[float] = Counter()
        fonts: Counter[str] = Counter()
        gaps: dict[float, Counter[float]] = {}
        mono = chars = 0
        prev: Line | None = None
        for line in lines:
            if prev is not None:
                _count_gap(gaps, prev, line)
            prev = line
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
                   body_font=fonts.most_common(1)[0][0], leading=_usual_gaps(gaps))

    def on_page(self, lines: Sequence[Line]) -> DocStyle:
        """This style with the page's own line spacing and body size where the page has enough text to tell."""
        gaps: dict[float, Counter[float]] = {}
        sizes: Counter[float] = Counter()
        for prev, line in zip(lines, lines[1:]):
            _count_gap(gaps, prev, line)
        for line in lines:
            sizes[round(line.size, 1)] += len(line.text)
        page = _usual_gaps(gaps)
        body = sizes.most_common(1)[0][0] if sum(sizes.values()) >= MIN_PAGE_CHARS else 0.0
        return replace(self, leading={**self.leading, **page}, page_body=body if body < self.body_size else 0.0)

    def paragraph_gap(self, size: float) -> float:
        """The gap, in line heights, beyond which the next line starts a new block."""
        leading = self.leading.get(round(size * 2) / 2, 0.0)
        return max(PARAGRAPH_GAP, leading + LEADING_SLACK)

    def emphatic(self, line: Line) -> bool:
        """Bold, or set in another face than body text that is itself bold, italic or medium."""
        return line.bold or (bool(line.font) and line.font != self.body_font and bool(_EMPHATIC_FONT.search(line.font))
                             and not _EMPHATIC_FONT.search(self.body_font))

    @property
    def base_size(self) -> float:
        """The body size headings stand out from: the page's own where it is smaller."""
        return self.page_body or self.body_size

    def heading_level(self, size: float, bold: bool) -> int:
        """1.. for headings by size rank (at most 3 levels from size), then text larger than the page's
        body or bold; 0 otherwise."""
        rounded = round(size * 2) / 2
        if rounded in self.heading_sizes:
            return min(self.heading_sizes.index(rounded) + 1, 3)
        below = min(len([s for s in self.heading_sizes if s > rounded]) + 1, 4)
        if rounded > self.body_size and rounded >= self.base_size * HEADING_RATIO:
            return below
        if bold and size >= self.base_size * BOLD_HEADING_RATIO:
            return below
        return 0


def _count_gap(gaps: dict[float, Counter[float]], prev: Line, line: Line) -> None:
    """Count the gap between two lines if they look like consecutive lines of one paragraph: same size
    and face, one under the other, the upper one long and reaching as far right (a wrapped line)."""
    size = round(prev.size * 2) / 2
    height = min(prev.height, line.height)
    if (height <= 0 or size != round(line.size * 2) / 2 or prev.font != line.font or prev.bold != line.bold
            or prev.x1 < line.x1 - 0.5 * height or prev.x1 - prev.x0 < 8 * height
            or min(prev.x1, line.x1) <= max(prev.x0, line.x0)):
        return
    gap = (prev.y0 - line.y1) / height
    if 0 <= gap <= MAX_LEADING:
        gaps.setdefault(size, Counter())[round(gap * 20) / 20] += 1


def _usual_gaps(gaps: dict[float, Counter[float]]) -> dict[float, float]:
    """The most common gap per size, where it was seen often enough to trust."""
    out = {}
    for size, counts in gaps.items():
        gap, n = counts.most_common(1)[0]
        if n >= MIN_LEADING_SAMPLES:
            out[size] = gap
    return out


@dataclass
class Block:
    lines: list[Line]


def render_page(items: Sequence[Line | Table], style: DocStyle) -> str:
    """A page's items, already in reading order, as Markdown blocks separated by blank lines."""
    return "\n\n".join(text for _, text in render_blocks(items, style))


def render_blocks(items: Sequence[Line | Table], style: DocStyle) -> list[tuple[Block | Table, str]]:
    """A page's items, already in reading order, as its Markdown blocks, each beside the lines or table it
    was written from (where it lies on the page)."""
    out: list[tuple[Block | Table, str]] = []
    style = style.on_page([item for item in items if isinstance(item, Line)])
    blocks = _blocks(items, style)
    labels = [_letter_label(block) for block in blocks]
    for i, block in enumerate(blocks):
        if isinstance(block, Table):
            text = block.markdown()
        else:
            label = labels[i]
            listed = label is None or any(_next_labels(label, other) for j in (i - 1, i + 1)
                                          if 0 <= j < len(blocks) and (other := labels[j]) is not None)
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            before_text = isinstance(following, Block) and _prose(following, style) and not _last_item(blocks, i)
            text = _render_block(block, style, listed, before_text)
        if text.strip():
            out.append((block, text))
    return out


def _last_item(blocks: list[Block | Table], i: int) -> bool:
    """Whether block i opens with a list marker under a block that does too: a list's last item, not a title."""
    above = blocks[i - 1] if i else None
    block = blocks[i]
    return (isinstance(above, Block) and isinstance(block, Block) and bool(_list_marker(block.lines[0].text))
            and bool(_list_marker(above.lines[0].text)))


def _letter_label(block: Block | Table) -> str | None:
    """The letter or roman numeral before a full stop that opens a block, lower-cased; None without one."""
    match = _LETTER_LABEL.match(block.lines[0].text) if isinstance(block, Block) else None
    return match.group(1).lower() if match else None


def _next_labels(a: str, b: str) -> bool:
    """Whether two labels follow each other in a list: letters one apart, or roman numerals."""
    if len(a) == 1 and len(b) == 1 and abs(ord(a) - ord(b)) == 1:
        return True
    return all(ch in "ivx" for ch in a + b) and max(len(a), len(b)) > 1


def _blocks(items: Sequence[Line | Table], style: DocStyle) -> list[Block | Table]:
    blocks: list[Block | Table] = []
    for item in items:
        if isinstance(item, Table):
            blocks.append(item)
        elif blocks and isinstance(blocks[-1], Block) and _continues(blocks[-1], item, style):
            blocks[-1].lines.append(item)
        else:
            blocks.append(Block([item]))
    return blocks


def _continues(block: Block, line: Line, style: DocStyle) -> bool:
    """Whether a line carries on the block above it rather than starting a new one."""
    prev = block.lines[-1]
    height = min(prev.height, line.height)
    gap = prev.y0 - line.y1
    if prev.mono and line.mono and not style.mostly_mono and abs(prev.size - line.size) <= 0.1 * prev.size:
        return -0.5 * height <= gap <= CODE_GAP * height  # indentation and blank lines stay inside a listing
    if gap > style.paragraph_gap(line.size) * height or gap < -0.5 * height:
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
    right = max(ln.x1 for ln in block.lines)
    if len(block.lines) == 1 and prev.x1 < line.x1 - 3 * height and section_title_level(prev.text):
        return False  # a section title at body size ends where its short line does
    if len(block.lines) > 1 and _indented(line, prev, right, height):
        return False
    return not (_SENTENCE_END.search(prev.text) and prev.x1 < max(right, line.x1) - 3 * height)


def _indented(line: Line, prev: Line, right: float, height: float) -> bool:
    """A first-line indent under the block's wrapped lines: a new paragraph even without a gap (a small
    indent only counts after a line that ends a sentence or stops short)."""
    indent = line.x0 - prev.x0
    if indent > 1.0 * height:
        return True
    return indent > 0.5 * height and (bool(_SENTENCE_END.search(prev.text)) or prev.x1 < right - height)


def _list_marker(text: str) -> re.Match[str] | None:
    return _BULLET.match(text) or _NUMBERED.match(text)


def _prose(block: Block, style: DocStyle) -> bool:
    """Whether a block is running text at body size: what follows a section title."""
    first = block.lines[0]
    if first.mono or abs(first.size - style.base_size) > 0.1 * style.base_size or _list_marker(first.text):
        return False
    text = " ".join(line.text for line in block.lines)
    letters = [ch for ch in text if ch.isalpha()]
    if sum(ch.islower() for ch in letters) < 0.5 * len(letters):
        return False  # capitals throughout: more titles, or code, not running text
    if not _PROSE_SENTENCE.search(text):
        return False  # no sentence ends in it: a listing or a list of terms
    return len(block.lines) >= 2 or len(text) >= 60


def section_title_level(text: str) -> int:
    """The level of a line that reads as a section title by its shape alone, 0 if it does not: a section
    number of several levels, a roman numeral or 'Article 5' before a capitalised title, or a title in
    capitals ('I. INTRODUCTION', 'REFERENCES'). Headings at body size in the body face have only this."""
    words = text.split()
    letters = [ch for ch in text if ch.isalpha()]
    if (len(words) > MAX_TITLE_WORDS or len(letters) < 3 or not text[:1].isalnum() or text.endswith((",", ";", ":", "!", "?"))
            or (text.endswith(".") and len(words) > 2) or "..." in text
            or (words[-1].isdigit() and not _KEYWORD_NUMBER.match(text))  # a table of contents' page number
            or _CONTACT.search(text) or _DATE_LINE.match(text) or _CAPTION.match(text)):
        return 0
    capitals = all(ch.isupper() for ch in letters) and len(letters) >= 4
    multi = _MULTI_NUMBER.match(text)
    if multi:
        return min(multi.group(0).rstrip(". ").count(".") + 2, 4)
    if _KEYWORD_NUMBER.match(text):
        return 2
    rest = words[1:]
    if _ROMAN_NUMBER.match(text) and rest and not _initials(rest):
        return 2
    if _SINGLE_NUMBER.match(text) and 0 < len(rest) <= SHORT_TITLE_WORDS and (capitals or _title_case(rest)):
        return 2
    return 2 if capitals and not text[:1].isdigit() else 0


def _title_case(words: list[str]) -> bool:
    """Every word capitalised, small words (articles, prepositions) aside, and no initials ('J.')."""
    return all(word[:1].isupper() or _MINOR_WORD.match(word) for word in words) and not _initials(words)


def _initials(words: list[str]) -> bool:
    """Whether the words hold an initial ('J.'): a name, not a title."""
    return any(len(word) == 2 and word.endswith(".") and word[0].isupper() for word in words)


def _numbered_title(text: str) -> bool:
    """A title with a section number of several levels, a roman numeral or a keyword: small capitals set it
    in a smaller size than the body, and the number alone tells it."""
    return bool(_MULTI_NUMBER.match(text) or _ROMAN_NUMBER.match(text) or _KEYWORD_NUMBER.match(text))


def _render_block(block: Block, style: DocStyle, listed: bool = True, before_text: bool = False) -> str:
    """A block as a heading, a list item, code or a paragraph; `listed` False: a letter label that opens it
    is an initial, not an item's label; `before_text`: running text follows it, so a line that reads as a
    section title at body size is one. Text that would read as Markdown block syntax is escaped."""
    lines = block.lines
    if lines[0].mono and not style.mostly_mono and len(lines) > 1:
        return _code(lines)
    text = _TAG_OPEN.sub("&lt;", join_lines([ln.text for ln in lines]))
    marker = _list_marker(text) if listed or not _LETTER_LABEL.match(text) else None
    level = _heading_level(lines, text, style) if not marker or _numbered_heading(lines, text, style) else 0
    if not level and before_text and len(lines) == 1 and (not marker or not _BULLET.match(text)):
        floor = NUMBERED_TITLE if _numbered_title(text) else SMALL_TITLE
        level = section_title_level(text) if lines[0].size >= style.base_size * floor else 0
    if level:
        return "#" * level + " " + text
    if marker:
        rest = text[marker.end():]
        if _BULLET.match(text):
            return "- " + rest
        label = marker.group(1)
        return f"{label} {rest}" if label[:-1].isdigit() and not label.startswith("(") else f"- {label} {rest}"
    return "\\" + text if text.startswith("#") else text


def _numbered_heading(lines: list[Line], text: str, style: DocStyle) -> bool:
    """'1. Introduction' or '(2) Scope' on a line of its own in an emphatic face: a heading, not a list item."""
    return (len(lines) == 1 and not _BULLET.match(text) and style.emphatic(lines[0])
            and not _SENTENCE_END.search(text) and len(text) <= MAX_HEADING_CHARS // 2)


def _heading_level(lines: list[Line], text: str, style: DocStyle) -> int:
    if len(lines) > MAX_HEADING_LINES or len(text) > MAX_HEADING_CHARS or sum(ch.isalpha() for ch in text) < 2:
        return 0
    if _CONTACT.search(text) or _DATE_LINE.match(text):
        return 0
    size = max(ln.size for ln in lines)
    bold = all(style.emphatic(ln) for ln in lines)
    if not bold and size < style.base_size * HEADING_RATIO:
        return 0
    if bold and size < style.base_size * HEADING_RATIO and (text.endswith(".") or len(text) > 100
                                                             or _CAPTION.match(text)):
        return 0
    return style.heading_level(size, bold)


def _code(lines: list[Line]) -> str:
    """Monospace lines fenced, with their indentation in character widths and their blank lines."""
    left = min(ln.x0 for ln in lines)
    widths = [(ln.x1 - ln.x0) / len(ln.text) for ln in lines if ln.text]
    char = sorted(widths)[len(widths) // 2] or 1.0
    out: list[str] = []
    for prev, ln in zip([None, *lines], lines):
        if prev is not None and prev.y0 - ln.y1 > BLANK_CODE_LINE * min(prev.height, ln.height):
            out.append("")
        out.append(" " * round((ln.x0 - left) / char) + ln.text.translate(LIGATURES))
    body = "\n".join(out)
    return f"```\n{body}\n```"


def join_lines(texts: Sequence[str]) -> str:
    """Lines of one paragraph as one string: hyphenations undone, ligatures spelled out."""
    out = ""
    for text in texts:
        if not out:
            out = text
        elif out.endswith(SOFT_HYPHENS):  # pdfium marks every hyphen at a line end; before a capital or a
            out = out[:-1] + ("-" if text[:1].isupper() or text[:1].isdigit() else "") + text  # digit it is real
        elif out.endswith("-") and len(out) > 1 and out[-2].isalpha() and text[:1].islower():
            out = out[:-1] + text
        else:
            out += " " + text
    for mark in SOFT_HYPHENS:
        out = out.replace(mark, "-")
    return out.translate(LIGATURES)
