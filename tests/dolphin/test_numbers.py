"""A model whose numbers break (fp16 overflow) yields failed elements, never a page of '!!!!';
where the break is fp16's range, the broken rows are decoded again in fp32."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw

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


@pytest.mark.parametrize("generation", ["1.0", "v2"])
def test_broken_numbers_are_failed_elements(generation: str, tiny_model_dir: Path, tiny_v2_model_dir: Path, pdf_path: Path) -> None:
    engine = load_engine(tiny_model_dir if generation == "1.0" else tiny_v2_model_dir)
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


def _overflowing(engine):  # type: ignore[no-untyped-def]
    """The patch embedding scaled by 1e5: a busy crop's features pass 65,504 (fp16's largest) and turn inf,
    a flat mid-grey crop (about zero once normalised) stays finite. fp32 holds both."""
    with torch.no_grad():
        engine.model.model.visual.patch_embed.proj.weight.mul_(1e5)
    return engine


def test_fp16_rows_that_overflow_are_decoded_again_in_fp32(tiny_v2_model_dir: Path) -> None:
    """The T4 answer for v2 (no bf16): fp16, the non-finite guard, and an fp32 rerun of the broken rows only."""
    from pdf2md.convert.dolphin.engine_v2 import DolphinV2Model

    busy = Image.new("RGB", (200, 60), "white")
    ImageDraw.Draw(busy).text((5, 5), "overflow", fill="black")
    calm = Image.new("RGB", (200, 60), (123, 117, 104))  # CLIP's mean colour: normalises to about zero
    half = _overflowing(DolphinV2Model(tiny_v2_model_dir, device="cpu", dtype=torch.float16))
    full = _overflowing(DolphinV2Model(tiny_v2_model_dir, device="cpu", dtype=torch.float32))
    half.positions = full.positions = 120  # a dozen new tokens a row: enough to compare, quick in fp16 on a CPU
    prompt = PROMPTS["text"]
    raw = half._generate([busy, calm], prompt)
    assert raw[0] is None and raw[1] is not None  # the guard caught the busy row only
    reran: list[int] = []
    real = half._generate
    half._generate = lambda images, p: reran.append(len(images)) or real(images, p)  # type: ignore[method-assign]
    answers = half.generate([busy, calm], prompt)
    assert reran == [2, 1]  # the batch, then the one broken row
    assert answers == full.generate([busy, calm], prompt)  # the rerun is the fp32 model's answer
    assert answers[1] == raw[1]
    assert {p.dtype for p in half.model.parameters()} == {torch.float16}  # every weight narrowed back
