"""The per-page router: text layer where it is usable, the model backend where it is not, with reasons."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pdf2md.convert import ConvertOptions, convert_pdf, pipeline
from pdf2md.convert.textlayer import LayerStats
from tests.convert.conftest import FakeModel
from tests.convert.pdfgen import Page

MakePdf = Callable[..., Path]
PROSE = [(72, 700 - 13 * i, line) for i, line in enumerate(("A page with a real text layer on it,", "long enough to be worth reading."))]


def test_auto_sends_text_pages_to_text_and_scans_to_the_model(make_pdf: MakePdf, model: FakeModel) -> None:
    result = convert_pdf(make_pdf(Page(texts=PROSE), Page(image=True)), ConvertOptions(backend="auto"))
    assert model.pages == [1]
    assert [(r.page, r.route) for r in result.routes] == [(1, "text"), (2, "ocr")]
    assert "letters or digits" in result.routes[0].reason
    assert "image" in result.routes[1].reason
    assert result.backend == "ocr+text"
    assert result.markdown == "A page with a real text layer on it, long enough to be worth reading.\n\nmodel text of page 2\n"


def test_invisible_text_goes_to_the_model(make_pdf: MakePdf, model: FakeModel) -> None:
    invisible = [(x, y, text, "F1", 11, 3) for x, y, text in PROSE]
    result = convert_pdf(make_pdf(Page(texts=invisible, image=True)), ConvertOptions(backend="auto"))
    assert model.pages == [0]
    assert result.routes[0].route == "ocr"
    assert "invisible" in result.routes[0].reason


def test_blank_page_without_image_stays_on_the_text_path(make_pdf: MakePdf, model: FakeModel) -> None:
    result = convert_pdf(make_pdf(Page(texts=PROSE), Page()), ConvertOptions(backend="auto"))
    assert model.pages == []
    assert [r.route for r in result.routes] == ["text", "text"]
    assert "no image" in result.routes[1].reason


def test_backend_text_never_calls_the_model(make_pdf: MakePdf, model: FakeModel) -> None:
    result = convert_pdf(make_pdf(Page(image=True)), ConvertOptions(backend="text"))
    assert model.pages == []
    assert result.routes[0].reason == "backend=text"
    assert result.markdown == ""


def test_backend_ocr_sends_every_page(make_pdf: MakePdf, model: FakeModel) -> None:
    result = convert_pdf(make_pdf(Page(texts=PROSE), Page(texts=PROSE)), ConvertOptions(backend="ocr"))
    assert model.pages == [0, 1]
    assert {r.reason for r in result.routes} == {"backend=ocr"}


@pytest.mark.parametrize(
    ("stats", "drawn", "usable", "why"),
    [
        (LayerStats(chars=500, alnum=450, invisible=0, bad=0), None, True, "letters or digits"),
        (LayerStats(chars=5, alnum=5, invisible=0, bad=0), "an image", False, "with an image"),
        (LayerStats(chars=5, alnum=5, invisible=0, bad=0), "vector outlines (900 path segments)", False, "outlines"),
        (LayerStats(chars=5, alnum=5, invisible=0, bad=0), None, True, "no image"),
        (LayerStats(chars=40, alnum=0, invisible=0, bad=30), None, False, "30 glyphs without characters"),
        (LayerStats(chars=500, alnum=450, invisible=400, bad=0), None, False, "invisible"),
        (LayerStats(chars=500, alnum=300, invisible=0, bad=150), None, False, "unmapped"),
        (LayerStats(chars=500, alnum=100, invisible=0, bad=0), None, False, "garbled"),
    ],
)
def test_judge_text_layer(stats: LayerStats, drawn: str | None, usable: bool, why: str) -> None:
    ok, reason = pipeline.judge_text_layer(stats, lambda: drawn)
    assert ok is usable
    assert why in reason


def test_unmapped_glyphs_are_counted_as_bad(make_pdf: MakePdf) -> None:
    from pdf2md.convert import textlayer
    from pdf2md.convert.document import open_pdf

    with open_pdf(make_pdf(Page(texts=PROSE))) as doc:
        stats = textlayer.extract(doc).pages[0].stats
    assert stats.bad == 0 and stats.invisible == 0 and stats.alnum > 50


def test_a_few_unreadable_pages_come_out_empty_too_many_fail_the_document(
    make_pdf: MakePdf, model: FakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pypdfium2 as pdfium

    from pdf2md.convert import ConversionError, textlayer

    path = make_pdf(*[Page(texts=[(72, 700, f"Page {n} says something worth reading today.")]) for n in range(1, 21)])
    broken: set[int] = {4}
    real_read = textlayer.read_page

    def read_page(doc: pdfium.PdfDocument, index: int) -> object:
        if index in broken:
            raise pdfium.PdfiumError("Failed to load page.")
        return real_read(doc, index)

    monkeypatch.setattr(textlayer, "read_page", read_page)
    result = convert_pdf(path, ConvertOptions(backend="auto"))
    assert (result.routes[4].route, result.routes[4].reason) == ("unreadable", "pdfium cannot load this page")
    assert "Page 4 says" in result.markdown and "Page 5 says" not in result.markdown and "Page 6 says" in result.markdown
    assert model.pages == []

    broken.update({7, 9})
    with pytest.raises(ConversionError, match="cannot load 3 of 20 pages") as exc:
        convert_pdf(path, ConvertOptions(backend="auto"))
    assert exc.value.error_class == "corrupt"
