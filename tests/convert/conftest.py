"""Fixtures for the converter tests: PDFs written on the fly with the standard fonts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from pdf2md.convert import pipeline
from pdf2md.convert.backends import PageOutput
from tests.convert.pdfgen import Page, write_pdf


@pytest.fixture
def make_pdf(tmp_path: Path) -> Callable[..., Path]:
    """make_pdf(page, page, ...) -> path of a new PDF with those pages."""
    counter = iter(range(10_000))

    def make(*pages: Page) -> Path:
        return write_pdf(tmp_path / f"doc{next(counter)}.pdf", list(pages))

    return make


class FakeModel:
    """Stands in for OCR/Dolphin: records the pages it was given."""

    name = "fake"

    def __init__(self) -> None:
        self.pages: list[int] = []

    def convert_pages(self, doc: object, pages: Sequence[int]) -> dict[int, PageOutput]:
        self.pages.extend(pages)
        return {i: PageOutput(f"model text of page {i + 1}", 0.5) for i in pages}


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> FakeModel:
    fake = FakeModel()
    monkeypatch.setattr(pipeline, "load_backend", lambda name: fake)
    monkeypatch.setattr(pipeline, "auto_model_backend", lambda: "ocr")
    return fake
