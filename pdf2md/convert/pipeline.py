"""Per-page routing: the text layer where it is usable, a model backend where it is not.

A text layer is not usable when it is missing or nearly empty on a page that still draws something to
read: an image (a scan), glyphs that extract as unmapped codes (Type 3 or other fonts without a character
map), or text drawn as vector outlines; when most of it is invisible (render mode 3: a scanner's OCR
layer, often poor); or when many of its characters are unmapped glyphs (U+FFFD, private-use or control codes).
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw

from pdf2md.contracts import DEFAULT_BACKEND, DEFAULT_MAX_PAGES, PageRoute
from pdf2md.convert import textlayer
from pdf2md.convert.backends import BackendUnavailable, PageOutput, auto_model_backend, load_backend
from pdf2md.convert.document import open_pdf
from pdf2md.convert.document_model import Block, Document, Page, PageConfidence, markdown_only
from pdf2md.convert.errors import ConversionError
from pdf2md.convert.figures import in_reading_order, named, text_page_figures
from pdf2md.convert.page_facts import page_labels, page_sizes

log = logging.getLogger(__name__)

MIN_USABLE_CHARS = 20
"""Fewer letters and digits than this on a page that draws more (an image, glyphs, outlines): the text is
on the page only as pictures or shapes."""
MIN_UNMAPPED_GLYPHS = 10
"""This many glyphs without a character (control, private-use, U+FFFD) on a near-empty page: text that
renders but does not extract, as Type 3 fonts named /g1, /g2... do."""
MIN_OUTLINE_SEGMENTS = 200
"""At least this many path segments on a near-empty page: its text is likely drawn as outlines (a glyph
takes about 10 to 40 segments; table rules and frames take a few)."""
MAX_UNREADABLE_SHARE = 0.1
"""A document with more pages pdfium cannot load than this fails as corrupt; fewer come out empty."""
MAX_INVISIBLE_SHARE = 0.5
MAX_BAD_SHARE = 0.05
MIN_ALNUM_SHARE = 0.3
"""Below this share of letters and digits among the printed characters, the layer is glyph soup."""


@dataclass(frozen=True)
class ConvertOptions:
    backend: str = DEFAULT_BACKEND
    passwords: tuple[str, ...] = ()
    max_pages: int = DEFAULT_MAX_PAGES
    page_markers: bool = False
    model: str = ""
    """The model backend for pages without a usable text layer, when the caller has already chosen it ('':
    model_backend_for(backend)). A shard chooses once, so that `auto` does not import torch in every child."""
    figures: bool = False
    """Cut the text pages' figures out as images (the `figures` output; model pages: the backend's setting)."""
    document: bool = True
    """Hand back the typed document with the Markdown; False where no output needs it (a Markdown-only shard:
    the Conversion its children send back stays as small as the Markdown)."""


@dataclass
class Conversion:
    markdown: str
    pages: int
    backend: str
    routes: list[PageRoute]
    seconds: float
    document: Document = field(default_factory=lambda: Document(()))
    """The typed document the Markdown was written from (and the JSON is)."""
    images: dict[str, bytes] = field(default_factory=dict)
    """The figures' PNGs by the name their blocks carry (empty unless figures were asked for)."""

    @property
    def gpu_peak_mb(self) -> float | None:
        """The most GPU memory any page's model run held (None when no page ran on a GPU)."""
        peaks = [r.model["gpu_peak_mb"] for r in self.routes if "gpu_peak_mb" in r.model]
        return max(peaks) if peaks else None


@dataclass
class Plan:
    """A PDF's pages routed, with the text layer's Markdown of the text pages: what is left is the model's pages.

    Plain data (it crosses process boundaries): the CPU work of a conversion ends here, and `assemble`
    finishes it once the model pages are read, wherever and in whatever batches that happened.
    """

    pages: int
    decisions: list[tuple[str, str]]
    """(route, why) per page: 'text', 'unreadable' or 'model'."""
    chunks: list[str]
    """The text layer's Markdown per page ('' for pages going to the model)."""
    model: str
    """The model backend for the model pages ('' when there are none)."""
    page_markers: bool
    started: float
    sizes: list[tuple[float, float]] = field(default_factory=list)
    """Each page's (width, height) in points as displayed."""
    labels: list[str | None] = field(default_factory=list)
    """The PDF's own page labels (None: none)."""
    blocks: list[tuple[Block, ...]] = field(default_factory=list)
    """The text layer's blocks per page (empty for pages going to the model)."""
    confidence: list[PageConfidence | None] = field(default_factory=list)
    """The text-layer checks of each text page (None for the others)."""
    figures: list[list[tuple[Block, bytes]]] = field(default_factory=list)
    """The text pages' figures with their PNGs, when asked for."""
    document: bool = True
    """Whether the Conversion carries its document (ConvertOptions.document)."""

    @property
    def model_pages(self) -> list[int]:
        return [i for i, (route, _) in enumerate(self.decisions) if route == "model"]


def convert_pdf(path: Path, options: ConvertOptions = ConvertOptions()) -> Conversion:
    """Convert one PDF; raises ConversionError with an error class for anything it cannot do."""
    started = time.perf_counter()
    with open_pdf(path, options.passwords, options.max_pages) as doc:
        try:
            plan = plan_document(doc, options, started)
            model_out = _run_model(plan.model, doc, plan.model_pages) if plan.model_pages else {}
        except pdfium.PdfiumError as exc:
            raise ConversionError("corrupt", f"pdfium cannot read a page: {exc}") from None
    return assemble(plan, model_out)


def plan_pdf(path: Path, options: ConvertOptions = ConvertOptions()) -> Plan:
    """Open and plan one PDF (its CPU share of the work); raises ConversionError as convert_pdf would."""
    started = time.perf_counter()
    with open_pdf(path, options.passwords, options.max_pages) as doc:
        try:
            return plan_document(doc, options, started)
        except pdfium.PdfiumError as exc:
            raise ConversionError("corrupt", f"pdfium cannot read a page: {exc}") from None


def plan_document(doc: pdfium.PdfDocument, options: ConvertOptions, started: float | None = None) -> Plan:
    """Read the text layer and route every page (pdfium errors inside are the caller's to translate)."""
    started = time.perf_counter() if started is None else started
    n_pages = len(doc)
    needs_text = options.backend in ("auto", "text")
    layer = textlayer.extract(doc) if needs_text else None
    if layer and len(layer.unreadable) > MAX_UNREADABLE_SHARE * n_pages:
        raise ConversionError("corrupt", f"pdfium cannot load {len(layer.unreadable)} of {n_pages} pages")
    decisions = [
        ("unreadable", "pdfium cannot load this page") if layer and i in layer.unreadable
        else _route(options.backend, doc, i, layer.pages[i].stats if layer else None)
        for i in range(n_pages)
    ]
    has_model_pages = any(route == "model" for route, _ in decisions)
    sizes = page_sizes(doc)
    return Plan(
        pages=n_pages,
        decisions=decisions,
        chunks=[layer.pages[i].markdown if layer and route != "model" else "" for i, (route, _) in enumerate(decisions)],
        model=(options.model or model_backend_for(options.backend)) if has_model_pages else "",
        page_markers=options.page_markers,
        started=started,
        sizes=sizes,
        labels=page_labels(doc),
        blocks=[layer.pages[i].blocks if layer and route == "text" else () for i, (route, _) in enumerate(decisions)],
        confidence=[text_confidence(layer.pages[i].stats) if layer and route == "text" else None
                    for i, (route, _) in enumerate(decisions)],
        figures=[text_page_figures(doc, i, *sizes[i]) if options.figures and route == "text" else []
                 for i, (route, _) in enumerate(decisions)] if options.figures else [],
        document=options.document,
    )


def assemble(plan: Plan, model_out: Mapping[int, PageOutput]) -> Conversion:
    """The Conversion of a planned PDF, given the model's output for each of its model pages."""
    routes: list[PageRoute] = []
    pages: list[Page] = []
    images: dict[str, bytes] = {}
    for i, (route, reason) in enumerate(plan.decisions):
        width, height = plan.sizes[i] if i < len(plan.sizes) else (0.0, 0.0)
        label = plan.labels[i] if i < len(plan.labels) else None
        if route == "model":
            out = model_out[i]
            blocks = tuple(b.scaled(width, height) for b in out.blocks) if out.blocks else markdown_only(out.markdown)
            pages.append(named(Page(i + 1, width, height, plan.model, reason, blocks, label, out.confidence), images, list(out.images)))
            routes.append(PageRoute(page=i + 1, route=plan.model, reason=reason, seconds=round(out.seconds, 4), model=out.extra))
        else:
            blocks = plan.blocks[i] if i < len(plan.blocks) else markdown_only(plan.chunks[i])
            confidence = plan.confidence[i] if i < len(plan.confidence) else None
            figures = plan.figures[i] if i < len(plan.figures) else []
            crops = {id(block): data for block, data in figures}
            blocks = in_reading_order(blocks, [block for block, _ in figures]) if figures else blocks
            page = Page(i + 1, width, height, route, reason, blocks, label, confidence)
            pages.append(named(page, images, [crops.get(id(b)) for b in blocks if b.kind == "figure"]) if figures else page)
            routes.append(PageRoute(page=i + 1, route=route, reason=reason))
    document = Document(tuple(pages))
    return Conversion(
        markdown=document.markdown(page_markers=plan.page_markers),
        pages=plan.pages,
        backend="+".join(sorted({r.route for r in routes})),
        routes=routes,
        seconds=time.perf_counter() - plan.started,
        document=document if plan.document else Document(()),
        images=images,
    )


def text_confidence(stats: textlayer.LayerStats) -> PageConfidence:
    """A text page's confidence: the share of its printed characters that map to Unicode, with the router's counts."""
    checks = {"printed": stats.chars, "alnum": stats.alnum, "invisible": stats.invisible, "unmapped": stats.bad}
    return PageConfidence("text-layer", round(1 - stats.bad / stats.chars, 4) if stats.chars else None, checks)


def _route(backend: str, doc: pdfium.PdfDocument, index: int, stats: textlayer.LayerStats | None) -> tuple[str, str]:
    """('text' or 'model', why) for one page."""
    if backend == "text":
        return "text", "backend=text"
    if backend in ("ocr", "dolphin") or stats is None:
        return "model", f"backend={backend}"
    usable, reason = judge_text_layer(stats, lambda: drawn_content(doc, index))
    return ("text", reason) if usable else ("model", reason)


def judge_text_layer(stats: textlayer.LayerStats, drawn: Callable[[], str | None]) -> tuple[bool, str]:
    """Whether a page's text layer is worth using, and why.

    `drawn` says what else the page draws that may hold text (None: nothing); it is only asked for
    near-empty layers, where it decides between an empty page and text that is on it only as pixels or shapes.
    """
    if stats.alnum < MIN_USABLE_CHARS:
        unmapped = f"{stats.bad} glyphs without characters" if stats.bad >= MIN_UNMAPPED_GLYPHS else None
        seen = unmapped or drawn()
        if seen:
            return False, f"text layer has {stats.alnum} letters or digits (< {MIN_USABLE_CHARS}) on a page with {seen}"
        return True, f"text layer has {stats.alnum} letters or digits and the page draws no image or outlines"
    if stats.invisible > MAX_INVISIBLE_SHARE * stats.chars:
        return False, f"{stats.invisible} of {stats.chars} characters are invisible (render mode 3): an OCR layer"
    if stats.bad > MAX_BAD_SHARE * stats.chars:
        return False, f"{stats.bad} of {stats.chars} characters are unmapped glyphs (U+FFFD, private-use, control)"
    if stats.alnum < MIN_ALNUM_SHARE * stats.chars:
        return False, f"only {stats.alnum} of {stats.chars} characters are letters or digits: a garbled layer"
    return True, f"text layer with {stats.alnum} letters or digits"


def drawn_content(doc: pdfium.PdfDocument, index: int) -> str | None:
    """What the page draws that may hold text besides its text layer: an image or form (which may hold one),
    or enough vector path segments to be text converted to outlines; None for neither."""
    page = doc[index]
    try:
        segments = 0
        for i in range(pdfium_raw.FPDFPage_CountObjects(page.raw)):
            obj = pdfium_raw.FPDFPage_GetObject(page.raw, i)
            kind = pdfium_raw.FPDFPageObj_GetType(obj)
            if kind in (pdfium_raw.FPDF_PAGEOBJ_IMAGE, pdfium_raw.FPDF_PAGEOBJ_FORM):
                return "an image" if kind == pdfium_raw.FPDF_PAGEOBJ_IMAGE else "a form XObject (which may hold an image)"
            if kind == pdfium_raw.FPDF_PAGEOBJ_PATH and _visible(obj):
                segments += max(0, pdfium_raw.FPDFPath_CountSegments(obj))
    finally:
        page.close()
    return f"vector outlines ({segments} path segments)" if segments >= MIN_OUTLINE_SEGMENTS else None


def _visible(path: pdfium_raw.FPDF_PAGEOBJECT) -> bool:
    """Whether a path is filled or stroked (clipping-only paths draw nothing)."""
    fill, stroke = ctypes.c_int(), ctypes.c_int()
    if not pdfium_raw.FPDFPath_GetDrawMode(path, ctypes.byref(fill), ctypes.byref(stroke)):
        return True
    return bool(fill.value or stroke.value)


def model_backend_for(backend: str) -> str:
    """The model backend pages without a usable text layer go to: the one asked for, or the best one here."""
    return backend if backend in ("ocr", "dolphin") else auto_model_backend()


def _run_model(name: str, doc: Any, pages: list[int]) -> dict[int, PageOutput]:
    try:
        backend = load_backend(name)
    except BackendUnavailable as exc:
        raise ConversionError("backend-unavailable", str(exc)) from exc
    log.debug("%d page(s) to the %s backend", len(pages), name)
    return backend.convert_pages(doc, pages)
