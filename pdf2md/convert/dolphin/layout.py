"""Stage 1 answer -> element boxes, by the rules of the generation that wrote it (profiles.Profile).

Dolphin 1.0 writes `[x1,y1,x2,y2] label` in fractions (two decimals) of the padded square; 1.5 writes
`[x1,y1,x2,y2][label][tags]` separated by `[PAIR_SEP]` / `[RELATION_SEP]`, in pixels of the 896 square;
v2 writes the 1.5 format in pixels of the grid its processor resized the page to. Each is read the way
upstream's own code reads it (function names in the comments below), so a page yields the elements upstream
would crop: boxes are clamped one by one, 1.x shrinks a box that overlaps the previous one (a nested or
repeated box vanishes), 1.0 widens edges that cut text, and v2 reads a page whose answer is cut short or
whose boxes mostly overlap as one `distorted_page`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from pdf2md.convert.dolphin.edges import EdgeAdjuster
from pdf2md.convert.dolphin.profiles import Profile

log = logging.getLogger(__name__)

MODEL_SQUARE = 896
"""The side of the square Dolphin 1.x sees; 1.5's pixel coordinates refer to it."""
MIN_SIDE = 4
"""Upstream reads a crop only when both sides exceed 3 px."""
OVERLAP_IOU = 0.1
OVERLAPPED_SHARE = 0.25
"""v2 (utils.py `check_bbox_overlap`): more than this share of all parsed boxes overlapping another
(IoU > OVERLAP_IOU) means the model lost the page (photographed, skewed): it is read whole."""
SEPARATORS = ("[PAIR_SEP]", "[RELATION_SEP]")

_NUM = r"(\d*\.?\d+)"
_LABEL_AFTER = re.compile(r"\[" + r",\s*".join([_NUM] * 4) + r"\]\s*(\w+)")
"""1.0's `parse_layout_string` pattern: non-negative numbers, spaces after commas, a word after the box."""
_COORDS = re.compile(r"\[" + ",".join([_NUM] * 4) + r"\]")
_LABEL_1_5 = re.compile(r"\]\[([^\]]+)\]")
"""1.5's label: the first bracket that directly follows another."""
_BRACKETS = re.compile(r"\[([^\]]+)\]")
_BRACKETED_ENTRY = re.compile(r"\[" + ",".join([_NUM] * 4) + r"\]\[[^\]]+\]")
"""A 1.5/v2 entry: a box directly followed by a bracketed label."""
_INT_BOX = re.compile(r"^\d+,\d+,\d+,\d+$")

Box = tuple[int, int, int, int]
Coords = tuple[float, float, float, float]


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
    """One region to read; `box` is in pixels of the image the model saw, `order` upstream's reading order."""

    label: str
    box: Box
    order: int


def parse_layout(text: str, geometry: PageGeometry, profile: Profile, image: Image.Image | None = None) -> list[LayoutElement]:
    """The elements upstream would crop from this answer, in reading order; empty: read the page whole.

    `image` is the picture the model saw; 1.0 needs it to adjust box edges (without it they stay as written).
    """
    entries = _entries(text, profile)
    if not entries:
        return []
    to_pixels = _MAPPINGS[profile.coordinates]
    if profile.distorted_page:
        if not (text.startswith("[") and text.endswith("]")):
            log.debug("layout: the answer is not bracketed (cut short?): the page is read whole")
            return []
        boxes = [to_pixels(coords, geometry) for coords, _ in entries]
        if len(boxes) > 1 and _overlapped(boxes):
            log.debug("layout: most boxes overlap: the page is read whole")
            return []
    else:
        boxes = _shrunk_in_order([to_pixels(coords, geometry) for coords, _ in entries], geometry, profile, image)
    elements = [LayoutElement(label, box, order) for order, ((_, label), box) in enumerate(zip(entries, boxes)) if _readable(box)]
    if len(elements) < len(entries):
        log.debug("layout: %d of %d boxes too thin to read", len(entries) - len(elements), len(entries))
    return elements


def answer_format(text: str) -> str | None:
    """The Profile.entry_format a layout answer is written in ('label-after' or 'bracketed'), None when neither
    parses; an answer with entries of both kinds is read as bracketed (1.5 may write a label after its tags)."""
    if _BRACKETED_ENTRY.search(text) or any(separator in text for separator in SEPARATORS):
        return "bracketed"
    return "label-after" if _LABEL_AFTER.search(text) else None


def other_format(text: str, profile: Profile) -> str | None:
    """The other entry format, when the answer is clearly in it: not one of the profile's own entries parses
    and the other generation's do (1.5 brackets read as 1.0, or 1.0 labels read as 1.5/v2); else None."""
    found = answer_format(text)
    if found is None or found == profile.entry_format or _entries(text, profile):
        return None
    return found


def whole_page(geometry: PageGeometry, label: str) -> list[LayoutElement]:
    """The fallback when the layout is unusable: read the page as one element."""
    return [LayoutElement(label, geometry.content, 0)]


def _entries(text: str, profile: Profile) -> list[tuple[Coords, str]]:
    """(coordinates, label) per entry, as upstream's `parse_layout_string` of that generation finds them."""
    if profile.entry_format == "label-after":
        return [(_coords(m.groups()[:4]), m.group(5).strip()) for m in _LABEL_AFTER.finditer(text)]
    segments = [text]
    for separator in SEPARATORS:
        segments = [part for segment in segments for part in segment.split(separator)]
    labels = _labels_v2 if profile.name == "v2" else _labels_1_5
    entries = []
    for segment in (s.strip() for s in segments):
        found, names = _COORDS.search(segment), labels(segment)
        if found and names:
            entries.append((_coords(found.groups()), names[0].strip()))
    return entries


def _labels_1_5(segment: str) -> list[str]:
    return _LABEL_1_5.findall(segment)


def _labels_v2(segment: str) -> list[str]:
    """v2's `extract_labels_from_string`: every bracket that is not four integers (the first is the label)."""
    return [m for m in _BRACKETS.findall(segment) if not _INT_BOX.match(m)]


def _coords(groups: tuple[str, ...]) -> Coords:
    a, b, c, d = (float(g) for g in groups)
    return a, b, c, d


def _fraction(coords: Coords, geometry: PageGeometry) -> Box:
    """1.0's `process_coordinates`: fractions of the padded square, truncated, then clamped."""
    width, height = geometry.size
    x1, y1, x2, y2 = (int(c * (width if i % 2 == 0 else height)) for i, c in enumerate(coords))
    return _clamp_1x((x1, y1, x2, y2), geometry)


def _square(coords: Coords, geometry: PageGeometry) -> Box:
    """1.5's `process_coordinates`: pixels of the 896 square, rounded, the far edges one pixel further."""
    width, height = geometry.size
    side_w, side_h = geometry.grid
    x1, y1 = round(coords[0] / side_w * width), round(coords[1] / side_h * height)
    x2, y2 = round(coords[2] / side_w * width) + 1, round(coords[3] / side_h * height) + 1
    return _clamp_1x((x1, y1, x2, y2), geometry)


def _grid(coords: Coords, geometry: PageGeometry) -> Box:
    """v2's `process_coordinates`: pixels of the processor's grid scaled to the page, truncated, at least 1 px."""
    width, height = geometry.size
    rx, ry = width / geometry.grid[0], height / geometry.grid[1]
    x1, y1 = max(0, min(int(coords[0] * rx), width - 1)), max(0, min(int(coords[1] * ry), height - 1))
    x2, y2 = max(x1 + 1, min(int(coords[2] * rx), width)), max(y1 + 1, min(int(coords[3] * ry), height))
    return x1, y1, x2, y2


_MAPPINGS: dict[str, Callable[[Coords, PageGeometry], Box]] = {"fraction": _fraction, "square": _square, "grid": _grid}


def _clamp_1x(box: Box, geometry: PageGeometry) -> Box:
    """1.x: inside the square (a start at most one pixel short of the far side), at least one pixel wide and high."""
    width, height = geometry.size
    x1, y1 = max(0, min(box[0], width - 1)), max(0, min(box[1], height - 1))
    x2, y2 = max(0, min(box[2], width)), max(0, min(box[3], height))
    if x2 <= x1:
        x2 = min(x1 + 1, width)
    if y2 <= y1:
        y2 = min(y1 + 1, height)
    return x1, y1, x2, y2


def _shrunk_in_order(boxes: list[Box], geometry: PageGeometry, profile: Profile, image: Image.Image | None) -> list[Box]:
    """1.x's `process_coordinates` across the page: edges widened (1.0), then each box that overlaps the
    previous one starts at the previous one's bottom; the previous box is the last one computed, read or not."""
    adjuster = EdgeAdjuster(image) if profile.edge_adjustment and image is not None else None
    height = geometry.size[1]
    previous: Box | None = None
    out: list[Box] = []
    for box in boxes:
        if adjuster is not None:
            box = _clamp_1x(adjuster.adjust(box), geometry)
        if profile.trim_previous and previous is not None and _intersects(box, previous):
            x1, _, x2, y2 = box
            y1 = min(previous[3], height - 1)
            box = (x1, y1, x2, y2 if y2 > y1 else min(y1 + 1, height))
        previous = box
        out.append(box)
    return out


def _readable(box: Box) -> bool:
    return box[2] - box[0] >= MIN_SIDE and box[3] - box[1] >= MIN_SIDE


def _intersects(a: Box, b: Box) -> bool:
    return a[0] < b[2] and a[2] > b[0] and a[1] < b[3] and a[3] > b[1]


def _overlapped(boxes: list[Box]) -> bool:
    overlapping = sum(any(_iou(box, other) > OVERLAP_IOU for j, other in enumerate(boxes) if j != i) for i, box in enumerate(boxes))
    return overlapping / len(boxes) > OVERLAPPED_SHARE


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / max(union, 1e-6)
