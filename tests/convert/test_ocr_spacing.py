"""OCR keeps word spaces and apostrophes: the recogniser's space class is decoded where it beats every other character."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from pdf2md.convert import ConvertOptions, convert_pdf
from pdf2md.convert.ocr import SpacedCtcDecoder
from tests.convert.pdfgen import dejavu

rapidocr = pytest.importorskip("rapidocr_onnxruntime", reason="the OCR extra is not installed")
FONT = "DejaVuSerif.ttf"
SENTENCES = [
    "Here's to the crazy ones. They're not fond of rules.",
    "You can't ignore them, and they have no respect for it.",
    "It's the world's best song that's never been written.",
]


def _decoder() -> SpacedCtcDecoder:
    from rapidocr_onnxruntime.ch_ppocr_rec.utils import CTCLabelDecode

    return SpacedCtcDecoder(CTCLabelDecode(character=list("ab中文")))  # classes: blank a b 中 文 space


def _columns(*rows: dict[int, float]) -> np.ndarray:
    """One CTC row: each column's probabilities by class (the rest of the mass on the blank, class 0)."""
    probs = np.zeros((1, len(rows), 6), dtype=np.float32)
    for i, row in enumerate(rows):
        probs[0, i, list(row)] = list(row.values())
        probs[0, i, 0] = 1 - sum(row.values())
    return probs


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        ({5: 0.08, 2: 0.01}, "a b"),  # the space is the likeliest character after the blank
        ({5: 0.01, 2: 0.05}, "ab"),  # another character is likelier: no space
        ({5: 0.001}, "ab"),  # too faint to count
    ],
)
def test_a_space_the_blank_outvoted_is_decoded(gap: dict[int, float], expected: str) -> None:
    preds = _columns({1: 0.9}, gap, {2: 0.9})
    assert [text for text, _ in _decoder()(preds)] == [expected]


def test_spaces_the_model_chose_stay_single_and_cjk_gets_none() -> None:
    decoder = _decoder()
    assert decoder(_columns({1: 0.9}, {5: 0.6}, {5: 0.3}, {2: 0.9}))[0][0] == "a b"
    assert decoder(_columns({3: 0.9}, {5: 0.2}, {4: 0.9}))[0][0] == "中文"


@pytest.fixture(scope="module")
def low_res_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sentences with apostrophes, scanned at 100 DPI in grey and saved as JPEG: where spaces used to vanish."""
    from PIL import Image, ImageDraw, ImageFont

    font_file = dejavu(FONT)
    page = Image.new("L", (850, 1100), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(font_file), 17)
    for n, sentence in enumerate(SENTENCES):
        draw.text((70, 100 + 60 * n), sentence, font=font, fill=0)
    buffer = io.BytesIO()
    page.save(buffer, "JPEG", quality=70)
    path = tmp_path_factory.mktemp("spacing") / "scan.pdf"
    Image.open(buffer).save(path, "PDF", resolution=100)
    return path


def test_ocr_keeps_word_spaces_and_apostrophes_on_a_scan(low_res_scan: Path) -> None:
    result = convert_pdf(low_res_scan, ConvertOptions(backend="auto"))
    assert [r.route for r in result.routes] == ["ocr"]
    text = " ".join(result.markdown.replace("\u2019", "'").split())
    for sentence in SENTENCES:
        assert sentence in text
