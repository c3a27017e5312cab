"""CPU OCR for pages without a usable text layer: RapidOCR (ONNX Runtime, models inside the wheel)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pypdfium2 as pdfium

from pdf2md.convert.backends import BackendUnavailable, PageOutput

RENDER_DPI = 200


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
        lines = [text for _box, text, _score in (result or [])]
        return PageOutput("\n\n".join(lines), time.perf_counter() - started)
