"""What the document model needs to know of every page besides its text: its size and the PDF's own label."""

from __future__ import annotations

import pypdfium2 as pdfium


def page_sizes(doc: pdfium.PdfDocument) -> list[tuple[float, float]]:
    """Each page's (width, height) in points as displayed (its /Rotate applied), read without loading it;
    (0, 0) for a page pdfium cannot size."""
    sizes = []
    for i in range(len(doc)):
        try:
            width, height = doc.get_page_size(i)
        except pdfium.PdfiumError:
            width = height = 0.0
        sizes.append((round(width, 2), round(height, 2)))
    return sizes


def page_labels(doc: pdfium.PdfDocument) -> list[str | None]:
    """The PDF's own label of each page (/PageLabels: 'iv', 'A-3'), None where the PDF gives none."""
    return [doc.get_page_label(i) or None for i in range(len(doc))]
