"""Model backends for the pages the text layer cannot serve, behind one small protocol."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

import pypdfium2 as pdfium

from pdf2md.convert.document_model import Block, PageConfidence


@dataclass
class PageOutput:
    """One page's Markdown from a model backend, with what it cost."""

    markdown: str
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    blocks: tuple[Block, ...] = ()
    """The page's Markdown as blocks, boxes as fractions of the page (0..1, top-left origin): the caller
    knows the page's size in points and scales them. Empty: the backend gives only `markdown`."""
    confidence: PageConfidence | None = None
    images: tuple[bytes, ...] = ()
    """PNGs of the page's figure blocks, in their order (only when the backend was asked to cut them)."""


class PageBackend(Protocol):
    """Converts whole pages (rendered from the open document) to Markdown."""

    name: str

    def convert_pages(self, doc: pdfium.PdfDocument, pages: Sequence[int]) -> dict[int, PageOutput]: ...


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (no model, no GPU, a missing package): a one-line reason."""


_BACKENDS = {
    "ocr": "pdf2md.convert.ocr:OcrBackend",
    "dolphin": "pdf2md.convert.dolphin:DolphinBackend",
}


@cache
def load_backend(name: str) -> PageBackend:
    """Build the named backend once per process (models load once, not per PDF)."""
    try:
        spec = _BACKENDS[name]
    except KeyError:
        raise BackendUnavailable(f"unknown model backend {name!r}") from None
    try:
        factory = import_target(spec)
    except ImportError as exc:
        raise BackendUnavailable(f"backend {name!r} needs a package that is not installed: {exc.name}") from exc
    return factory()


def import_target(spec: str) -> Any:
    """What a 'module:attr' spec names, imported only when asked for (the modules bring torch or ONNX)."""
    module_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def auto_model_backend() -> str:
    """Dolphin where a CUDA GPU and a model are present, the CPU OCR engine otherwise."""
    try:
        from pdf2md.convert.dolphin import dolphin_available
    except ImportError:
        return "ocr"
    return "dolphin" if dolphin_available() else "ocr"
