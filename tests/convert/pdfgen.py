"""A tiny PDF writer for tests: pages of positioned text in the standard 14 fonts, optionally an image.

Each text item is (x, y, text) or (x, y, text, font, size, render_mode[, angle]); text may also be a list of
strings and numbers, shown with TJ (numbers move the pen back by thousandths of an em); fonts are F1 Helvetica,
F2 Helvetica-Bold, F3 Courier; angle (degrees, counter-clockwise) sets text that runs up or down the page. Each line is (x0, y0, x1, y1), stroked 0.5 pt wide (table rules).
Coordinates are PDF points, origin bottom left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

FONTS = {"F1": "Helvetica", "F2": "Helvetica-Bold", "F3": "Courier"}


@dataclass
class Page:
    texts: list[tuple] = field(default_factory=list)
    lines: list[tuple[float, float, float, float]] = field(default_factory=list)
    image: bool = False
    rotate: int = 0
    width: int = 612
    height: int = 792
    image_rect: tuple[float, float, float, float] | None = None
    """Where the image is drawn (x, y, width, height); None: over the whole page."""


def _escape(text: str) -> bytes:
    raw = text.encode("cp1252")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _content(page: Page) -> bytes:
    out = []
    if page.image:
        x, y, w, h = page.image_rect or (0, 0, page.width, page.height)
        out.append(f"q {w} 0 0 {h} {x} {y} cm /Im1 Do Q".encode())
    out += [b"0.5 w %g %g m %g %g l S" % line for line in page.lines]
    for item in page.texts:
        x, y, text, font, size, mode, angle = (*item, *("F1", 11, 0, 0)[len(item) - 3:])
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        shown = (b"(" + _escape(text) + b") Tj" if isinstance(text, str) else
                 b"[" + b" ".join(b"(" + _escape(t) + b")" if isinstance(t, str) else b"%g" % t for t in text) + b"] TJ")
        out.append(b"BT /%s %g Tf %d Tr %.4f %.4f %.4f %.4f %g %g Tm " % (font.encode(), size, mode, cos, sin, -sin, cos,
                                                                        x, y) + shown + b" ET")
    return b"\n".join(out)


def write_pdf(path: Path, pages: list[Page], page_labels: str = "") -> Path:
    """Write the pages as a valid PDF (with xref table) and return the path; `page_labels`: the /Nums array
    of a /PageLabels number tree (e.g. "0 << /S /r >> 2 << /S /D >>")."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    font_ids = {name: add(f"<< /Type /Font /Subtype /Type1 /BaseFont /{base} /Encoding /WinAnsiEncoding >>".encode())
                for name, base in FONTS.items()}
    image_id = add(b"<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray "
                   b"/BitsPerComponent 8 /Length 4 >>\nstream\n\x80\x40\x40\x80\nendstream")
    fonts = " ".join(f"/{name} {oid} 0 R" for name, oid in font_ids.items())
    pages_id = len(objects) + 2 * len(pages) + 1
    kids = []
    for page in pages:
        content = _content(page)
        cid = add(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        kids.append(add(f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 {page.width} {page.height}] "
                        f"/Rotate {page.rotate} /Contents {cid} 0 R "
                        f"/Resources << /Font << {fonts} >> /XObject << /Im1 {image_id} 0 R >> >> >>".encode()))
    add(f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>".encode())
    labels = f" /PageLabels << /Nums [{page_labels}] >>" if page_labels else ""
    catalog = add(f"<< /Type /Catalog /Pages {pages_id} 0 R{labels} >>".encode())
    return write_objects(path, objects, catalog)


def write_objects(path: Path, objects: list[bytes], root: int) -> Path:
    """A PDF of these objects (numbered from 1) with an xref table; `root` is the catalog's number."""
    data = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(data))
        data += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(data)
    data += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    data += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    data += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref)
    path.write_bytes(bytes(data))
    return path


DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
"""Debian's fonts-dejavu-core (the Makefile installs it with chromium)."""


def dejavu(name: str) -> Path:
    """The DejaVu font file `name` (e.g. "DejaVuSans.ttf"); the test is skipped where it is not installed."""
    import pytest

    font = DEJAVU / name
    if not font.is_file():
        pytest.skip(f"{font} is not installed")
    return font
