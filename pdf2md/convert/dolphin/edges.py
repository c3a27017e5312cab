"""Dolphin 1.0's box edge adjustment: widen each edge a few pixels until it stops cutting through text.

1.0's coordinates have two decimals (about 9 px steps on an 896 square), so a box edge often runs through
the first or last line of its text. Upstream (bytedance/Dolphin 6043b32 utils/utils.py `adjust_box_edges`)
binarises the padded page (Otsu, text white), scores each edge by the transitions along it and moves the
edge outwards one pixel at a time (at most 15) while that lowers the score. This is the same rule on PIL
bytes, without OpenCV, including its quirks: a move that never helps still shifts the edge the later
edges are measured along, and the box returned is the last one that improved a score.
"""

from __future__ import annotations

import math

from PIL import Image

Box = tuple[int, int, int, int]

MAX_PIXELS = 15
THRESHOLD = 0.2
RISE = b"\x00\xff"
FALL = b"\xff\x00"
_EDGES = ((0, -1, True), (2, 1, True), (1, -1, False), (3, 1, False))
"""(coordinate, direction, vertical edge): left and right widen first, then top and bottom; only outwards."""


class EdgeAdjuster:
    """The binarised page, computed once, and the edge rule applied to any box on it."""

    def __init__(self, image: Image.Image) -> None:
        gray = image.convert("L")
        threshold = otsu_threshold(gray.histogram())
        self.width, self.height = gray.size
        self.binary = gray.point(lambda v: 0 if v > threshold else 255).tobytes()  # cv2 THRESH_BINARY_INV

    def adjust(self, box: Box) -> Box:
        best = list(box)
        current = [self._clamp(i, v) for i, v in enumerate(box)]
        for i, direction, vertical in _EDGES:
            best_score = self._score(current, i, vertical)
            if best_score <= THRESHOLD:
                continue
            for _ in range(MAX_PIXELS):
                current[i] = self._clamp(i, current[i] + direction)
                score = self._score(current, i, vertical)
                if score < best_score:
                    best_score = score
                    best = list(current)
                if score <= THRESHOLD:
                    break
        return best[0], best[1], best[2], best[3]

    def _clamp(self, i: int, value: int) -> int:
        return min(max(value, 0), (self.width if i % 2 == 0 else self.height) - 1)

    def _score(self, box: list[int], i: int, vertical: bool) -> float:
        """Transitions along the edge: 255 for each background-to-text step, 1 for each text-to-background step."""
        edge, w = box[i], self.width
        if vertical:
            line = self.binary[box[1] * w + edge:box[3] * w + edge + 1:w]
        else:
            line = self.binary[edge * w + box[0]:edge * w + box[2] + 1]
        if len(line) < 2:
            return math.nan  # upstream divides by zero here; nan never improves nor passes the threshold
        return (255 * line.count(RISE) + line.count(FALL)) / (len(line) - 1)


def otsu_threshold(histogram: list[int]) -> int:
    """Otsu's threshold of a 256-bin histogram, as OpenCV computes it (the first level of maximal variance)."""
    total = sum(histogram[:256])
    if not total:
        return 0
    mean = sum(i * h for i, h in enumerate(histogram[:256])) / total
    q1 = mu1 = max_sigma = 0.0
    best = 0
    for i in range(256):
        p = histogram[i] / total
        mu1 *= q1
        q1 += p
        q2 = 1.0 - q1
        if min(q1, q2) < 1.1920929e-07 or max(q1, q2) > 1.0 - 1.1920929e-07:
            continue
        mu1 = (mu1 + i * p) / q1
        mu2 = (mean - q1 * mu1) / q2
        sigma = q1 * q2 * (mu1 - mu2) ** 2
        if sigma > max_sigma:
            max_sigma, best = sigma, i
    return best
