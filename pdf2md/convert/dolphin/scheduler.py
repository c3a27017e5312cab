"""Pages of several documents share Dolphin's GPU batches; each document comes back when its last page is read.

A single-page PDF alone hands the GPU one layout and a handful of crops: too little to fill a batch. The
scheduler pools the pages of every submitted document, in submission order, into rounds of up to
`pages_per_round` pages: the round's layouts run as one batch, then all its crops grouped by prompt (a batch
never mixes prompts, so no padding is needed). A document whose pages cannot be rendered, whose model call
raises, whose deadline passes or that is cancelled fails alone: its batch-mates are read again without it
and finish. Out of memory still halves the batch and retries (batching.AdaptiveBatcher).

The single-document backend (DolphinBackend.convert_pages) is this scheduler with one document.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from pdf2md.convert.backends import PageOutput
from pdf2md.convert.document_model import join_blocks
from pdf2md.convert.dolphin.batching import AdaptiveBatcher
from pdf2md.convert.dolphin.guard import GenerationGuard
from pdf2md.convert.dolphin.layout import LayoutElement, PageGeometry, parse_layout, whole_page
from pdf2md.convert.dolphin.markdown import ReadElement, figure_name, page_blocks, rule_for
from pdf2md.convert.dolphin.profiles import Profile
from pdf2md.convert.dolphin.prompts import LAYOUT_PROMPT
from pdf2md.convert.dolphin.render import RenderedPage
from pdf2md.convert.dolphin.repetition import cut_repetition, loop_rule
from pdf2md.convert.errors import ConversionError
from pdf2md.convert.figures import png

log = logging.getLogger(__name__)

PAGES_PER_ROUND = 8
"""Pages whose crops are pooled into the same batches (more pages: fuller batches, more memory held)."""


class Engine(Protocol):
    """What the scheduler needs from a model: its generation's rules, how it sees a page, one prompt over a batch."""

    profile: Profile

    def frame(self, page: Image.Image) -> tuple[Image.Image, PageGeometry]: ...

    def generate(self, images: Sequence[Image.Image], prompt: str) -> list[str | None]: ...


class MemoryProbes(Protocol):
    """GPU peak-memory probes (generation.py's functions; they answer None on a CPU)."""

    def reset_peak_memory(self) -> None: ...

    def peak_memory_mb(self) -> float | None: ...


class _NoProbes:
    def reset_peak_memory(self) -> None:
        return None

    def peak_memory_mb(self) -> float | None:
        return None


@dataclass
class DocumentResult:
    """One submitted document, finished: every page's output, or the error that failed it (pages then empty)."""

    doc_id: Hashable
    pages: dict[int, PageOutput]
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class BatchSizes:
    """How many images each model call actually carried, per stage: what batching reached."""

    layout: Counter[int] = field(default_factory=Counter)
    elements: Counter[int] = field(default_factory=Counter)


class _Source:
    """A document's pages, pulled one at a time with one page of look-ahead (so its end is known with its last page)."""

    def __init__(self, pages: Iterable[RenderedPage]) -> None:
        self._pages = iter(pages)
        self._head: RenderedPage | None = None
        self.exhausted = False

    def peek(self) -> RenderedPage | None:
        """The next page (rendering it if need be; a render error raises here), or None at the end."""
        if self._head is None and not self.exhausted:
            try:
                self._head = next(self._pages)
            except StopIteration:
                self.exhausted = True
        return self._head

    def take(self) -> RenderedPage | None:
        page = self.peek()
        self._head = None
        return page

    def close(self) -> None:
        """Stop a generator of pages (prefetch_pages joins its render thread)."""
        close = getattr(self._pages, "close", None)
        if callable(close):
            close()


@dataclass(eq=False)
class _Doc:
    doc_id: Hashable
    source: _Source
    deadline: float | None
    budget_s: float | None = None
    outputs: dict[int, PageOutput] = field(default_factory=dict)
    error: BaseException | None = None


@dataclass(eq=False)
class _Page:
    doc: _Doc
    page: RenderedPage

    @property
    def image(self) -> Image.Image:
        """What the layout stage reads: the page itself (RenderedPage.layout_image), not the padded square."""
        return self.page.layout_image


@dataclass(eq=False)
class _Crop:
    """One element of one page of the round, waiting to be read."""

    doc: _Doc
    slot: int
    element: LayoutElement
    image: Image.Image


class PageScheduler:
    """Reads the pages of many documents through one Dolphin engine, batching across documents.

    `submit` and `cancel` may be called from any thread; `step`/`run` from one thread (the one that owns the GPU).
    Deadlines (time.monotonic seconds) and cancellations take effect between model calls: a call already
    running finishes first, so a hard per-process limit stays the backstop.

    :param engine: the model (engine.DolphinModel / engine_v2.DolphinV2Model, or a test double).
    :param batcher: sizes the batches and halves them on out-of-memory (shared with the backend: halving is for good).
    :param figures: 'reference' (figures become image references) or 'drop'.
    :param pages_per_round: pages pooled per round of batches.
    :param probes: GPU peak-memory probes reported per page (none: no figure).
    :param clock: the time deadlines are compared with.
    :param guard: counts pages answered in the other generation's format (shared by a backend's schedulers);
        once it faults, every document held and every one submitted later fails with its `wrong-generation`.
    """

    def __init__(
        self,
        engine: Engine,
        batcher: AdaptiveBatcher,
        *,
        figures: str = "reference",
        pages_per_round: int = PAGES_PER_ROUND,
        probes: MemoryProbes | None = None,
        clock: Callable[[], float] = time.monotonic,
        guard: GenerationGuard | None = None,
    ) -> None:
        self.engine = engine
        self.guard = guard or GenerationGuard()
        self.batcher = batcher
        self.figures = figures
        self.pages_per_round = max(1, pages_per_round)
        self.probes: MemoryProbes = probes or _NoProbes()
        self.clock = clock
        self.batch_sizes = BatchSizes()
        self._docs: dict[Hashable, _Doc] = {}
        self._cancelled: dict[Hashable, BaseException] = {}
        self._lock = threading.Lock()

    def submit(
        self, doc_id: Hashable, pages: Iterable[RenderedPage], *, deadline: float | None = None, budget_s: float | None = None
    ) -> None:
        """Queue a document's pages (rendered and framed for this engine; a lazy iterable is pulled only as rounds need it).

        `deadline` is absolute; `budget_s` starts counting when the document's first page enters a round, so
        the time it waits behind other documents is not charged to it (a GPU worker's per-PDF limit).
        """
        with self._lock:
            if doc_id in self._docs:
                raise ValueError(f"document {doc_id!r} is already submitted")
            self._docs[doc_id] = _Doc(doc_id, _Source(pages), deadline, budget_s)

    def cancel(self, doc_id: Hashable, error: BaseException | None = None) -> None:
        """Fail a submitted document at the next model call (default: `interrupted`); its batch-mates go on."""
        reason = error or ConversionError("interrupted", "stopped before its pages were read")
        with self._lock:
            if doc_id in self._docs:
                self._cancelled[doc_id] = reason

    @property
    def pending(self) -> int:
        """Documents submitted and not yet returned."""
        with self._lock:
            return len(self._docs)

    def run(self) -> Iterator[DocumentResult]:
        """Rounds until every submitted document (including ones submitted meanwhile) has come back."""
        while self.pending:
            yield from self.step()

    def step(self) -> list[DocumentResult]:
        """One round of at most `pages_per_round` pages; the documents it finished, in submission order."""
        round_pages = self._fill_round()
        if round_pages:
            self._read_round(round_pages)
        return self._collect()

    def _live(self) -> list[_Doc]:
        with self._lock:
            cancelled, self._cancelled = self._cancelled, {}
            docs = list(self._docs.values())
        for doc in docs:
            if doc.doc_id in cancelled:
                self._fail(doc, cancelled[doc.doc_id])
            if self.guard.fault is not None:
                self._fail(doc, self.guard.fault)
        return [doc for doc in docs if self._alive(doc)]

    def _alive(self, doc: _Doc) -> bool:
        if doc.error is None and doc.deadline is not None and self.clock() > doc.deadline:
            self._fail(doc, ConversionError("timeout", "Dolphin did not read its pages before the PDF's deadline"))
        return doc.error is None

    def _fail(self, doc: _Doc, error: BaseException) -> None:
        if doc.error is not None:
            return
        log.warning("Dolphin: document %r failed; its batch-mates go on: %s", doc.doc_id, error)
        doc.error = error
        doc.outputs.clear()
        try:
            doc.source.close()
        except Exception:  # a page generator that fails to stop must not take the other documents with it
            log.exception("Dolphin: closing the pages of %r failed", doc.doc_id)

    def _fill_round(self) -> list[_Page]:
        """Pages in submission order across documents; each document touched is peeked past its last page taken."""
        pages: list[_Page] = []
        for doc in self._live():
            if doc.budget_s is not None:
                spent_by = self.clock() + doc.budget_s
                doc.deadline = spent_by if doc.deadline is None else min(doc.deadline, spent_by)
                doc.budget_s = None
            try:
                while len(pages) < self.pages_per_round and (page := doc.source.take()) is not None:
                    pages.append(_Page(doc, page))
                doc.source.peek()
            except Exception as exc:
                self._fail(doc, exc)
            if len(pages) >= self.pages_per_round:
                break
        return [p for p in pages if p.doc.error is None]

    def _collect(self) -> list[DocumentResult]:
        with self._lock:
            docs = list(self._docs.values())
        done = [doc for doc in docs if doc.error is not None or doc.source.exhausted]
        with self._lock:
            for doc in done:
                del self._docs[doc.doc_id]
                self._cancelled.pop(doc.doc_id, None)
        return [DocumentResult(doc.doc_id, {} if doc.error else dict(doc.outputs), doc.error) for doc in done]

    def _read_round(self, pages: list[_Page]) -> None:
        """Layouts for the round's pages in one batch, then every crop of the round by prompt."""
        self.probes.reset_peak_memory()
        seconds = [p.page.seconds for p in pages]
        layouts = self.batcher.run(pages, self._reader(LAYOUT_PROMPT, self.batch_sizes.layout))
        profile = self.engine.profile
        elements: list[list[LayoutElement]] = []
        fallbacks: list[bool] = []
        notes: list[str | None] = []
        for slot, item in enumerate(pages):
            seconds[slot] += layouts.seconds[slot]
            answer = layouts.results[slot]
            notes.append(self.guard.check(answer, profile) if answer is not None and item.doc.error is None else None)
            parsed = self._guarded(item.doc, parse_layout, answer or "", item.page.geometry, profile, item.page.image) or []
            fallbacks.append(not parsed)
            elements.append(parsed or whole_page(item.page.geometry, profile.fallback_label))
        if self.guard.fault is not None:
            self._live()  # fails every document held: none is read whole by the wrong rules
            return
        texts, failed = self._read_elements(pages, elements, seconds)
        peak_mb = self.probes.peak_memory_mb()
        for slot, item in enumerate(pages):
            if item.doc.error is not None:
                continue
            output = self._guarded(
                item.doc, self._page_output, item.page, elements[slot], texts, slot, seconds[slot], fallbacks[slot], failed[slot], peak_mb, notes[slot]
            )
            if output is not None:
                item.doc.outputs[item.page.index] = output

    def _read_elements(
        self, pages: list[_Page], elements: list[list[LayoutElement]], seconds: list[float]
    ) -> tuple[dict[tuple[int, int], str], list[int]]:
        """Read every crop that has a prompt, one prompt at a time (1.0 asks formulas and code with the text
        prompt, so they share its batches), largest first (similar lengths batch well)."""
        by_prompt: dict[str, list[_Crop]] = defaultdict(list)
        prompts = self.engine.profile.prompts
        for slot, item in enumerate(pages):
            if item.doc.error is not None:
                continue
            for element in elements[slot]:
                kind = rule_for(element.label).kind
                if kind is not None:
                    by_prompt[prompts[kind]].append(_Crop(item.doc, slot, element, item.page.image.crop(element.box)))
        texts: dict[tuple[int, int], str] = {}
        failed = [0] * len(pages)
        for prompt, crops in by_prompt.items():
            crops.sort(key=lambda c: -_area(c.element.box))
            rule = loop_rule(prompt)
            run = self.batcher.run(crops, self._reader(prompt, self.batch_sizes.elements))
            for crop, text, spent in zip(crops, run.results, run.seconds):
                seconds[crop.slot] += spent
                failed[crop.slot] += text is None
                texts[(crop.slot, crop.element.order)] = cut_repetition(text or "", rule)
        return texts, failed

    def _reader(self, prompt: str, sizes: Counter[int]) -> Callable[[Sequence[_Page | _Crop]], list[str | None]]:
        """The batch function: skips documents already failed; a raising batch is read again one document at a time."""

        def read(batch: Sequence[_Page | _Crop]) -> list[str | None]:
            out: list[str | None] = [None] * len(batch)
            live = [i for i, item in enumerate(batch) if self._alive(item.doc)]
            if not live:
                return out
            try:
                answers = self._generate(batch, live, prompt, sizes)
            except Exception as exc:
                if self.batcher.is_oom(exc):
                    raise
                docs = {id(batch[i].doc): batch[i].doc for i in live}
                if len(docs) == 1:
                    self._fail(batch[live[0]].doc, exc)
                    return out
                log.warning("Dolphin: a batch of %d documents raised; reading it again one document at a time", len(docs))
                for doc in docs.values():
                    mine = [i for i in live if batch[i].doc is doc]
                    try:
                        again = self._generate(batch, mine, prompt, sizes)
                    except Exception as single:
                        if self.batcher.is_oom(single):
                            raise
                        self._fail(doc, single)
                        continue
                    for i, answer in zip(mine, again):
                        out[i] = answer
                return out
            for i, answer in zip(live, answers):
                out[i] = answer
            return out

        return read

    def _generate(self, batch: Sequence[_Page | _Crop], rows: list[int], prompt: str, sizes: Counter[int]) -> list[str | None]:
        answers = self.engine.generate([batch[i].image for i in rows], prompt)
        sizes[len(rows)] += 1
        if len(answers) != len(rows):
            raise RuntimeError(f"the model answered {len(answers)} of {len(rows)} images")
        return answers

    def _guarded(self, doc: _Doc, work: Callable[..., Any], *args: Any) -> Any:
        """One document's share of the round's CPU work: an error fails that document only (None returned)."""
        if doc.error is not None:
            return None
        try:
            return work(*args)
        except Exception as exc:
            self._fail(doc, exc)
            return None

    def _page_output(
        self,
        page: RenderedPage,
        elements: list[LayoutElement],
        texts: dict[tuple[int, int], str],
        slot: int,
        seconds: float,
        fallback: bool,
        failed: int,
        peak_mb: float | None,
        mismatch: str | None,
    ) -> PageOutput:
        read = [ReadElement(e.label, texts.get((slot, e.order), ""), e.order) for e in elements]
        extra: dict[str, Any] = {
            "layout": "fallback" if fallback else "model",
            "elements": len(elements),
            "failed_elements": failed,
            "element_batch": self.batcher.size,
            "figures": _figures(page, elements) if self.figures == "reference" else [],
        }
        if peak_mb is not None:
            extra["gpu_peak_mb"] = peak_mb
        if mismatch is not None:
            extra["generation_mismatch"] = mismatch
        blocks = page_blocks(read, page.index, self.figures, {e.order: _page_fraction(page, e.box) for e in elements},
                             latex=self.engine.profile.latex)
        images = tuple(_figure_png(page, e.box) for e in sorted(elements, key=lambda e: e.order)
                       if rule_for(e.label).block == "figure") if self.figures == "image" else ()
        return PageOutput(join_blocks(blocks), seconds, extra, blocks=blocks, images=images)


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


def _figure_png(page: RenderedPage, box: tuple[int, int, int, int]) -> bytes:
    """A figure cut from the image the model saw, within the page (not its padding)."""
    x0, y0, x1, y1 = page.geometry.content
    left, top = min(max(box[0], x0), x1 - 1), min(max(box[1], y0), y1 - 1)
    return png(page.image.crop((left, top, max(left + 1, min(box[2], x1)), max(top + 1, min(box[3], y1)))))


def _page_fraction(page: RenderedPage, box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """An element's box as fractions of the page (clamped to it): the document model scales it to points."""
    x0, y0, x1, y1 = page.geometry.content
    width, height = x1 - x0, y1 - y0
    return _fraction(box[0] - x0, width), _fraction(box[1] - y0, height), _fraction(box[2] - x0, width), _fraction(box[3] - y0, height)


def _fraction(offset: int, extent: int) -> float:
    return round(min(max(offset / extent, 0.0), 1.0), 4)


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])
