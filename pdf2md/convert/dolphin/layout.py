"""Stage 1 output -> element boxes: tolerant of malformed lines, duplicates, overlaps and stray coordinates.

Dolphin 1.0 writes `[x1,y1,x2,y2] label` with coordinates in 0..1 of the padded square; 1.5 writes
`[x1,y1,x2,y2][label][tags]` in pixels of the 896 square, separated by `[PAIR_SEP]`; v2 writes the 1.5
format in pixels of the image its processor resized. All are read.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

MODEL_SQUARE = 896
"""The side of the square Dolphin 1.x sees; its pixel coordinates refer to it."""
MIN_SIDE = 4
"""Crops thinner than this hold nothing readable."""
DUPLICATE_IOU = 0.8
OVERLAP_IOU = 0.1
OVERLAPPED_SHARE = 0.25
"""A layout where more than this share of boxes overlap another (IoU > OVERLAP_IOU) is not trusted:
the model lost the page (photographed, skewed), so the page is read whole (upstream's v2 rule)."""

_NUM = r"(-?\d+(?:\.\d+)?|-?\.\d+)"
_ENTRY = re.compile(
    r"\[\s*" + r"\s*,\s*".join([_NUM] * 4) + r"\s*\]\s*(?:\[\s*([A-Za-z][\w-]*)\s*\]|([A-Za-z][\w-]*))"
)

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class PageGeometry:
    """The image the model saw, where the page lies in it, and the pixel grid its coordinates count in."""

    size: tuple[int, int]
    content: Box
    grid: tuple[int, int]

    @classmethod
    def centred(cls, width: int, height: int) -> PageGeometry:
        """The page padded to a square around its centre, as Dolphin 1.x's processor pads."""
        square = max(width, height)
        left, top = (square - width) // 2, (square - height) // 2
        return cls((square, square), (left, top, left + width, top + height), (MODEL_SQUARE, MODEL_SQUARE))

    @classmethod
    def resized(cls, width: int, height: int, grid: tuple[int, int]) -> PageGeometry:
        """The page itself, which the model's processor resized to `grid` (Dolphin v2)."""
        return cls((width, height), (0, 0, width, height), grid)


@dataclass(frozen=True)
class LayoutElement:
    """One region to read, in reading order; `box` is in pixels of the padded square."""

    label: str
    box: Box
    order: int


def parse_layout(text: str, geometry: PageGeometry) -> list[LayoutElement]:
    """The usable elements of a layout answer, in reading order (empty when nothing is usable)."""
    entries = [(tuple(float(m.group(i)) for i in range(1, 5)), (m.group(5) or m.group(6)).lower()) for m in _ENTRY.finditer(text)]
    if not entries:
        return []
    normalised = max(max(coords) for coords, _ in entries) <= 1.0
    width, height = geometry.size
    scale = (width, height) if normalised else (width / geometry.grid[0], height / geometry.grid[1])
    boxes: list[tuple[str, Box]] = []
    for coords, label in entries:
        box = _to_pixels(coords, scale, geometry.content)
        if box is not None and not any(_iou(box, other) >= DUPLICATE_IOU for _, other in boxes):
            boxes.append((label, box))
    if _overlapped([box for _, box in boxes]):
        log.debug("layout: most boxes overlap, the page is read whole")
        return []
    kept: list[tuple[str, Box]] = []
    for label, box in boxes:
        kept.append((label, _trim_overlap(box, kept[-1][1]) if kept else box))
    skipped = len(entries) - len(kept)
    if skipped:
        log.debug("layout: %d of %d boxes unusable or duplicated", skipped, len(entries))
    return [LayoutElement(label, box, order) for order, (label, box) in enumerate(kept)]


def whole_page(geometry: PageGeometry, label: str) -> list[LayoutElement]:
    """The fallback when the layout is unusable: read the page as one element."""
    return [LayoutElement(label, geometry.content, 0)]


def _overlapped(boxes: list[Box]) -> bool:
    if len(boxes) < 2:
        return False
    overlapping = sum(any(_iou(box, other) > OVERLAP_IOU for j, other in enumerate(boxes) if j != i) for i, box in enumerate(boxes))
    return overlapping / len(boxes) > OVERLAPPED_SHARE


def _to_pixels(coords: tuple[float, ...], scale: tuple[float, float], content: Box) -> Box | None:
    """Scale, order and clip one box to the page inside the model's image; None when too thin to read."""
    x1, y1, x2, y2 = (round(c * scale[i % 2]) for i, c in enumerate(coords))
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    cx1, cy1, cx2, cy2 = content
    box = (max(x1, cx1), max(y1, cy1), min(x2, cx2), min(y2, cy2))
    if box[2] - box[0] < MIN_SIDE or box[3] - box[1] < MIN_SIDE:
        return None
    return box


def _trim_overlap(box: Box, previous: Box) -> Box:
    """A box that starts inside the previous one starts below it instead (each line read once)."""
    x1, y1, x2, y2 = box
    px1, py1, px2, py2 = previous
    overlaps = x1 < px2 and x2 > px1 and py1 <= y1 < py2
    if overlaps and y2 - py2 >= MIN_SIDE:
        return (x1, py2, x2, y2)
    return box


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0
