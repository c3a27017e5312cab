"""CPU time per page that Dolphin's GPU waits on: a page's element crops made into model input.

    .venv/bin/python bench/dolphin_host.py [--pdf FILE] [--pages N]

The layout is a two-column paper page of 20 elements (12 paragraphs, 4 headings, 2 formulas, a table
and a caption) laid over real rendered pages, so the crops carry real text. It prints milliseconds per
page for Dolphin 1.x (the Donut processor as shipped, and pdf2md's pixel_values, whose padding and
normalising run on the GPU in production) and Dolphin v2.
No model is loaded: this is the host side only, on any machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pypdfium2 as pdfium
import torch
from text_quality import CORPUS, manifest_pdfs  # a bench/ sibling: the dev corpus and its manifest
from transformers import DonutImageProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from pdf2md.convert.dolphin.engine import pixel_values
from pdf2md.convert.dolphin.engine_v2 import fit
from pdf2md.convert.dolphin.render import pad_to_square, render_page

V2_PIXELS = (784, 2_560_000)
"""Dolphin v2's processor limits, as upstream resizes for its coordinates."""


def two_column_boxes(square: int = 896) -> list[tuple[int, int, int, int]]:
    """20 element boxes of a two-column paper page inside an 896 square (page 692 px wide, centred)."""
    left, col, gap = 130, 300, 36
    columns = [left, left + col + gap]
    boxes = [(x, 90 + r * 110, x + col, 180 + r * 110) for x in columns for r in range(6)]
    boxes += [(x, 70 + r * 330, x + 200, 86 + r * 330) for x in columns for r in range(2)]
    boxes += [(x, 760, x + col, 800) for x in columns]
    boxes += [(left, 810, left + 2 * col + gap, 860), (left, 862, left + 2 * col + gap, 880)]
    return boxes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf", type=Path, help="a PDF to render pages from (default: the dev corpus's first)")
    parser.add_argument("--pages", type=int, default=5)
    args = parser.parse_args()
    if args.pdf is None and not CORPUS.is_dir():
        print(f"no --pdf given and no dev corpus at {CORPUS}", file=sys.stderr)
        return 2
    pdf = args.pdf or CORPUS / manifest_pdfs(CORPUS)[0]
    doc = pdfium.PdfDocument(pdf)
    try:
        squares = [render_page(doc, i % len(doc), pad_to_square).image for i in range(args.pages)]
    finally:
        doc.close()
    boxes = two_column_boxes()
    pages = [[square.crop(box) for box in boxes] for square in squares]
    donut = DonutImageProcessor(size={"height": 896, "width": 896}, do_align_long_axis=False)
    qwen = Qwen2VLImageProcessorPil(min_pixels=V2_PIXELS[0], max_pixels=V2_PIXELS[1])
    cpu, meta = torch.device("cpu"), torch.device("meta")  # meta: the device's share is shape-only, as on a GPU it is off the CPU
    ways = {
        "1.x Donut processor": lambda crops: donut(images=crops, return_tensors="pt").pixel_values,
        "1.x pixel_values, normalised on this CPU": lambda crops: pixel_values(donut, crops, cpu, torch.float32),
        "1.x pixel_values, host part only (device work on 'meta')": lambda crops: pixel_values(donut, crops, meta, torch.float16),
        "v2 processor (fit + Qwen2-VL)": lambda crops: qwen(images=[fit(c) for c in crops], return_tensors="pt").pixel_values,
    }
    result: dict[str, object] = {"pdf": str(pdf), "pages": len(pages), "elements_per_page": len(boxes)}
    for name, way in ways.items():
        way(pages[0])
        started = time.perf_counter()
        for crops in pages:
            way(crops)
        result[f"{name}: ms per page"] = round((time.perf_counter() - started) * 1000 / len(pages), 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
