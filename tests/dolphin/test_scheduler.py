"""Cross-document batching: pages of several PDFs share Dolphin's batches, and one failing PDF fails alone.

A fake engine stands in for the model: each document's pages are filled with a colour of their own, so the
engine can tell (from any crop) which document an image came from, and fail or answer per document.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from PIL import Image

from pdf2md.convert.dolphin.batching import AdaptiveBatcher
from pdf2md.convert.dolphin.layout import PageGeometry
from pdf2md.convert.dolphin.profiles import PROFILES
from pdf2md.convert.dolphin.prompts import LAYOUT_PROMPT, PROMPTS
from pdf2md.convert.dolphin.render import RenderedPage, pad_to_square
from pdf2md.convert.dolphin.scheduler import DocumentResult, PageScheduler
from pdf2md.convert.errors import ConversionError

LAYOUT = "[100,100,800,160][sec_0][PAIR_SEP][100,200,800,500][para][PAIR_SEP][100,520,800,700][tab][PAIR_SEP][100,720,800,860][para]"
"""A 1.5 layout answer (pixels of the 896 square): a heading, two paragraphs and a table."""


class SimulatedOOM(Exception):
    pass


class FakeEngine:
    """Answers per document (read from the image's colour); raises for `poisoned` documents; OOMs above `limit`."""

    profile = PROFILES["1.5"]

    def __init__(self, poisoned: frozenset[int] = frozenset(), limit: int = 1000) -> None:
        self.poisoned, self.limit = poisoned, limit
        self.calls: list[tuple[str, list[int]]] = []

    def frame(self, page: Image.Image) -> tuple[Image.Image, PageGeometry]:
        return pad_to_square(page)

    def generate(self, images: Sequence[Image.Image], prompt: str) -> list[str | None]:
        docs = [_doc_of(image) for image in images]
        if len(images) > self.limit:
            raise SimulatedOOM("out of memory (simulated)")
        self.calls.append((prompt, docs))
        if self.poisoned & set(docs):
            raise ValueError("the model cannot read this document")
        if prompt == LAYOUT_PROMPT:
            return [LAYOUT] * len(images)
        if prompt == PROMPTS["table"]:
            return [f"<table><tr><td>doc {d}</td><td>x</td></tr><tr><td>1</td><td>2</td></tr></table>" for d in docs]
        return [f"text of document {d}" for d in docs]


def _doc_of(image: Image.Image) -> int:
    """The document number is the red channel of the page's middle (the padding is black, the page is not)."""
    red = image.getpixel((image.width // 2, image.height // 2))[0]
    return int(red) - 100


def pages_of(doc: int, count: int, fail_at: int | None = None) -> Iterator[RenderedPage]:
    for index in range(count):
        if index == fail_at:
            raise RuntimeError(f"pdfium cannot render page {index + 1} of document {doc}")
        square, geometry = pad_to_square(Image.new("RGB", (612, 792), (100 + doc, 250, 250)))
        yield RenderedPage(index, square, geometry, 0.01)


def scheduler_for(engine: FakeEngine, batch: int = 8, pages_per_round: int = 8, clock: list[float] | None = None) -> PageScheduler:
    batcher = AdaptiveBatcher(batch, is_oom=lambda exc: isinstance(exc, SimulatedOOM))
    now = clock or [0.0]
    return PageScheduler(engine, batcher, pages_per_round=pages_per_round, clock=lambda: now[0])


def alone(doc: int, count: int) -> DocumentResult:
    scheduler = scheduler_for(FakeEngine())
    scheduler.submit(doc, pages_of(doc, count))
    (result,) = scheduler.run()
    return result


def test_single_page_documents_share_the_layout_and_element_batches() -> None:
    engine = FakeEngine()
    scheduler = scheduler_for(engine, batch=16)
    for doc in (1, 2, 3):
        scheduler.submit(doc, pages_of(doc, 1))
    results = {r.doc_id: r for r in scheduler.run()}
    assert engine.calls[0] == (LAYOUT_PROMPT, [1, 2, 3])
    assert (PROMPTS["text"], [1, 1, 1, 2, 2, 2, 3, 3, 3]) in [(p, sorted(d)) for p, d in engine.calls]
    assert len(engine.calls) == 3  # one layout batch, one text batch, one table batch for all three PDFs
    assert scheduler.batch_sizes.layout == {3: 1} and scheduler.batch_sizes.elements == {9: 1, 3: 1}
    for doc in (1, 2, 3):
        assert results[doc].ok
        assert results[doc].pages[0].markdown == alone(doc, 1).pages[0].markdown  # batched output equals a lone run
        assert f"text of document {doc}" in results[doc].pages[0].markdown


def test_a_failing_document_inside_a_shared_batch_fails_alone() -> None:
    engine = FakeEngine(poisoned=frozenset({2}))
    scheduler = scheduler_for(engine)
    for doc in (1, 2, 3):
        scheduler.submit(doc, pages_of(doc, 2))
    results = {r.doc_id: r for r in scheduler.run()}
    assert not results[2].ok and "cannot read this document" in str(results[2].error) and results[2].pages == {}
    for doc in (1, 3):
        assert results[doc].ok and sorted(results[doc].pages) == [0, 1]
        assert results[doc].pages[1].markdown == alone(doc, 2).pages[1].markdown
    # the shared batch raised once, then was read again one document at a time, without document 2 after that
    assert [docs for prompt, docs in engine.calls if prompt == LAYOUT_PROMPT] == [[1, 1, 2, 2, 3, 3], [1, 1], [2, 2], [3, 3]]
    assert all(2 not in docs for prompt, docs in engine.calls if prompt != LAYOUT_PROMPT)


def test_a_page_that_cannot_be_rendered_fails_its_document_only() -> None:
    scheduler = scheduler_for(FakeEngine(), pages_per_round=4)
    scheduler.submit("bad", pages_of(7, 5, fail_at=3))
    scheduler.submit("good", pages_of(8, 2))
    results = {r.doc_id: r for r in scheduler.run()}
    assert isinstance(results["bad"].error, RuntimeError) and results["bad"].pages == {}
    assert results["good"].ok and sorted(results["good"].pages) == [0, 1]


def test_a_document_returns_with_its_last_page_in_submission_order() -> None:
    scheduler = scheduler_for(FakeEngine(), pages_per_round=4)
    scheduler.submit("long", pages_of(1, 10))
    scheduler.submit("short", pages_of(2, 1))
    assert scheduler.step() == [] and scheduler.step() == []  # pages 1-8 of the long one
    scheduler.submit("late", pages_of(3, 1))  # submitted while the others are in flight
    finished = scheduler.step()  # pages 9-10 of the long one, the short one, the late one
    assert [r.doc_id for r in finished] == ["long", "short", "late"]
    assert sorted(finished[0].pages) == list(range(10)) and scheduler.pending == 0


def test_out_of_memory_halves_a_shared_batch_and_every_document_finishes() -> None:
    engine = FakeEngine(limit=2)
    scheduler = scheduler_for(engine, batch=8)
    for doc in (1, 2, 3):
        scheduler.submit(doc, pages_of(doc, 1))
    results = list(scheduler.run())
    assert all(r.ok for r in results) and len(results) == 3
    assert scheduler.batcher.size == 2 and scheduler.batcher.halvings == 2
    assert max(scheduler.batch_sizes.layout) == 2 and max(scheduler.batch_sizes.elements) == 2


def test_cancelled_and_timed_out_documents_stop_and_the_rest_finish() -> None:
    clock = [0.0]
    engine = FakeEngine()
    scheduler = scheduler_for(engine, pages_per_round=2, clock=clock)
    scheduler.submit("slow", pages_of(1, 6), deadline=5.0)
    scheduler.submit("stopped", pages_of(2, 2))
    scheduler.submit("fine", pages_of(3, 1))
    scheduler.cancel("stopped")
    first = scheduler.step()  # "stopped" comes back at once; two pages of "slow" are read
    assert [r.doc_id for r in first] == ["stopped"]
    clock[0] = 6.0  # "slow" is past its deadline: the next round skips it
    results = {r.doc_id: r for r in [*first, *scheduler.run()]}
    assert isinstance(results["slow"].error, ConversionError) and results["slow"].error.error_class == "timeout"
    assert isinstance(results["stopped"].error, ConversionError) and results["stopped"].error.error_class == "interrupted"
    assert results["fine"].ok and sorted(results["fine"].pages) == [0]
    assert all(2 not in docs for _, docs in engine.calls)
    assert sum(docs.count(1) for prompt, docs in engine.calls if prompt == LAYOUT_PROMPT) == 2


def test_an_empty_document_finishes_and_ids_are_unique() -> None:
    scheduler = scheduler_for(FakeEngine())
    scheduler.submit("empty", iter(()))
    with pytest.raises(ValueError, match="already submitted"):
        scheduler.submit("empty", iter(()))
    assert [(r.doc_id, r.pages, r.ok) for r in scheduler.run()] == [("empty", {}, True)]
