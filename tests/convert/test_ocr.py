"""The CPU OCR backend on a page whose text is only pixels (needs rapidocr-onnxruntime)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdf2md.convert import ConvertOptions, convert_pdf
from pdf2md.convert.ocr import ocr_markdown, spans_from_ocr

pytest.importorskip("rapidocr_onnxruntime", reason="the OCR extra is not installed")
PIL = pytest.importorskip("PIL.ImageFont")


@pytest.fixture(scope="module")
def scanned_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-page PDF that is a picture of a heading and two paragraphs."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (1200, 800), "white")
    draw = ImageDraw.Draw(image)
    body = ImageFont.load_default(size=40)
    draw.text((60, 60), "Quarterly Report", font=ImageFont.load_default(size=64), fill="black")
    draw.text((60, 200), "The harbour bridge opened in spring.", font=body, fill="black")
    draw.text((60, 250), "Traffic doubled within a month.", font=body, fill="black")
    draw.text((60, 400), "Second paragraph starts here.", font=body, fill="black")
    path = tmp_path_factory.mktemp("ocr") / "scan.pdf"
    image.save(path, "PDF", resolution=100)
    return path


def test_auto_routes_the_scan_to_ocr_and_finds_the_words(scanned_pdf: Path) -> None:
    result = convert_pdf(scanned_pdf, ConvertOptions(backend="auto"))
    assert [r.route for r in result.routes] == ["ocr"]
    md = result.markdown
    for word in ("Quarterly", "Report", "harbour", "bridge", "Traffic", "doubled", "Second", "paragraph"):
        assert word in md
    assert md.startswith("# Quarterly Report")
    assert "spring. Traffic doubled" in md  # two lines of one paragraph joined
    assert "month.\n\nSecond paragraph" in md  # the gap starts a new paragraph


def test_ocr_lines_are_grouped_by_geometry() -> None:
    box = lambda x0, y0, x1, y1: [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]  # noqa: E731 - image coordinates, y down
    result = [
        (box(100, 100, 900, 140), "first line of a paragraph", 0.95),
        (box(100, 150, 700, 190), "and its second line.", 0.93),
        (box(100, 300, 800, 340), "Another paragraph.", 0.97),
        (box(100, 400, 200, 440), "~#", 0.2),
    ]
    md = ocr_markdown(spans_from_ocr(result, image_height=1000))
    assert md == "first line of a paragraph and its second line.\n\nAnother paragraph."
