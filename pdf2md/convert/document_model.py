"""The typed document every output is written from: pages, and on each page its blocks in reading order.

The Markdown writer (`Document.markdown`) and the JSON writer (`pdf2md.convert.document_json`) both render
this one model, so the two outputs cannot disagree: a block's `markdown` is the very text the Markdown holds.

Geometry: a block's `bbox` is `[x0, y0, x1, y1]` in PDF points, origin at the top-left corner of the page as
displayed (its crop box, its /Rotate applied), y growing downwards, on a page of `width` x `height` points:
multiply by dpi / 72 for the pixels of a render. None where the source gives no box.

Confidence, per source, never invented (None where the source has none):
- a text-layer page: `PageConfidence(source="text-layer")`, its value the share of the page's printed
  characters that map to Unicode (1 - unmapped / printed), with the router's character counts as `checks`;
  its blocks carry none (the text is the PDF's own);
- an OCR page: RapidOCR's recognition scores (0..1, a line's mean character probability): per block the mean
  over its lines weighted by their characters, per page the same over the page's kept lines;
- a Dolphin page: none (the engines hand back text, not token probabilities).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

BBox = tuple[float, float, float, float]

KINDS = ("heading", "paragraph", "list_item", "code", "table", "formula", "figure", "markdown")
"""What a block is; 'markdown' is a page a model read whole, already Markdown (its blocks unknown)."""

_HEADING = re.compile(r"^(#{1,6}) ")
_LIST_ITEM = re.compile(r"^(- |\d{1,3}[.)] )")


@dataclass(frozen=True, slots=True)
class PageConfidence:
    """How sure the page's source is of its text (see the module docstring for what each source means)."""

    source: str
    value: float | None
    checks: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Block:
    """One block of a page: the Markdown it is written as and where it lies."""

    kind: str
    markdown: str
    bbox: BBox | None = None
    confidence: float | None = None
    level: int | None = None
    """A heading's level (1..6)."""
    label: str | None = None
    """The model's own label for the region (Dolphin: 'para', 'cap', 'fig', ...)."""
    tight: bool = False
    """Written one newline after the block before it instead of a blank line (an item of the same list)."""
    image: str | None = None
    """A figure's image, relative to the Markdown file (None: no image was saved)."""

    def scaled(self, sx: float, sy: float) -> Block:
        """The block with a box given as fractions of the page scaled to points (sx, sy: the page size)."""
        if self.bbox is None:
            return self
        x0, y0, x1, y1 = self.bbox
        return replace(self, bbox=(round(x0 * sx, 2), round(y0 * sy, 2), round(x1 * sx, 2), round(y1 * sy, 2)))


@dataclass(frozen=True, slots=True)
class Page:
    """One page: its position from 1, the PDF's own label for it, its size, how it was read, its blocks."""

    number: int
    width: float
    height: float
    route: str
    reason: str
    blocks: tuple[Block, ...] = ()
    label: str | None = None
    confidence: PageConfidence | None = None

    @property
    def markdown(self) -> str:
        return join_blocks(self.blocks)


@dataclass(frozen=True, slots=True)
class Document:
    pages: tuple[Page, ...]

    def markdown(self, page_markers: bool = False) -> str:
        """The whole document as Markdown; with `page_markers`, a `<!-- page N -->` comment opens each page
        (N its position from 1, the PDF's page label beside it where the PDF gives one that says otherwise)."""
        if page_markers:
            body = "\n\n".join(f"{page_marker(p.number, p.label)}\n\n{p.markdown}".rstrip() for p in self.pages)
        else:
            body = "\n\n".join(text for p in self.pages if (text := p.markdown.strip()))
        return body.strip() + "\n" if body.strip() else ""

    def figures(self) -> list[Block]:
        return [b for p in self.pages for b in p.blocks if b.kind == "figure"]


def page_marker(number: int, label: str | None) -> str:
    """An HTML comment (Markdown renderers hide it, chunkers split on it); the label is quoted, so a label
    holding spaces or digits stays one value."""
    if label and label != str(number):
        return f'<!-- page {number} label="{_comment_safe(label)}" -->'
    return f"<!-- page {number} -->"


def _comment_safe(label: str) -> str:
    return label.replace("--", "- -").replace('"', "'").replace("\n", " ")


def join_blocks(blocks: Sequence[Block]) -> str:
    """A page's blocks as its Markdown: a blank line apart, a tight block one newline after the one before."""
    out: list[str] = []
    for block in blocks:
        if not block.markdown.strip():
            continue
        if out:
            out.append("\n" if block.tight else "\n\n")
        out.append(block.markdown)
    return "".join(out)


def text_block(markdown: str, bbox: BBox | None, is_table: bool = False, confidence: float | None = None) -> Block:
    """A block of the text path (or of OCR read through it), its kind told by how it is written."""
    if is_table:
        return Block("table", markdown, bbox, confidence)
    if markdown.startswith("```"):
        return Block("code", markdown, bbox, confidence)
    heading = _HEADING.match(markdown)
    if heading:
        return Block("heading", markdown, bbox, confidence, level=len(heading.group(1)))
    kind = "list_item" if _LIST_ITEM.match(markdown) else "paragraph"
    return Block(kind, markdown, bbox, confidence)


def markdown_only(markdown: str) -> tuple[Block, ...]:
    """A page known only by its Markdown (a backend that gives no blocks): one block, no box."""
    return (Block("markdown", markdown),) if markdown.strip() else ()


def union(boxes: Iterable[BBox]) -> BBox | None:
    boxes = list(boxes)
    if not boxes:
        return None
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def weighted_mean(pairs: Iterable[tuple[float, int]]) -> float | None:
    """Mean of (value, weight) pairs; None without weight."""
    total = weight = 0.0
    for value, w in pairs:
        total += value * w
        weight += w
    return round(total / weight, 4) if weight else None

