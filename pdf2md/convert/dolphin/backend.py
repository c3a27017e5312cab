"""The Dolphin page backend: layout per page, then element crops batched by prompt across pages.

The same pipeline drives every generation; the checkpoint picks the engine and the profile (profiles.py)
whose rules read its layout and choose its prompts.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import pypdfium2 as pdfium
from PIL import Image

from pdf2md.convert.backends import BackendUnavailable, PageOutput, import_target
from pdf2md.convert.dolphin.batching import MAX_BATCH, AdaptiveBatcher, initial_batch_size
from pdf2md.convert.dolphin.layout import LayoutElement, PageGeometry, parse_layout, whole_page
from pdf2md.convert.dolphin.markdown import FIGURE_MODES, ReadElement, figure_name, page_markdown, rule_for
from pdf2md.convert.dolphin.model_dir import resolve_model_dir
from pdf2md.convert.dolphin.profiles import Profile, profile_for
from pdf2md.convert.dolphin.prompts import LAYOUT_PROMPT
from pdf2md.convert.dolphin.render import RenderedPage, prefetch_pages
from pdf2md.convert.dolphin.repetition import cut_repetition

log = logging.getLogger(__name__)

ENV_MAX_BATCH = "PDF2MD_DOLPHIN_MAX_BATCH"
"""Upper bound on crops decoded together (the free GPU memory may allow fewer)."""
ENV_FIGURES = "PDF2MD_DOLPHIN_FIGURES"
"""'reference' (default): figures become image references; 'drop': figures are left out."""
PAGES_PER_ROUND = 8
"""Pages whose crops are pooled into the same batches (more pages: fuller batches, more memory held)."""


ENGINES = {
    "1.0": "pdf2md.convert.dolphin.engine:DolphinModel",
    "1.5": "pdf2md.convert.dolphin.engine:DolphinModel",
    "v2": "pdf2md.convert.dolphin.engine_v2:DolphinV2Model",
}
"""Generation (profiles.PROFILES) -> the engine that runs it."""


class Engine(Protocol):
    """What the backend needs from a model: its generation's rules, how it sees a page, one prompt over a batch."""

    profile: Profile

    def frame(self, page: Image.Image) -> tuple[Image.Image, PageGeometry]: ...

    def generate(self, images: Sequence[Image.Image], prompt: str) -> list[str | None]: ...


@dataclass(frozen=True)
class _Crop:
    """One element of one page of the round, waiting to be read."""

    page: int
    element: LayoutElement
    image: Image.Image


class DolphinBackend:
    """Dolphin (1.0, 1.5 or v2) on whole pages.

    :param model_dir: a complete checkpoint dir; default: PDF2MD_MODEL_DIR / PDF2MD_MODEL_URI.
    :param figures: 'reference' or 'drop'; default: PDF2MD_DOLPHIN_FIGURES or 'reference'.
    :param max_batch: most crops per batch; default: PDF2MD_DOLPHIN_MAX_BATCH or 8 (fewer if memory is short).
    :param pages_per_round: pages rendered ahead and pooled per round of batches.
    :param engine: a ready model (tests); default: the engine for the checkpoint in the model dir.
    """

    name = "dolphin"

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        figures: str | None = None,
        max_batch: int | None = None,
        pages_per_round: int = PAGES_PER_ROUND,
        engine: Engine | None = None,
    ) -> None:
        try:
            from pdf2md.convert.dolphin import generation
        except ImportError as exc:
            raise BackendUnavailable(f"the Dolphin backend needs torch and transformers (pip install 'pdf2md[dolphin]'): {exc.name}") from exc
        env = os.environ
        self.figures = figures or env.get(ENV_FIGURES) or "reference"
        if self.figures not in FIGURE_MODES:
            raise BackendUnavailable(f"{ENV_FIGURES}={self.figures!r} is not one of {', '.join(FIGURE_MODES)}")
        self.pages_per_round = max(1, pages_per_round)
        self.engine: Engine = engine or load_engine(model_dir or resolve_model_dir(env))
        cap = max_batch or _int_env(env, ENV_MAX_BATCH) or MAX_BATCH
        self.batcher = AdaptiveBatcher(
            initial_batch_size(generation.free_gpu_bytes(), cap),
            is_oom=generation.is_oom,
            after_oom=generation.release_cached_memory,
        )
        self._gpu = generation  # memory probes; imported here so that importing this module needs no torch
        log.info("Dolphin backend ready: element batch %d, figures %s", self.batcher.size, self.figures)

    def convert_pages(self, doc: pdfium.PdfDocument, pages: Sequence[int]) -> dict[int, PageOutput]:
        out: dict[int, PageOutput] = {}
        for round_pages in _chunks(prefetch_pages(doc, pages, self.engine.frame, self.pages_per_round), self.pages_per_round):
            out.update(self._convert_round(round_pages))
        return out

    def _convert_round(self, pages: list[RenderedPage]) -> dict[int, PageOutput]:
        """Layouts for the round's pages in one batch, then every crop of the round by prompt."""
        self._gpu.reset_peak_memory()
        seconds = [p.seconds for p in pages]
        layouts = self.batcher.run([p.image for p in pages], lambda batch: self.engine.generate(batch, LAYOUT_PROMPT))
        elements: list[list[LayoutElement]] = []
        fallbacks: list[bool] = []
        for i, page in enumerate(pages):
            seconds[i] += layouts.seconds[i]
            profile = self.engine.profile
            parsed = parse_layout(layouts.results[i] or "", page.geometry, profile, page.image)
            fallbacks.append(not parsed)
            elements.append(parsed or whole_page(page.geometry, profile.fallback_label))
        texts, failed = self._read_elements(pages, elements, seconds)
        peak_mb = self._gpu.peak_memory_mb()
        out: dict[int, PageOutput] = {}
        for i, page in enumerate(pages):
            read = [ReadElement(e.label, texts.get((i, e.order), ""), e.order) for e in elements[i]]
            extra: dict[str, Any] = {
                "layout": "fallback" if fallbacks[i] else "model",
                "elements": len(elements[i]),
                "failed_elements": failed[i],
                "element_batch": self.batcher.size,
                "figures": _figures(page, elements[i]) if self.figures == "reference" else [],
            }
            if peak_mb is not None:
                extra["gpu_peak_mb"] = peak_mb
            out[page.index] = PageOutput(page_markdown(read, page.index, self.figures), seconds[i], extra)
        return out

    def _read_elements(
        self, pages: list[RenderedPage], elements: list[list[LayoutElement]], seconds: list[float]
    ) -> tuple[dict[tuple[int, int], str], list[int]]:
        """Read every crop that has a prompt, one prompt at a time (1.0 asks formulas and code with the text
        prompt, so they share its batches), largest first (similar lengths batch well)."""
        by_prompt: dict[str, list[_Crop]] = defaultdict(list)
        for i, page in enumerate(pages):
            for element in elements[i]:
                kind = rule_for(element.label).kind
                if kind is not None:
                    by_prompt[self.engine.profile.prompts[kind]].append(_Crop(i, element, page.image.crop(element.box)))
        texts: dict[tuple[int, int], str] = {}
        failed = [0] * len(pages)
        for prompt, crops in by_prompt.items():
            crops.sort(key=lambda c: -_area(c.element.box))
            run = self.batcher.run([c.image for c in crops], lambda batch, prompt=prompt: self.engine.generate(batch, prompt))
            for crop, text, spent in zip(crops, run.results, run.seconds):
                seconds[crop.page] += spent
                failed[crop.page] += text is None
                texts[(crop.page, crop.element.order)] = cut_repetition(text or "")
        return texts, failed


def load_engine(model_dir: Path) -> Engine:
    """The engine for the checkpoint's generation; a one-line error for anything that is not Dolphin."""
    profile = profile_for(model_dir)
    engine: Engine = import_target(ENGINES[profile.name])(model_dir, profile=profile)
    return engine


def _figures(page: RenderedPage, elements: list[LayoutElement]) -> list[dict[str, Any]]:
    """Each figure's image name and box as fractions of the page (a 1.x box may reach into the padding:
    clamped, as upstream's `map_to_original_coordinates` does), so a later step can cut it out."""
    x0, y0, x1, y1 = page.geometry.content
    width, height = x1 - x0, y1 - y0
    boxes = [e.box for e in elements if rule_for(e.label).block == "figure"]
    return [
        {
            "name": figure_name(page.index, n),
            "box": [_fraction(b[0] - x0, width), _fraction(b[1] - y0, height), _fraction(b[2] - x0, width), _fraction(b[3] - y0, height)],
        }
        for n, b in enumerate(boxes, 1)
    ]


def _fraction(offset: int, extent: int) -> float:
    return round(min(max(offset / extent, 0.0), 1.0), 4)


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _chunks(items: Iterable[RenderedPage], size: int) -> Iterator[list[RenderedPage]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _int_env(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BackendUnavailable(f"{name} must be an integer, got {raw!r}") from None
