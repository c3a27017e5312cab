"""Tiny random Dolphins (1.0, 1.5 and v2) of the real architectures, built once per session, a real two-page PDF,
and `model_env`: the backend pointed at one generation's tiny model (`generation` parametrises the module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest

from pdf2md.contracts import ENV_MODEL_DIR, ENV_MODEL_URI
from pdf2md.convert.backends import load_backend

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from pdf2md.convert.dolphin.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-dolphin"))


@pytest.fixture(scope="session")
def tiny_15_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 1.x architecture with 1.5's layout separators in its tokenizer: read as Dolphin 1.5."""
    pytest.importorskip("transformers")
    from pdf2md.convert.dolphin.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-dolphin-1.5"), generation="1.5")


@pytest.fixture(scope="session")
def pdf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two US-letter pages drawn with pdfium: a heading bar, text-like lines and a boxed 'table'."""
    path = tmp_path_factory.mktemp("pdf") / "two-pages.pdf"
    doc = pdfium.PdfDocument.new()
    for _ in range(2):
        page = doc.new_page(612, 792)
        for x, y, w, h in [(72, 700, 300, 24), *[(72, 640 - 14 * i, 468, 6) for i in range(12)], (72, 300, 468, 120)]:
            rect = pdfium_c.FPDFPageObj_CreateNewRect(x, y, w, h)
            pdfium_c.FPDFPageObj_SetFillColor(rect, 0, 0, 0, 255)
            pdfium_c.FPDFPath_SetDrawMode(rect, pdfium_c.FPDF_FILLMODE_ALTERNATE, False)
            pdfium_c.FPDFPage_InsertObject(page.raw, rect)
        pdfium_c.FPDFPage_GenerateContent(page.raw)
        page.close()
    doc.save(path)
    doc.close()
    return path


@pytest.fixture(scope="session")
def tiny_v2_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from pdf2md.convert.dolphin.tiny import build_tiny_v2_model

    return build_tiny_v2_model(tmp_path_factory.mktemp("tiny-dolphin-v2"))


@pytest.fixture(scope="module", params=["1.0", "1.5", "v2"])
def generation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def model_dir(generation: str, tiny_model_dir: Path, tiny_15_model_dir: Path, tiny_v2_model_dir: Path) -> Path:
    return {"1.0": tiny_model_dir, "1.5": tiny_15_model_dir, "v2": tiny_v2_model_dir}[generation]


@pytest.fixture
def model_env(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(ENV_MODEL_DIR, str(model_dir))
    monkeypatch.delenv(ENV_MODEL_URI, raising=False)
    load_backend.cache_clear()
    yield model_dir
    load_backend.cache_clear()
