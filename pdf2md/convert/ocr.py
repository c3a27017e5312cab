"""CPU OCR for pages without a usable text layer: RapidOCR (ONNX Runtime, models inside the wheel).

RapidOCR returns text lines with boxes; they go through the same layout as the text layer (rows,
tables, reading order, paragraphs, headings by size), so OCR pages read like text-layer pages.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pypdfium2 as pdfium

from pdf2md.convert.backends import BackendUnavailable, PageOutput
from pdf2md.convert.text.layout import Line, build_rows
from pdf2md.convert.text.markdown import DocStyle, render_page
from pdf2md.convert.text.spans import Span
from pdf2md.convert.textlayer import ordered_items

log = logging.getLogger(__name__)

RENDER_DPI = 200
SIZE_TOLERANCE = 0.3
MIN_SCORE = 0.5
"""Recognitions RapidOCR itself is less sure of than this are noise (specks, rules, pictures)."""


class OcrBackend:
    name = "ocr"

    def __init__(self) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise BackendUnavailable("the OCR backend needs rapidocr-onnxruntime (pip install 'pdf2md[ocr]')") from exc
        self._engine = RapidOCR()

    def convert_pages(self, doc: pdfium.PdfDocument, pages: Sequence[int]) -> dict[int, PageOutput]:
        return {i: self._page(doc, i) for i in pages}

    def _page(self, doc: pdfium.PdfDocument, index: int) -> PageOutput:
        started = time.perf_counter()
        page = doc[index]
        try:
            image = page.render(scale=RENDER_DPI / 72).to_pil().convert("RGB")
        finally:
            page.close()
        result, _ = self._engine(np.asarray(image))
        spans = spans_from_ocr(result or [], image.height)
        log.debug("page %d: %d OCR lines", index + 1, len(spans))
        return PageOutput(ocr_markdown(spans), time.perf_counter() - started)


def spans_from_ocr(result: Sequence[Any], image_height: int) -> list[Span]:
    """RapidOCR's (quadrilateral, text, score) lines as spans in a y-up frame, unsure ones dropped."""
    spans = []
    for quad, text, score in result:
        if float(score) < MIN_SCORE or not text.strip():
            continue
        xs = [float(p[0]) for p in quad]
        ys = [float(p[1]) for p in quad]
        y0, y1 = image_height - max(ys), image_height - min(ys)
        spans.append(Span(text.strip(), min(xs), y0, max(xs), y1, y1 - y0, False, False, False, 0, True))
    _even_out_sizes(spans)
    return spans


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
    if not spans:
        return ""
    items = ordered_items(build_rows(spans))
    style = DocStyle.from_lines(item for item in items if isinstance(item, Line))
    return render_page(items, style)
