"""Pages whose text is drawn but does not extract (outlines, Type 3 glyph images, unmapped codes) go to OCR.

The fixtures are written here: a sentence as filled glyph outlines (paths taken from a TrueType font
with pdfium, as "convert text to outlines" produces them) and a sentence in a Type 3 font whose glyphs
are image masks named /g1, /g2, ... with no ToUnicode (as old bitmap-font PDFs are).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw
import pytest

from pdf2md.convert import ConvertOptions, convert_pdf
from tests.convert.conftest import FakeModel
from tests.convert.pdfgen import Page, dejavu, write_objects

FONT = "DejaVuSans.ttf"
SENTENCE = "Here's to the crazy ones, the misfits and the rebels."
MakePdf = Callable[..., Path]


def outlined_text_pdf(path: Path, lines: Sequence[str], size: float = 18) -> Path:
    """A page where each line of text is drawn as filled glyph outlines: no text object at all."""
    font_file = dejavu(FONT)
    pdf = pdfium.PdfDocument.new()
    page = pdf.new_page(612, 792)
    data = font_file.read_bytes()
    font = pdfium_raw.FPDFText_LoadFont(pdf.raw, (ctypes.c_uint8 * len(data)).from_buffer_copy(data), len(data),
                                        pdfium_raw.FPDF_FONT_TRUETYPE, 1)
    for n, line in enumerate(lines):
        x, y = 72.0, 700.0 - n * size * 1.5
        for ch in line:
            _draw_glyph(page, font, ord(ch), x, y, size)
            width = ctypes.c_float()
            pdfium_raw.FPDFFont_GetGlyphWidth(font, ord(ch), ctypes.c_float(size), ctypes.byref(width))
            x += width.value
    pdfium_raw.FPDFFont_Close(font)
    assert pdfium_raw.FPDFPage_GenerateContent(page.raw)
    pdf.save(path)
    return path


def _draw_glyph(page: pdfium.PdfPage, font: pdfium_raw.FPDF_FONT, code: int, x: float, y: float, size: float) -> None:
    """One glyph's outline (em units from pdfium) as a filled path at (x, y)."""
    glyph = pdfium_raw.FPDFFont_GetGlyphPath(font, code, ctypes.c_float(size))
    count = pdfium_raw.FPDFGlyphPath_CountGlyphSegments(glyph) if glyph else 0
    if count <= 0:
        return
    path = pdfium_raw.FPDFPageObj_CreateNewPath(ctypes.c_float(x), ctypes.c_float(y))
    bezier: list[tuple[float, float]] = []
    for i in range(count):
        segment = pdfium_raw.FPDFGlyphPath_GetGlyphPathSegment(glyph, i)
        px, py = ctypes.c_float(), ctypes.c_float()
        pdfium_raw.FPDFPathSegment_GetPoint(segment, ctypes.byref(px), ctypes.byref(py))
        point = (x + px.value * size, y + py.value * size)
        kind = pdfium_raw.FPDFPathSegment_GetType(segment)
        if kind == pdfium_raw.FPDF_SEGMENT_MOVETO:
            pdfium_raw.FPDFPath_MoveTo(path, *point)
        elif kind == pdfium_raw.FPDF_SEGMENT_LINETO:
            pdfium_raw.FPDFPath_LineTo(path, *point)
        else:
            bezier.append(point)
            if len(bezier) == 3:
                pdfium_raw.FPDFPath_BezierTo(path, *bezier[0], *bezier[1], *bezier[2])
                bezier.clear()
        if pdfium_raw.FPDFPathSegment_GetClose(segment):
            pdfium_raw.FPDFPath_Close(path)
    pdfium_raw.FPDFPath_SetDrawMode(path, pdfium_raw.FPDF_FILLMODE_WINDING, False)
    pdfium_raw.FPDFPage_InsertObject(page.raw, path)


def type3_image_pdf(path: Path, lines: Sequence[str], size: float = 18) -> Path:
    """A page of text in a Type 3 font whose glyphs are image masks and whose names say nothing (/g1, /g2...)."""
    from PIL import Image, ImageDraw, ImageFont

    font_file = dejavu(FONT)
    face = ImageFont.truetype(str(font_file), 100)
    alphabet = sorted({ch for line in lines for ch in line})
    codes = {ch: i + 1 for i, ch in enumerate(alphabet)}
    objects: list[bytes] = []
    procs, widths = [], []
    for ch in alphabet:
        advance = max(1, round(face.getlength(ch) * 10))  # glyph space: 1000 units per em (the 100 px face)
        mask = Image.new("1", (max(1, advance // 10), 120), 1)
        ImageDraw.Draw(mask).text((0, 0), ch, font=face, fill=0)
        hexdata = mask.tobytes().hex().encode() + b">"
        stream = (b"%d 0 0 -200 %d 1000 d1 q %d 0 0 1200 0 -200 cm BI /W %d /H %d /IM true /BPC 1 /F /AHx ID\n"
                  % (advance, advance, advance, mask.width, mask.height) + hexdata + b"\nEI Q")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        procs.append(f"/g{codes[ch]} {len(objects)} 0 R")
        widths.append(str(advance))
    names = " ".join(f"/g{codes[ch]}" for ch in alphabet)
    objects.append((f"<< /Type /Font /Subtype /Type3 /FontBBox [0 -200 1000 1000] /FontMatrix [0.001 0 0 0.001 0 0] "
                    f"/CharProcs << {' '.join(procs)} >> /Encoding << /Type /Encoding /Differences [1 {names}] >> "
                    f"/FirstChar 1 /LastChar {len(alphabet)} /Widths [{' '.join(widths)}] /Resources << >> >>").encode())
    font_id = len(objects)
    text = b"".join(b"BT /T3 %g Tf 72 %g Td <%s> Tj ET\n" % (size, 700 - n * size * 1.5, bytes(codes[c] for c in line).hex().encode())
                    for n, line in enumerate(lines))
    objects.append(b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream")
    content_id = len(objects)
    pages_id = content_id + 2
    objects.append(f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
                   f"/Resources << /Font << /T3 {font_id} 0 R >> >> >>".encode())
    objects.append(f"<< /Type /Pages /Kids [{pages_id - 1} 0 R] /Count 1 >>".encode())
    objects.append(f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode())
    return write_objects(path, objects, len(objects))


def test_text_drawn_as_outlines_goes_to_the_model(tmp_path: Path, model: FakeModel) -> None:
    path = outlined_text_pdf(tmp_path / "outlines.pdf", [SENTENCE, "They push the human race forward."])
    result = convert_pdf(path, ConvertOptions(backend="auto"))
    assert model.pages == [0]
    assert result.routes[0].route == "ocr"
    assert "vector outlines" in result.routes[0].reason


def test_type3_glyph_images_without_characters_go_to_the_model(tmp_path: Path, model: FakeModel) -> None:
    result = convert_pdf(type3_image_pdf(tmp_path / "type3.pdf", [SENTENCE]), ConvertOptions(backend="auto"))
    assert model.pages == [0]
    assert "glyphs without characters" in result.routes[0].reason


def test_rules_and_a_page_number_stay_on_the_text_path(make_pdf: MakePdf, model: FakeModel) -> None:
    grid = [(72, 700 - 20 * i, 540, 700 - 20 * i) for i in range(10)] + [(72 + 52 * i, 520, 72 + 52 * i, 700) for i in range(10)]
    result = convert_pdf(make_pdf(Page(texts=[(300, 40, "12")], lines=grid)), ConvertOptions(backend="auto"))
    assert model.pages == []
    assert result.routes[0].route == "text"


def test_ocr_reads_the_outlined_sentence(tmp_path: Path) -> None:
    pytest.importorskip("rapidocr_onnxruntime", reason="the OCR extra is not installed")
    path = outlined_text_pdf(tmp_path / "outlines.pdf", ["Here's to the crazy ones,", "the misfits and the rebels."], size=24)
    result = convert_pdf(path, ConvertOptions(backend="auto"))
    assert result.routes[0].route == "ocr"
    assert "Here's to the crazy ones, the misfits and the rebels." in result.markdown
