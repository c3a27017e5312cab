"""Opening a PDF with pypdfium2, with every failure translated into an error class."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pypdfium2 as pdfium

from pdf2md.convert.errors import ConversionError

_PDF_MAGIC_WINDOW = 1024


def _looks_like_pdf(path: Path) -> bool:
    """PDF readers accept junk before the header, but not a file without one in its first KiB."""
    with path.open("rb") as fh:
        head = fh.read(_PDF_MAGIC_WINDOW)
    return b"%PDF-" in head


@contextmanager
def open_pdf(path: Path, passwords: Sequence[str] = (), max_pages: int | None = None) -> Iterator[pdfium.PdfDocument]:
    """Open `path`, trying no password and then each supplied one; always closes the document."""
    if not path.is_file():
        raise ConversionError("not-pdf", f"{path} is not a file")
    if path.stat().st_size == 0:
        raise ConversionError("not-pdf", "the file is empty (0 bytes)")
    if not _looks_like_pdf(path):
        raise ConversionError("not-pdf", "no %PDF- header in the first KiB")
    doc = _open_with_passwords(path, passwords)
    try:
        n = len(doc)
        if n == 0:
            raise ConversionError("empty", "the PDF has no pages")
        if max_pages is not None and n > max_pages:
            raise ConversionError("too-many-pages", f"{n} pages, more than the limit of {max_pages}")
        yield doc
    finally:
        doc.close()


def _open_with_passwords(path: Path, passwords: Sequence[str]) -> pdfium.PdfDocument:
    last: pdfium.PdfiumError | None = None
    for password in (None, *passwords):
        try:
            return pdfium.PdfDocument(path, password=password)
        except pdfium.PdfiumError as exc:
            last = exc
            if "password" not in str(exc).lower():
                break
    message = str(last)
    if "password" in message.lower():
        tried = f"{len(passwords)} supplied password(s) failed" if passwords else "no password was supplied"
        raise ConversionError("password-required", f"encrypted PDF: {tried}")
    if "data format" in message.lower():
        raise ConversionError("corrupt", f"pdfium cannot parse it ({message})")
    raise ConversionError("corrupt", message)
