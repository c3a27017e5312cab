"""Per-page routing: the text layer where it is usable, a model backend where it is not."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdf2md.contracts import DEFAULT_BACKEND, DEFAULT_MAX_PAGES, PageRoute
from pdf2md.convert import textlayer
from pdf2md.convert.backends import BackendUnavailable, auto_model_backend, load_backend
from pdf2md.convert.document import open_pdf
from pdf2md.convert.errors import ConversionError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvertOptions:
    backend: str = DEFAULT_BACKEND
    passwords: tuple[str, ...] = ()
    max_pages: int = DEFAULT_MAX_PAGES
    page_markers: bool = False


@dataclass
class Conversion:
    markdown: str
    pages: int
    backend: str
    routes: list[PageRoute]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def convert_pdf(path: Path, options: ConvertOptions = ConvertOptions()) -> Conversion:
    """Convert one PDF; raises ConversionError with an error class for anything it cannot do."""
    started = time.perf_counter()
    with open_pdf(path, options.passwords, options.max_pages) as doc:
        n_pages = len(doc)
        layer = textlayer.extract(doc)
        decisions = [_route(options.backend, layer.pages[i]) for i in range(n_pages)]
        model_pages = [i for i, (route, _) in enumerate(decisions) if route == "model"]
        model_name = _model_backend_name(options.backend) if model_pages else ""
        model_out = _run_model(model_name, doc, model_pages) if model_pages else {}
    routes: list[PageRoute] = []
    chunks: list[str] = []
    for i, (route, reason) in enumerate(decisions):
        if route == "model":
            out = model_out[i]
            chunks.append(out.markdown)
            routes.append(PageRoute(page=i + 1, route=model_name, reason=reason, seconds=round(out.seconds, 4)))
        else:
            chunks.append(layer.pages[i].markdown)
            routes.append(PageRoute(page=i + 1, route="text", reason=reason))
    markdown = textlayer.join_pages(chunks, page_markers=options.page_markers)
    used = sorted({r.route for r in routes})
    return Conversion(
        markdown=markdown,
        pages=n_pages,
        backend="+".join(used),
        routes=routes,
        seconds=time.perf_counter() - started,
    )


def _route(backend: str, page: textlayer.PageText) -> tuple[str, str]:
    if backend == "text":
        return "text", "backend=text"
    if backend in ("ocr", "dolphin"):
        return "model", f"backend={backend}"
    usable, reason = page.usable, page.reason
    return ("text", reason) if usable else ("model", reason)


def _model_backend_name(backend: str) -> str:
    return backend if backend in ("ocr", "dolphin") else auto_model_backend()


def _run_model(name: str, doc: Any, pages: list[int]) -> dict[int, Any]:
    try:
        backend = load_backend(name)
    except BackendUnavailable as exc:
        raise ConversionError("backend-unavailable", str(exc)) from exc
    log.debug("%d page(s) to the %s backend", len(pages), name)
    return backend.convert_pages(doc, pages)
