"""Dolphin throughput on this machine's GPU: pages/s and peak GPU memory.

    .venv/bin/python bench/dolphin_gpu.py --model-dir DIR [--pdf FILE] [--pages N] [--max-batch N]
    .venv/bin/python bench/dolphin_gpu.py --tiny [1.x|v2]   # a tiny random model: proves the CUDA path without weights

--model-dir takes a Dolphin 1.0/1.5 or v2 checkpoint; its config.json picks the engine.

Without --pdf it converts a synthetic text-and-table PDF. The first page is a warm-up and not timed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageDraw

from pdf2md.convert.dolphin import DolphinBackend
from pdf2md.convert.dolphin.tiny import build_tiny_model, build_tiny_v2_model

TINY = {"1.x": lambda d: build_tiny_model(d, max_positions=512), "v2": lambda d: build_tiny_v2_model(d, max_positions=1024)}

LOREM = "Dolphin reads the layout of each page first, then every element of it in batches. "


def synthetic_pdf(path: Path, pages: int) -> Path:
    """Letter-sized pages with a heading, paragraphs and a ruled table, drawn at 100 dpi."""
    images = [_synthetic_page(n) for n in range(pages)]
    images[0].save(path, "PDF", resolution=100, save_all=True, append_images=images[1:])
    return path


def _synthetic_page(number: int) -> Image.Image:
    page = Image.new("RGB", (850, 1100), "white")
    draw = ImageDraw.Draw(page)
    draw.text((80, 70), f"Section {number + 1}: Results", fill="black", font_size=28)
    y = 130
    for _ in range(3):
        for line in range(6):
            draw.text((80, y + 22 * line), LOREM[: 60 + 3 * line], fill="black", font_size=16)
        y += 170
    for row in range(5):
        for col in range(4):
            x0, y0 = 80 + 170 * col, y + 40 * row
            draw.rectangle((x0, y0, x0 + 170, y0 + 40), outline="black")
            draw.text((x0 + 10, y0 + 10), f"r{row}c{col} {row * col:.2f}", fill="black", font_size=14)
    return page


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="a Dolphin checkpoint dir (1.0, 1.5 or v2)")
    parser.add_argument("--tiny", nargs="?", const="1.x", choices=sorted(TINY), help="build and use a tiny random model instead")
    parser.add_argument("--pdf", type=Path, help="the PDF to convert (default: a synthetic one)")
    parser.add_argument("--pages", type=int, default=16, help="pages to time (default 16)")
    parser.add_argument("--max-batch", type=int, help="most crops per batch (default: from free GPU memory)")
    args = parser.parse_args()
    if args.tiny is None and args.model_dir is None:
        parser.error("give --model-dir DIR or --tiny [1.x|v2]")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import torch

    if not torch.cuda.is_available():
        print("warning: no CUDA GPU here; timing the CPU path", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = TINY[args.tiny](Path(tmp) / "tiny") if args.tiny else args.model_dir
        pdf = args.pdf or synthetic_pdf(Path(tmp) / "synthetic.pdf", args.pages + 1)
        result = run(model_dir, pdf, args.pages, args.max_batch)
    print(json.dumps(result, indent=2))
    return 0


def run(model_dir: Path, pdf: Path, pages: int, max_batch: int | None) -> dict[str, object]:
    import torch

    started = time.perf_counter()
    backend = DolphinBackend(model_dir, max_batch=max_batch)
    load_s = time.perf_counter() - started
    doc = pdfium.PdfDocument(pdf)
    try:
        indices = [i % len(doc) for i in range(pages + 1)]
        backend.convert_pages(doc, indices[:1])
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        out = backend.convert_pages(doc, indices[1:])
        elapsed = time.perf_counter() - started
    finally:
        doc.close()
    outputs = list(out.values())
    return {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "model_dir": str(model_dir),
        "engine": type(backend.engine).__name__,
        "dtype": str(getattr(backend.engine, "dtype", "")),
        "pages": len(indices) - 1,
        "load_seconds": round(load_s, 2),
        "seconds": round(elapsed, 2),
        "pages_per_second": round((len(indices) - 1) / elapsed, 3),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
        "element_batch": backend.batcher.size,
        "batch_halvings": backend.batcher.halvings,
        "layout_fallbacks": sum(o.extra["layout"] == "fallback" for o in outputs),
        "elements": sum(o.extra["elements"] for o in outputs),
        "failed_elements": sum(o.extra["failed_elements"] for o in outputs),
    }


if __name__ == "__main__":
    sys.exit(main())
