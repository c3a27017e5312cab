"""What the GPU feeder tests run in the feeder process: the real tiny Dolphin, watched.

Each test PDF's pages are filled with a colour of their own, so every image the model is given (a page or
a crop of it) tells which PDF it came from. The spy engine writes each model call's prompt and PDFs to the
file PDF2MD_TEST_FEEDER_LOG names, optionally waits PDF2MD_TEST_FEEDER_DELAY_S first (a PDF then stays in
the feeder long enough to be killed or stopped), and raises for any call holding a POISON-coloured image.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

ENV_LOG = "PDF2MD_TEST_FEEDER_LOG"
ENV_DELAY_S = "PDF2MD_TEST_FEEDER_DELAY_S"
POISON = (255, 0, 0)
"""A page of this colour makes any model call holding it raise."""


def colour_pdf(path: Path, colour: tuple[int, int, int], pages: int = 1, scanned: bool = False) -> Path:
    """A PDF whose pages are filled with `colour`: by a rectangle, or by an image when `scanned` (a page
    without a text layer that draws an image: `auto` sends it to the model)."""
    doc = pdfium.PdfDocument.new()
    for _ in range(pages):
        page = doc.new_page(612, 792)
        if scanned:
            fill = pdfium.PdfImage.new(doc)
            fill.set_bitmap(pdfium.PdfBitmap.from_pil(Image.new("RGB", (61, 79), colour)))
            fill.set_matrix(pdfium.PdfMatrix().scale(612, 792))
            page.insert_obj(fill)
        else:
            rect = pdfium_c.FPDFPageObj_CreateNewRect(0, 0, 612, 792)
            pdfium_c.FPDFPageObj_SetFillColor(rect, *colour, 255)
            pdfium_c.FPDFPath_SetDrawMode(rect, pdfium_c.FPDF_FILLMODE_ALTERNATE, False)
            pdfium_c.FPDFPage_InsertObject(page.raw, rect)
        page.gen_content()
        page.close()
    doc.save(path)
    doc.close()
    return path


def colour_of(image: Image.Image) -> tuple[int, int, int]:
    red, green, blue = image.convert("RGB").getpixel((image.width // 2, image.height // 2))[:3]
    return int(red), int(green), int(blue)


class SpyEngine:
    """The real engine, with each call logged (and delayed, or poisoned) as the environment says."""

    def __init__(self, real: Any, log_path: Path, delay_s: float) -> None:
        self.real = real
        self.profile = real.profile
        self.log_path = log_path
        self.delay_s = delay_s

    def frame(self, page: Image.Image) -> Any:
        return self.real.frame(page)

    def generate(self, images: Sequence[Image.Image], prompt: str) -> list[str | None]:
        colours = [colour_of(image) for image in images]
        with self.log_path.open("a") as fh:
            fh.write(json.dumps({"pid": os.getpid(), "prompt": prompt, "colours": colours}) + "\n")
        time.sleep(self.delay_s)
        if tuple(POISON) in colours:
            raise ValueError("the model cannot read this document")
        answers: list[str | None] = self.real.generate(images, prompt)
        return answers


def spy_backend(model: str) -> Any:
    """feeder's BackendFactory: the Dolphin backend of PDF2MD_MODEL_DIR with its engine spied on."""
    from pdf2md.convert.dolphin.backend import DolphinBackend, load_engine
    from pdf2md.convert.dolphin.model_dir import resolve_model_dir

    assert model == "dolphin"
    real = load_engine(resolve_model_dir(os.environ))
    spy = SpyEngine(real, Path(os.environ[ENV_LOG]), float(os.environ.get(ENV_DELAY_S) or 0))
    return DolphinBackend(engine=spy, max_batch=8)


def calls(log_path: Path) -> list[dict[str, Any]]:
    """The model calls logged so far (colours as tuples)."""
    if not log_path.exists():
        return []
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    for row in rows:
        row["colours"] = [tuple(c) for c in row["colours"]]
    return rows


class OtherGenerationLayouts:
    """The real engine whose layout answers are recorded ones in the other generation's format: a 1.5
    checkpoint whose tokenizer did not tell it apart from 1.0 (or the reverse)."""

    def __init__(self, real: Any, answer: str) -> None:
        self.real = real
        self.profile = real.profile
        self.answer = answer

    def frame(self, page: Image.Image) -> Any:
        return self.real.frame(page)

    def generate(self, images: Sequence[Image.Image], prompt: str) -> list[str | None]:
        from pdf2md.convert.dolphin.prompts import LAYOUT_PROMPT

        if prompt == LAYOUT_PROMPT:
            return [self.answer] * len(images)
        answers: list[str | None] = self.real.generate(images, prompt)
        return answers


def other_generation_backend(model: str) -> Any:
    """feeder's BackendFactory: the Dolphin of PDF2MD_MODEL_DIR answering its layouts in the other generation's
    format (recorded answers from tests/dolphin/fixtures)."""
    from pdf2md.convert.dolphin.backend import DolphinBackend, load_engine
    from pdf2md.convert.dolphin.model_dir import resolve_model_dir

    assert model == "dolphin"
    real = load_engine(resolve_model_dir(os.environ))
    other = "layout_1_5.txt" if real.profile.name == "1.0" else "layout_1_0.txt"
    answer = (Path(__file__).parent / "fixtures" / other).read_text()
    return DolphinBackend(engine=OtherGenerationLayouts(real, answer), max_batch=8)
