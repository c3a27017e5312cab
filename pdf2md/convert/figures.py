"""Figures cut out of the rendered page, as PNG images the Markdown links to (the `figures` output).

Where the regions come from: on a model page, Dolphin's `fig` boxes (cut from the very image the model
saw); on a text page, the images the page embeds, where one is at least MIN_FIGURE_PT on both sides (icons,
rules and bullets are smaller) and not the page's whole background (a scan under its own text layer).
Each is written once, named by its page and its number on the page, under `<name>.assets/` beside the
Markdown, and linked relative to it, so a synced copy of the output prefix reads anywhere.
"""

from __future__ import annotations

import ctypes
import io
from dataclasses import replace

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw
from PIL import Image

from pdf2md.convert.document_model import BBox, Block, Document, Page
from pdf2md.convert.text.placement import displayed

MIN_FIGURE_PT = 48.0
"""Two thirds of an inch: smaller embedded images are icons, bullets and logos' specks."""
MAX_PAGE_SHARE = 0.9
"""An image covering more of the page than this is its background (a scan under a text layer)."""
FIGURE_DPI = 150
FIGURE_CONTENT_TYPE = "image/png"


def figure_name(page: int, number: int) -> str:
    """A figure's image: page and figure, both counted from 1."""
    return f"page-{page:04d}-figure-{number:02d}.png"


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "PNG", optimize=False)
    return out.getvalue()


def crop(image: Image.Image, box: BBox) -> Image.Image:
    """`box` as fractions of the image (top-left origin), at least one pixel each way."""
    w, h = image.size
    x0, y0 = int(box[0] * w), int(box[1] * h)
    return image.crop((x0, y0, max(x0 + 1, round(box[2] * w)), max(y0 + 1, round(box[3] * h))))


def text_page_figures(doc: pdfium.PdfDocument, index: int, width: float, height: float) -> list[tuple[Block, bytes]]:
    """The embedded images of a text page worth showing, as figure blocks (boxes in displayed points) with
    their PNG cut from the page rendered at FIGURE_DPI."""
    page = doc[index]
    try:
        box, rotation = page.get_bbox(), page.get_rotation()
        regions = [displayed(b, box, rotation) for b in _image_bounds(page)]
        regions = [r for r in regions if min(r[2] - r[0], r[3] - r[1]) >= MIN_FIGURE_PT
                   and (r[2] - r[0]) * (r[3] - r[1]) <= MAX_PAGE_SHARE * width * height]
        if not regions:
            return []
        rendered = page.render(scale=FIGURE_DPI / 72).to_pil()
    finally:
        page.close()
    return [(Block("figure", "", r), png(crop(rendered, (r[0] / width, r[1] / height, r[2] / width, r[3] / height))))
            for r in regions]


def _image_bounds(page: pdfium.PdfPage) -> list[BBox]:
    """User-space bounds of the page's top-level image objects."""
    left, bottom, right, top = ctypes.c_float(), ctypes.c_float(), ctypes.c_float(), ctypes.c_float()
    out = []
    for i in range(pdfium_raw.FPDFPage_CountObjects(page.raw)):
        obj = pdfium_raw.FPDFPage_GetObject(page.raw, i)
        if pdfium_raw.FPDFPageObj_GetType(obj) == pdfium_raw.FPDF_PAGEOBJ_IMAGE and pdfium_raw.FPDFPageObj_GetBounds(obj, left, bottom, right, top):
            out.append((left.value, bottom.value, right.value, top.value))
    return out


def in_reading_order(blocks: tuple[Block, ...], figures: list[Block]) -> tuple[Block, ...]:
    """Figures placed among a page's blocks before the first block that starts below their top."""
    out = list(blocks)
    for figure in sorted(figures, key=lambda b: b.bbox[1] if b.bbox else 0.0, reverse=True):
        top = figure.bbox[1] if figure.bbox else 0.0
        at = next((i for i, b in enumerate(out) if b.bbox is not None and b.bbox[1] > top), len(out))
        out.insert(at, figure)
    return tuple(out)


def linked(document: Document, assets: str) -> Document:
    """The document with each figure that has an image linked from the Markdown as `assets`/<its name>
    (`assets`: the folder relative to the Markdown file, e.g. 'report.assets')."""
    pages = []
    for page in document.pages:
        blocks, number = [], 0
        for block in page.blocks:
            if block.kind == "figure" and block.image:
                number += 1
                path = f"{assets}/{block.image}"
                block = replace(block, markdown=f"![Figure {number}]({path})", image=path)
            blocks.append(block)
        pages.append(replace(page, blocks=tuple(blocks)))
    return Document(tuple(pages))


def named(page: Page, images: dict[str, bytes], crops: list[bytes | None]) -> Page:
    """The page with its figure blocks named in order (page-NNNN-figure-NN.png) where a crop exists; the
    crops land in `images` under those names. `crops` is one entry per figure block, in order."""
    blocks, number, it = [], 0, iter(crops)
    for block in page.blocks:
        if block.kind == "figure":
            data = next(it, None)
            if data is not None:
                number += 1
                name = figure_name(page.number, number)
                images[name] = data
                block = replace(block, image=name)
        blocks.append(block)
    return replace(page, blocks=tuple(blocks))
