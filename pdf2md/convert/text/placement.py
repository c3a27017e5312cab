"""Where the text path's blocks lie on the page as displayed: boxes from the text's own frame to the
document model's (PDF points, origin top-left of the displayed page, y down; see document_model)."""

from __future__ import annotations

from collections.abc import Sequence

from pdf2md.convert.document_model import BBox, Block, text_block, union
from pdf2md.convert.text.layout import Line
from pdf2md.convert.text.markdown import Block as TextBlock
from pdf2md.convert.text.spans import Rect
from pdf2md.convert.text.tables import Table


def page_blocks(rendered: Sequence[tuple[TextBlock | Table, str]], box: Rect, rotation: int) -> tuple[Block, ...]:
    """The document model's blocks of a page rendered by `render_blocks`; `box` is the visible page in user
    space (x0, y0, x1, y1, y up) and `rotation` its /Rotate."""
    blocks = []
    for item, text in rendered:
        lines = item.lines
        if isinstance(item, Table):
            orient = lines[0].spans[0].orient if lines and lines[0].spans else 0
            boxes: list[BBox] = [from_frame((item.x0, item.y0, item.x1, item.y1), orient)]
        else:
            boxes = [from_frame((ln.x0, ln.y0, ln.x1, ln.y1), _orient(ln)) for ln in lines]
        user = union(boxes)
        blocks.append(text_block(text, displayed(user, box, rotation) if user else None, isinstance(item, Table)))
    return tuple(blocks)


def _orient(line: Line) -> int:
    return line.spans[0].orient if line.spans else 0


def from_frame(rect: Rect, orient: int) -> BBox:
    """The inverse of spans.to_frame: a box in the frame of text of `orient` quarter turns back in user space."""
    x0, y0, x1, y1 = rect
    if orient == 1:
        return y0, -x1, y1, -x0
    if orient == 2:
        return -x1, -y1, -x0, -y0
    if orient == 3:
        return -y1, x0, -y0, x1
    return x0, y0, x1, y1


def displayed(rect: BBox, box: Rect, rotation: int) -> BBox:
    """A user-space box (y up) on the page as displayed: its visible box's top-left corner the origin, y down,
    the page turned by its /Rotate (clockwise), clamped to the page and rounded to 0.01 pt."""
    left, bottom, right, top = box
    x0, y0, x1, y1 = (max(left, min(right, v)) if i % 2 == 0 else max(bottom, min(top, v)) for i, v in enumerate(rect))
    turned = {
        90: (y0 - bottom, x0 - left, y1 - bottom, x1 - left),
        180: (right - x1, y0 - bottom, right - x0, y1 - bottom),
        270: (top - y1, right - x1, top - y0, right - x0),
    }.get(rotation % 360, (x0 - left, top - y1, x1 - left, top - y0))
    a, b, c, d = turned
    return round(a, 2), round(b, 2), round(c, 2), round(d, 2)
