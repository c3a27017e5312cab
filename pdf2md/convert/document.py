"""Opening a PDF with pypdfium2, with every failure translated into an error class.

The document is loaded through PDFium's own FPDF_LoadDocument and then wrapped in a PdfDocument, so
that a failure is classified from a fresh error code. (pypdfium2's PdfDocument treats a document that
loads but has no pages as a load failure and reports FPDF_GetLastError(), which is then whatever the
previous failure in this process left behind: a PDF with an empty page tree read as "Incorrect
password" right after an encrypted one, or as "Data format error" after a broken one.)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from pdf2md.convert.errors import ConversionError

_PDF_MAGIC_WINDOW = 1024
_PATH_ERRORS = "strict" if sys.platform.startswith("win32") else "surrogateescape"

_LOAD_ERRORS = {
    pdfium_c.FPDF_ERR_UNKNOWN: "unknown error",
    pdfium_c.FPDF_ERR_FILE: "file not found or could not be opened",
    pdfium_c.FPDF_ERR_FORMAT: "not a PDF or corrupted",
    pdfium_c.FPDF_ERR_PASSWORD: "password required or incorrect password",
    pdfium_c.FPDF_ERR_SECURITY: "unsupported security scheme",
    pdfium_c.FPDF_ERR_PAGE: "page not found or content error",
}


def looks_like_pdf(path: Path) -> bool:
    """PDF readers accept junk before the header, but not a file without one in its first KiB."""
    with path.open("rb") as fh:
        head = fh.read(_PDF_MAGIC_WINDOW)
    return b"%PDF-" in head


@contextmanager
def open_pdf(path: Path, passwords: Sequence[str] = (), max_pages: int | None = None) -> Iterator[pdfium.PdfDocument]:
    """Open `path`, trying no password and then each supplied one; always closes the document.

    Raises ConversionError: not-pdf, password-required, corrupt, empty or too-many-pages.
    """
    if not path.is_file():
        raise ConversionError("not-pdf", f"{path} is not a file")
    if path.stat().st_size == 0:
        raise ConversionError("not-pdf", "the file is empty (0 bytes)")
    if not looks_like_pdf(path):
        raise ConversionError("not-pdf", "no %PDF- header in the first KiB")
    doc = pdfium.PdfDocument(_load_with_passwords(path, passwords))
    try:
        n = len(doc)
        if n == 0:
            raise ConversionError("empty", "the PDF has no pages (its page tree is empty)")
        if max_pages is not None and n > max_pages:
            raise ConversionError("too-many-pages", f"{n} pages, more than the limit of {max_pages}")
        yield doc
    finally:
        doc.close()


def _load(path: Path, password: str | None) -> tuple[pdfium_c.FPDF_DOCUMENT | None, int]:
    """FPDF_LoadDocument: (handle, 0) or (None, the error code of this very load)."""
    encoded = (str(path.resolve()) + "\x00").encode("utf-8", errors=_PATH_ERRORS)
    secret = None if password is None else (password + "\x00").encode("utf-8")
    raw = pdfium_c.FPDF_LoadDocument(encoded, secret)
    if raw:
        return raw, 0
    return None, int(pdfium_c.FPDF_GetLastError())


def _load_with_passwords(path: Path, passwords: Sequence[str]) -> pdfium_c.FPDF_DOCUMENT:
    """The raw document, opened with no password or the first supplied one that works."""
    code = pdfium_c.FPDF_ERR_UNKNOWN
    for password in (None, *passwords):
        raw, code = _load(path, password)
        if raw is not None:
            return raw
        if code != pdfium_c.FPDF_ERR_PASSWORD:
            break
    if code == pdfium_c.FPDF_ERR_PASSWORD:
        tried = f"{len(passwords)} supplied password(s) failed" if passwords else "no password was supplied"
        raise ConversionError("password-required", f"encrypted PDF: {tried}")
    if code == pdfium_c.FPDF_ERR_SECURITY:
        raise ConversionError("password-required", "encrypted with a security handler PDFium does not support")
    reason = _LOAD_ERRORS.get(code, f"error code {code}")
    raise ConversionError("corrupt", f"PDFium cannot parse it ({reason})")
