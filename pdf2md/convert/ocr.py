"""CPU OCR for pages without a usable text layer: RapidOCR (ONNX Runtime, models inside the wheel).

RapidOCR returns text lines with boxes; they go through the same layout as the text layer (rows,
tables, reading order, paragraphs, headings by size), so OCR pages read like text-layer pages.

Two things are set up differently from RapidOCR's defaults:
- Word spaces. Its recogniser (PP-OCRv4, trained mostly on Chinese) rarely lets the space class win a
  CTC column: between English words the blank wins and "they have no respect" reads "theyhavenorespect",
  worst on scans. Where the space class is the likeliest character after the blank in the columns
  between two characters, a space is decoded (`SpacedCtcDecoder`).
- Render size. Pages are rendered at `RENDER_DPI` within a pixel budget, so a poster-size page is
  rendered at a lower DPI instead of as a multi-gigabyte bitmap.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
import pypdfium2 as pdfium
from PIL import Image

from pdf2md.convert.backends import BackendUnavailable, PageOutput
from pdf2md.convert.document_model import Block, PageConfidence, join_blocks, text_block, union, weighted_mean
from pdf2md.convert.text.layout import Line, build_rows
from pdf2md.convert.text.markdown import DocStyle, render_blocks
from pdf2md.convert.text.spans import Span
from pdf2md.convert.text.tables import Table
from pdf2md.convert.textlayer import ordered_items

log = logging.getLogger(__name__)

RENDER_DPI = 200
MAX_RENDER_PIXELS = 8_000_000
"""An A3 page at 200 DPI; larger pages are rendered at a lower DPI (the OCR's memory grows with pixels:
about 0.9 GB peak for a letter page at 200 DPI, 1.5 GB at this budget)."""
ENGINE_MAX_SIDE = 4000
"""RapidOCR shrinks images whose long side exceeds this (its default, 2000, would shrink a letter page
at 200 DPI and undo the budget); the pixel budget is what bounds the render."""
SIZE_TOLERANCE = 0.3
MIN_SCORE = 0.5
"""Recognitions RapidOCR itself is less sure of than this are noise (specks, rules, pictures)."""
MIN_SPACE_PROB = 0.005
"""A space decoded from a blank column needs at least this probability (and to beat every other character)."""
_CTC_BLANK = 0


class OcrBackend:
    name = "ocr"

    def __init__(self) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise BackendUnavailable("the OCR backend needs rapidocr-onnxruntime (pip install 'pdf2md[ocr]')") from exc
        self._engine = RapidOCR(max_side_len=ENGINE_MAX_SIDE)
        install_spaced_decoder(self._engine)

    def convert_pages(self, doc: pdfium.PdfDocument, pages: Sequence[int]) -> dict[int, PageOutput]:
        return {i: self._page(doc, i) for i in pages}

    def _page(self, doc: pdfium.PdfDocument, index: int) -> PageOutput:
        started = time.perf_counter()
        image = render_for_ocr(doc, index)
        result, _ = self._engine(np.asarray(image))
        spans = spans_from_ocr(result or [], image.height)
        log.debug("page %d: %d OCR lines from a %dx%d render", index + 1, len(spans), *image.size)
        scored = scored_lines(result or [], image.height)
        blocks = ocr_blocks(spans, scored, *image.size)
        confidence = PageConfidence("ocr", weighted_mean((score, n) for *_, score, n in scored))
        return PageOutput(join_blocks(blocks), time.perf_counter() - started, blocks=blocks, confidence=confidence)


def render_scale(width: float, height: float, dpi: float = RENDER_DPI, max_pixels: int = MAX_RENDER_PIXELS) -> float:
    """Pixels per point for a page of `width` x `height` points: `dpi`, or less where that passes the budget.

    The budget holds for the rendered size rounded up, (w*s + 1) * (h*s + 1) <= max_pixels, solved for s.
    """
    w, h = max(width, 1.0), max(height, 1.0)
    fit = (math.sqrt((w + h) ** 2 + 4 * w * h * (max_pixels - 1)) - (w + h)) / (2 * w * h)
    return min(dpi / 72, fit)


def render_for_ocr(doc: pdfium.PdfDocument, index: int, max_pixels: int = MAX_RENDER_PIXELS) -> Image.Image:
    """The page as an RGB image at `RENDER_DPI`, or at the DPI that keeps it within `max_pixels` (aspect kept)."""
    page = doc[index]
    try:
        width, height = page.get_size()
        scale = render_scale(width, height, max_pixels=max_pixels)
        if scale < RENDER_DPI / 72:
            log.info("page %d: rendered at %.0f DPI to stay within %d pixels", index + 1, scale * 72, max_pixels)
        return page.render(scale=scale).to_pil().convert("RGB")
    finally:
        page.close()


class SpacedCtcDecoder:
    """RapidOCR's CTC decoding, plus the word spaces its recogniser sees but lets the blank outvote.

    Takes the place of `TextRecognizer.postprocess_op` (rapidocr-onnxruntime 1.4.x): called with the
    recogniser's class probabilities (batch, columns, classes) and returning [(text, score)].
    """

    def __init__(self, stock: Any) -> None:
        self._stock = stock
        self._characters: list[str] = list(stock.character)
        self._space = self._characters.index(" ")

    def __call__(self, preds: np.ndarray, return_word_box: bool = False, **kwargs: Any) -> list[Any]:
        decoded = self._stock(preds, return_word_box, **kwargs)
        if return_word_box:
            return decoded  # RapidOCR's word boxes index its own text: leave that text alone
        return [(self.decode_row(probs), score) for probs, (_text, score) in zip(preds, decoded)]

    def decode_row(self, probs: np.ndarray) -> str:
        """Greedy CTC (repeats merged, blanks dropped), with a space where the columns between two
        characters favour the space over every other character."""
        best = probs.argmax(axis=1)
        emitted = np.flatnonzero((best != _CTC_BLANK) & np.r_[True, best[1:] != best[:-1]])
        out: list[str] = []
        previous = -1
        for column in emitted:
            char = self._characters[best[column]]
            if out and out[-1] != " " and char != " " and self._space_between(probs[previous + 1:column], out[-1], char):
                out.append(" ")
            out.append(char)
            previous = int(column)
        return "".join(out)

    def _space_between(self, gap: np.ndarray, left: str, right: str) -> bool:
        if not len(gap) or _is_wide(left) or _is_wide(right):
            return False  # no column between them, or CJK text, which is written without spaces
        characters = gap[:, _CTC_BLANK + 1:]
        runner_up = characters.argmax(axis=1) + _CTC_BLANK + 1
        return bool(np.any((runner_up == self._space) & (gap[:, self._space] >= MIN_SPACE_PROB)))


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def install_spaced_decoder(engine: Any) -> None:
    """Put `SpacedCtcDecoder` in the engine's recogniser; another RapidOCR layout keeps its own (with a warning)."""
    recogniser = getattr(engine, "text_rec", None)
    stock = getattr(recogniser, "postprocess_op", None)
    if recogniser is None or stock is None or " " not in getattr(stock, "character", ()):
        log.warning("this RapidOCR has no CTC decoder with a space class where 1.4.x has one: word spaces may be lost")
        return
    recogniser.postprocess_op = SpacedCtcDecoder(stock)


def spans_from_ocr(result: Sequence[Any], image_height: int) -> list[Span]:
    """RapidOCR's (quadrilateral, text, score) lines as spans in a y-up frame, unsure ones dropped."""
    spans = [Span(" ".join(text.split()), x0, y0, x1, y1, y1 - y0, False, False, False, 0, True)
             for (x0, y0, x1, y1, _, _), (_, text, _) in zip(scored_lines(result, image_height), _kept(result))]
    _even_out_sizes(spans)
    return spans


def _kept(result: Sequence[Any]) -> list[Any]:
    """The lines RapidOCR is sure enough of (MIN_SCORE) that hold text."""
    return [line for line in result if float(line[2]) >= MIN_SCORE and line[1].strip()]


def _even_out_sizes(spans: list[Span]) -> None:
    """Box heights vary with ascenders and descenders: heights near the median are the body size."""
    if not spans:
        return
    median = statistics.median(s.size for s in spans)
    for span in spans:
        if abs(span.size - median) < SIZE_TOLERANCE * median:
            span.size = median


def ocr_markdown(spans: list[Span]) -> str:
    """OCR lines laid out like a text layer: paragraphs by geometry, headings by relative height."""
    return join_blocks(ocr_blocks(spans, [], 1, 1))


ScoredLine = tuple[float, float, float, float, float, int]
"""An OCR line kept by spans_from_ocr: its box in the spans' frame (pixels, y up), its score, its characters."""


def scored_lines(result: Sequence[Any], image_height: int) -> list[ScoredLine]:
    """RapidOCR's kept lines (as spans_from_ocr keeps them) with their recognition scores."""
    out = []
    for quad, text, score in _kept(result):
        xs = [float(p[0]) for p in quad]
        ys = [float(p[1]) for p in quad]
        out.append((min(xs), image_height - max(ys), max(xs), image_height - min(ys), float(score), len(text.strip())))
    return out


def ocr_blocks(spans: list[Span], scores: Sequence[ScoredLine], width: int, height: int) -> tuple[Block, ...]:
    """OCR lines laid out like a text layer, as blocks: boxes as fractions of the `width` x `height` render
    (top-left origin), each block's confidence the mean score of the OCR lines centred in it."""
    if not spans:
        return ()
    items = ordered_items(build_rows(spans))
    style = DocStyle.from_lines(item for item in items if isinstance(item, Line))
    blocks = []
    for item, text in render_blocks(items, style):
        box = (item.x0, item.y0, item.x1, item.y1) if isinstance(item, Table) else union((ln.x0, ln.y0, ln.x1, ln.y1) for ln in item.lines)
        confidence = weighted_mean((s, n) for x0, y0, x1, y1, s, n in scores if box and _inside((x0 + x1) / 2, (y0 + y1) / 2, box))
        fraction = (box[0] / width, (height - box[3]) / height, box[2] / width, (height - box[1]) / height) if box else None
        blocks.append(text_block(text, _rounded(fraction), isinstance(item, Table), confidence))
    return tuple(blocks)


def _inside(x: float, y: float, box: tuple[float, float, float, float]) -> bool:
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def _rounded(box: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
    return None if box is None else (round(box[0], 5), round(box[1], 5), round(box[2], 5), round(box[3], 5))
