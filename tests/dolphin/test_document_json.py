"""The Dolphin route's document: its JSON validates against the shipped schema on each tiny model, and its
blocks carry the layout's boxes in points (figures too) and no confidence (the engines give no token scores)."""

from __future__ import annotations

import io
from pathlib import Path

import jsonschema
import pytest
from PIL import Image

from pdf2md.contracts import ENV_OUTPUTS
from pdf2md.convert import pipeline
from pdf2md.convert.document_json import document_dict, schema
from pdf2md.convert.dolphin import DolphinBackend
from pdf2md.convert.dolphin.backend import ENV_FIGURES
from pdf2md.convert.pipeline import ConvertOptions, convert_pdf
from pdf2md.outputs import written
from tests.dolphin.test_backend import RecordedLayout

pytest.importorskip("torch")
pytest.importorskip("transformers")


def test_the_real_tiny_model_writes_a_valid_document(model_env: Path, pdf_path: Path) -> None:
    result = convert_pdf(pdf_path, ConvertOptions(backend="dolphin"))
    data = document_dict(result.document, backend=result.backend)
    jsonschema.Draft202012Validator(schema()).validate(data)
    assert [p["route"] for p in data["pages"]] == ["dolphin", "dolphin"]
    assert result.document.markdown() == result.markdown
    assert all("confidence" not in p for p in data["pages"])


def test_recorded_layout_blocks_carry_boxes_in_points(model_dir: Path, generation: str, pdf_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real = DolphinBackend(model_dir, max_batch=4)
    recorded = DolphinBackend(engine=RecordedLayout(real, generation), max_batch=8, figures="reference")
    monkeypatch.setattr(pipeline, "load_backend", lambda name: recorded)
    result = convert_pdf(pdf_path, ConvertOptions(backend="dolphin"))
    data = document_dict(result.document)
    jsonschema.Draft202012Validator(schema()).validate(data)
    for page, route in zip(data["pages"], result.routes):
        assert (page["width"], page["height"]) == (612, 792)
        kinds = [b["kind"] for b in page["blocks"]]
        assert kinds[0] == "heading" and "figure" in kinds
        assert all(len(b["bbox"]) == 4 and "confidence" not in b for b in page["blocks"])
        figure = next(b for b in page["blocks"] if b["kind"] == "figure")
        fx0, fy0, fx1, fy1 = route.model["figures"][0]["box"]  # the layout's box as fractions of the page
        assert figure["label"] == "fig" and fx0 > 0.5 and fy0 > 0.5
        assert figure["bbox"] == pytest.approx([fx0 * 612, fy0 * 792, fx1 * 612, fy1 * 792], abs=0.5)


def test_figures_are_cut_saved_and_linked_only_when_asked(model_dir: Path, generation: str, pdf_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = DolphinBackend(model_dir, max_batch=4)
    monkeypatch.delenv(ENV_OUTPUTS, raising=False)
    monkeypatch.delenv(ENV_FIGURES, raising=False)
    default = DolphinBackend(engine=RecordedLayout(real, generation), max_batch=8)
    monkeypatch.setattr(pipeline, "load_backend", lambda name: default)
    plain = convert_pdf(pdf_path, ConvertOptions(backend="dolphin"))
    assert default.figures == "drop" and "![" not in plain.markdown and plain.images == {}  # no link to an image nobody wrote
    assert [b.kind for b in plain.document.pages[0].blocks].count("figure") == 1  # its box stays in the JSON

    monkeypatch.setenv(ENV_OUTPUTS, "markdown,figures")
    cutting = DolphinBackend(engine=RecordedLayout(real, generation), max_batch=8)
    monkeypatch.setattr(pipeline, "load_backend", lambda name: cutting)
    result = convert_pdf(pdf_path, ConvertOptions(backend="dolphin"))
    assert cutting.figures == "image"
    assert sorted(result.images) == ["page-0001-figure-01.png", "page-0002-figure-01.png"]
    crop = Image.open(io.BytesIO(result.images["page-0001-figure-01.png"]))
    assert crop.format == "PNG" and crop.width > 50 and crop.height > 50
    out = written("docs/two-pages.md", result, ("markdown", "figures"))
    assert "![Figure 1](two-pages.assets/page-0001-figure-01.png)" in out.markdown
    assert "![Figure 1](two-pages.assets/page-0002-figure-01.png)" in out.markdown
    assert {c.rel for c in out.sidecars} == {"docs/two-pages.assets/page-0001-figure-01.png", "docs/two-pages.assets/page-0002-figure-01.png"}
