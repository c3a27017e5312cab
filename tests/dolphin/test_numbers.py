"""A model whose numbers break (fp16 overflow) yields failed elements, never a page of '!!!!'."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pdf2md.convert.dolphin import DolphinBackend  # noqa: E402
from pdf2md.convert.dolphin.backend import load_engine  # noqa: E402
from pdf2md.convert.dolphin.generation import NonFiniteGuard  # noqa: E402
from pdf2md.convert.dolphin.prompts import PROMPTS  # noqa: E402


def test_the_guard_ends_only_rows_that_broke() -> None:
    guard = NonFiniteGuard(eos_token_id=2)
    scores = torch.zeros(3, 5)
    scores[1, 4] = float("nan")
    scores[2, 3] = float("-inf")  # a banned token: not a fault
    out = guard(torch.zeros(3, 1, dtype=torch.long), scores)
    assert guard.rows() == [False, True, False]
    assert out[1].argmax().item() == 2 and torch.equal(out[0], scores[0])
    guard(torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, 5))  # a broken row stays ended
    assert guard.rows() == [False, True, False]


@pytest.mark.parametrize("generation", ["1.x", "v2"])
def test_broken_numbers_are_failed_elements(generation: str, tiny_model_dir: Path, tiny_v2_model_dir: Path, pdf_path: Path) -> None:
    engine = load_engine(tiny_model_dir if generation == "1.x" else tiny_v2_model_dir)
    with torch.no_grad():
        engine.model.get_output_embeddings().weight[7].fill_(float("nan"))  # every step's scores hold a NaN
    assert engine.generate([Image.new("RGB", (200, 60), "white")] * 2, PROMPTS["text"]) == [None, None]
    backend = DolphinBackend(engine=engine, max_batch=4)
    doc = pdfium.PdfDocument(pdf_path)
    try:
        (page,) = backend.convert_pages(doc, [0]).values()
    finally:
        doc.close()
    assert page.extra["layout"] == "fallback" and page.extra["failed_elements"] == 1 and "!!!" not in page.markdown
