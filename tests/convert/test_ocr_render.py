"""Pages are rendered for OCR within a pixel budget: a poster-size scan converts instead of failing on memory."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pdf2md.contracts import DEFAULT_PDF_MEMORY_MB
from pdf2md.convert import ConvertOptions
from pdf2md.convert.document import open_pdf
from pdf2md.convert.ocr import MAX_RENDER_PIXELS, RENDER_DPI, render_for_ocr, render_scale
from tests.convert.pdfgen import dejavu

POSTER_POINTS = 14_400  # 200 inches, the largest page PDF readers accept
FONT = "DejaVuSans.ttf"


@pytest.fixture(scope="module")
def poster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200 x 200 inch page holding one scan (3000 px square) of two lines of large text."""
    from PIL import Image, ImageDraw, ImageFont

    font_file = dejavu(FONT)
    scan = Image.new("L", (3000, 3000), 255)
    draw = ImageDraw.Draw(scan)
    font = ImageFont.truetype(str(font_file), 110)
    draw.text((150, 1200), "Site plan of the harbour", font=font, fill=0)
    draw.text((150, 1400), "Drawing number 42", font=font, fill=0)
    path = tmp_path_factory.mktemp("poster") / "poster.pdf"
    scan.save(path, "PDF", resolution=3000 / (POSTER_POINTS / 72))
    return path


def test_ordinary_pages_render_at_the_full_dpi() -> None:
    assert render_scale(612, 792) == pytest.approx(RENDER_DPI / 72)
    assert render_scale(842, 1191) == pytest.approx(RENDER_DPI / 72)  # A3 fits the budget


def test_big_pages_scale_down_to_the_budget_keeping_their_shape() -> None:
    for width, height in ((POSTER_POINTS, POSTER_POINTS), (POSTER_POINTS, 72), (3000, 14_000)):
        scale = render_scale(width, height)
        pixels = math.ceil(width * scale) * math.ceil(height * scale)
        assert scale < RENDER_DPI / 72
        assert 0.99 * MAX_RENDER_PIXELS < pixels <= MAX_RENDER_PIXELS


def test_the_poster_page_is_rendered_within_the_budget(poster: Path) -> None:
    with open_pdf(poster) as doc:
        assert doc[0].get_size() == pytest.approx((POSTER_POINTS, POSTER_POINTS), abs=1)
        image = render_for_ocr(doc, 0)
    assert image.width * image.height <= MAX_RENDER_PIXELS
    assert abs(image.width - image.height) <= 1


def test_the_poster_converts_within_the_per_pdf_memory_limit(poster: Path) -> None:
    """Through the production isolation: a child process killed once it holds more than the limit."""
    pytest.importorskip("rapidocr_onnxruntime", reason="the OCR extra is not installed")
    from pdf2md.isolation import IsolatedConverter

    with IsolatedConverter(ConvertOptions(backend="auto"), timeout_s=240, memory_mb=DEFAULT_PDF_MEMORY_MB) as converter:
        result = converter.convert(poster)
    assert [r.route for r in result.routes] == ["ocr"]
    assert "Site plan of the harbour" in result.markdown
    assert "Drawing number 42" in result.markdown
