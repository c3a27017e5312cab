"""Pages -> the images the model sees, on a CPU thread a few pages ahead of the GPU (pages are rendered once)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pypdfium2 as pdfium
from PIL import Image

from pdf2md.convert.dolphin.layout import MODEL_SQUARE, PageGeometry

PAD_COLOUR = (0, 0, 0)
"""Dolphin 1.x's processor pads with black; the page must sit in the square the same way."""
RENDER_LONG_SIDE = MODEL_SQUARE
"""Both Dolphin generations are fed pages rendered with the long side at 896 px, as upstream renders them."""

PDFIUM_LOCK = threading.RLock()
"""pdfium is not thread-safe, even across documents: every render here holds this lock, and any other code of
the GPU process that touches pdfium while a scheduler renders (a worker opening the next PDF) should hold it too."""

Frame = Callable[[Image.Image], tuple[Image.Image, PageGeometry]]
"""A page as rendered -> the image the model sees and where the page lies in it (each model has its own)."""


@dataclass(frozen=True)
class RenderedPage:
    """A page framed for its model: `image` is what element boxes are cut from (1.x: the page centred in a
    black square, as upstream's `prepare_image` pads it), `geometry` where the page lies in it."""

    index: int
    image: Image.Image
    geometry: PageGeometry
    seconds: float

    @property
    def layout_image(self) -> Image.Image:
        """What the layout prompt is asked about: the page as rendered. Upstream hands the page itself to the
        processor, which resizes it and then pads it (bytedance/Dolphin 4c09bb3 demo_page_hf.py and 05f0df1
        demo_page.py `process_single_image`); the padded square is only where the crops are cut."""
        if self.geometry.content == (0, 0, *self.image.size):
            return self.image
        return self.image.crop(self.geometry.content)


def pad_to_square(page: Image.Image) -> tuple[Image.Image, PageGeometry]:
    """Centre the page in a black square (Dolphin 1.x's frame)."""
    geometry = PageGeometry.centred(*page.size)
    square = Image.new("RGB", geometry.size, PAD_COLOUR)
    square.paste(page, geometry.content[:2])
    return square, geometry


def render_page(doc: pdfium.PdfDocument, index: int, frame: Frame, long_side: int = RENDER_LONG_SIDE) -> RenderedPage:
    """Render with the long side at `long_side` pixels, then frame it for the model."""
    started = time.perf_counter()
    with PDFIUM_LOCK:
        page = doc[index]
        try:
            width, height = page.get_size()
            image = page.render(scale=long_side / max(width, height, 1)).to_pil().convert("RGB")
        finally:
            page.close()
    framed, geometry = frame(image)
    return RenderedPage(index, framed, geometry, time.perf_counter() - started)


_DONE = object()


def prefetch_pages(doc: pdfium.PdfDocument, pages: Sequence[int], frame: Frame, depth: int = 4) -> Iterator[RenderedPage]:
    """Yield rendered pages while a thread renders the next `depth` (pdfium is touched by that thread only)."""
    ready: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def work() -> None:
        try:
            for index in pages:
                if stop.is_set():
                    return
                _put(ready, render_page(doc, index, frame), stop)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            _put(ready, exc, stop)
        _put(ready, _DONE, stop)

    thread = threading.Thread(target=work, name="dolphin-render", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, RenderedPage)
            yield item
    finally:
        stop.set()
        thread.join()


def _put(ready: queue.Queue[object], item: object, stop: threading.Event) -> None:
    """Block while the queue is full, but give up once the consumer has stopped."""
    while not stop.is_set():
        try:
            ready.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
