"""Figures on the text path: embedded images above the minimum size are cut from the rendered page, named,
placed in reading order and linked relative to the Markdown only when figures are asked for."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from pdf2md.convert import ConvertOptions, convert_pdf
from pdf2md.outputs import written
from tests.convert.pdfgen import Page

TEXT = [(72, 720, "Figures of the harbour bridge"), (72, 300, "The caption and the text under the figure.")]


def test_an_embedded_image_becomes_a_linked_png(make_pdf: Callable[..., Path]) -> None:
    path = make_pdf(Page(texts=TEXT, image=True, image_rect=(72, 400, 300, 200)))
    result = convert_pdf(path, ConvertOptions(backend="text", figures=True))
    assert list(result.images) == ["page-0001-figure-01.png"]
    image = Image.open(io.BytesIO(result.images["page-0001-figure-01.png"]))
    assert image.format == "PNG" and abs(image.width - 300 * 150 / 72) <= 2 and abs(image.height - 200 * 150 / 72) <= 2
    (page,) = result.document.pages
    assert [b.kind for b in page.blocks] == ["paragraph", "figure", "paragraph"]  # between the texts, by its top
    assert page.blocks[1].bbox == (72.0, 192.0, 372.0, 392.0)
    assert "![" not in result.markdown  # the converter links nothing: the writer knows where the images go

    out = written("reports/a.md", result, ("markdown", "json", "figures"))
    assert "\n\n![Figure 1](a.assets/page-0001-figure-01.png)\n\n" in out.markdown
    assert [c.rel for c in out.sidecars] == ["reports/a.assets/page-0001-figure-01.png", "reports/a.json"]
    assert out.figures == 1 and b'"image":"a.assets/page-0001-figure-01.png"' in out.sidecars[1].body


def test_without_figures_no_image_and_no_link(make_pdf: Callable[..., Path]) -> None:
    path = make_pdf(Page(texts=TEXT, image=True, image_rect=(72, 400, 300, 200)))
    plain = convert_pdf(path, ConvertOptions(backend="text"))
    out = written("a.md", plain, ("markdown", "json"))
    assert plain.images == {} and "![" not in out.markdown and [c.rel for c in out.sidecars] == ["a.json"]
    assert out.markdown == convert_pdf(path, ConvertOptions(backend="text", figures=True)).markdown


def test_icons_and_page_backgrounds_are_not_figures(make_pdf: Callable[..., Path]) -> None:
    icon = make_pdf(Page(texts=TEXT, image=True, image_rect=(72, 400, 30, 30)))
    background = make_pdf(Page(texts=TEXT, image=True))
    assert convert_pdf(icon, ConvertOptions(backend="text", figures=True)).images == {}
    assert convert_pdf(background, ConvertOptions(backend="text", figures=True)).images == {}
