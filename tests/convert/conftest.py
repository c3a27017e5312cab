"""Fixtures for the converter tests: PDFs written on the fly with the standard fonts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.convert.pdfgen import Page, write_pdf


@pytest.fixture
def make_pdf(tmp_path: Path) -> Callable[..., Path]:
    """make_pdf(page, page, ...) -> path of a new PDF with those pages."""
    counter = iter(range(10_000))

    def make(*pages: Page) -> Path:
        return write_pdf(tmp_path / f"doc{next(counter)}.pdf", list(pages))

    return make
