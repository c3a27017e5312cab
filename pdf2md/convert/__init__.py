"""The converter: one PDF in, Markdown and a per-page account of how it was made out.

`convert_pdf` is the only entry point the CLI and the worker use. Backends:
- ``text``: the PDF's own text layer, on the CPU (pages without one come out empty);
- ``ocr``: every page through the CPU OCR engine;
- ``dolphin``: every page through the Dolphin model;
- ``auto``: per page, the text layer when it is usable, otherwise the model backend
  (Dolphin where a GPU and a model are present, OCR otherwise).
"""

from __future__ import annotations

from pdf2md.convert.errors import ConversionError
from pdf2md.convert.pipeline import Conversion, ConvertOptions, convert_pdf

__all__ = ["Conversion", "ConversionError", "ConvertOptions", "convert_pdf"]
