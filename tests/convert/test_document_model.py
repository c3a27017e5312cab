"""The typed document: the Markdown is written from it, the JSON of every CPU route validates against the
shipped schema, boxes lie on their page, confidence comes only from a source that has one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pdf2md.convert import ConvertOptions, convert_pdf
from pdf2md.convert.document_json import SCHEMA_VERSION, document_bytes, document_dict, schema
from pdf2md.convert.document_model import Block, Document, Page, join_blocks
from tests.convert.pdfgen import Page as PdfPage

SAMPLES = Path(__file__).parents[1] / "data" / "pdfs"


def validated(conversion_document: Document) -> dict[str, Any]:
    data = document_dict(conversion_document, source={"uri": "s3://in/a.pdf", "etag": "abc"}, converter_version="pdf2md/x", backend="text")
    jsonschema.Draft202012Validator(schema()).validate(data)
    return data


def assert_consistent(document: Document, markdown: str) -> None:
    """Every block's Markdown is in the document's Markdown, in order, and the boxes lie on their pages."""
    assert document.markdown() == markdown
    at = 0
    for page in document.pages:
        assert join_blocks(page.blocks) == page.markdown
        for block in page.blocks:
            found = markdown.find(block.markdown, at)
            assert found >= 0, block.markdown
            at = found + len(block.markdown)
            if block.bbox is not None:
                x0, y0, x1, y1 = block.bbox
                assert 0 <= x0 <= x1 <= page.width + 0.01 and 0 <= y0 <= y1 <= page.height + 0.01, (block, page.width, page.height)


def test_the_schema_is_a_valid_versioned_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    assert SCHEMA_VERSION.startswith("1.")


def test_text_route_json_validates_and_matches_the_markdown(make_pdf: Callable[..., Path]) -> None:
    path = make_pdf(PdfPage(texts=[(72, 700, "Annual Report", "F2", 20, 0), (72, 650, "The body of the page runs here."),
                                   (72, 636, "It has a second line of text too."), (72, 600, "- one item"), (72, 586, "- two item")]))
    result = convert_pdf(path, ConvertOptions(backend="text"))
    data = validated(result.document)
    assert_consistent(result.document, result.markdown)
    (page,) = data["pages"]
    assert page["route"] == "text" and (page["width"], page["height"]) == (612, 792)
    assert page["confidence"]["source"] == "text-layer" and page["confidence"]["value"] == 1.0
    assert page["confidence"]["checks"]["unmapped"] == 0
    heading = page["blocks"][0]
    assert heading["kind"] == "heading" and heading["markdown"] == "# Annual Report" and heading["index"] == 0
    x0, y0, x1, y1 = heading["bbox"]  # top-left origin: 700 pt up from the bottom is 92 pt down from the top
    assert x0 == pytest.approx(72, abs=2) and 70 < y0 < 80 and 90 < y1 < 100  # baseline at 92 pt, caps above it
    assert [b["kind"] for b in page["blocks"][-2:]] == ["list_item", "list_item"]
    assert all("confidence" not in b for b in page["blocks"])  # the text layer's own text: no score invented


def test_boxes_follow_the_page_rotation(make_pdf: Callable[..., Path]) -> None:
    path = make_pdf(PdfPage(texts=[(72, 700, "Rotated page heading text")], rotate=90))
    result = convert_pdf(path, ConvertOptions(backend="text"))
    (page,) = result.document.pages
    assert (page.width, page.height) == (792, 612)
    (block,) = page.blocks
    assert block.bbox is not None
    x0, y0, x1, y1 = block.bbox  # turned clockwise: 700 pt up is 700 pt across; 72 pt in is 72 pt down
    assert 690 < x0 < x1 < 720 and y0 == pytest.approx(72, abs=2) and y1 > 150
    assert_consistent(result.document, result.markdown)


def test_every_sample_text_pdf_validates() -> None:
    for name in ("crazyones.pdf", "FC60_Times.pdf", "PDFBOX-2984-rotations.pdf", "code_and_formula.pdf", "table_mislabeled_as_picture.pdf"):
        result = convert_pdf(SAMPLES / name, ConvertOptions(backend="text"))
        validated(result.document)
        assert_consistent(result.document, result.markdown)
    kinds = {b.kind for b in convert_pdf(SAMPLES / "code_and_formula.pdf", ConvertOptions(backend="text")).document.pages[0].blocks}
    assert "code" in kinds


def test_page_labels_ride_in_the_markers_and_the_json(make_pdf: Callable[..., Path]) -> None:
    pages = [PdfPage(texts=[(72, 700, f"Text of page number {n} here")]) for n in range(3)]
    from tests.convert.pdfgen import write_pdf

    path = write_pdf(make_pdf(*pages).with_name("labelled.pdf"), pages, page_labels="0 << /S /r >> 2 << /S /D >>")
    result = convert_pdf(path, ConvertOptions(backend="text", page_markers=True))
    assert [p.label for p in result.document.pages] == ["i", "ii", "1"]
    assert result.markdown.startswith('<!-- page 1 label="i" -->\n\nText of page number 0 here')
    assert '<!-- page 3 label="1" -->' in result.markdown and '<!-- page 2 label="ii" -->' in result.markdown
    assert [p.get("label") for p in validated(result.document)["pages"]] == ["i", "ii", "1"]


def test_a_label_equal_to_the_number_is_not_repeated(make_pdf: Callable[..., Path]) -> None:
    result = convert_pdf(make_pdf(PdfPage(texts=[(72, 700, "Only page of the document")])), ConvertOptions(page_markers=True))
    assert result.markdown.startswith("<!-- page 1 -->\n\n")


def test_json_is_compact_utf8() -> None:
    doc = Document((Page(1, 100, 100, "text", "r", (Block("paragraph", "Zürich"),)),))
    assert document_bytes(doc).decode() == ('{"schema_version":"' + SCHEMA_VERSION + '","page_count":1,"pages":[{"number":1,"width":100,'
                                            '"height":100,"route":"text","reason":"r","blocks":[{"index":0,"kind":"paragraph",'
                                            '"markdown":"Zürich"}]}]}')


def test_a_backend_without_blocks_gives_one_markdown_block(make_pdf: Callable[..., Path], model: Any) -> None:
    result = convert_pdf(make_pdf(PdfPage(image=True)), ConvertOptions(backend="ocr"))
    (page,) = result.document.pages
    assert [(b.kind, b.markdown, b.bbox) for b in page.blocks] == [("markdown", "model text of page 1", None)]
    validated(result.document)


def test_ocr_route_json_validates_with_recognition_scores() -> None:
    pytest.importorskip("rapidocr_onnxruntime", reason="the OCR extra is not installed")
    result = convert_pdf(SAMPLES / "scanned-crazyones.pdf", ConvertOptions(backend="ocr"))
    data = validated(result.document)
    assert_consistent(result.document, result.markdown)
    page = data["pages"][0]
    assert page["route"] == "ocr" and page["confidence"]["source"] == "ocr" and 0.5 <= page["confidence"]["value"] <= 1
    assert page["blocks"] and all(0.5 <= b["confidence"] <= 1 and len(b["bbox"]) == 4 for b in page["blocks"])
