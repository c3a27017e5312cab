"""The born-digital path: a page's own text layer, read with pypdfium2, as Markdown."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pypdfium2 as pdfium

MIN_USABLE_CHARS = 20
_SOFT_HYPHEN_BREAK = re.compile(r"(\w)[\x02\u00ad]\s*\r?\n\s*(\w)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class PageText:
    markdown: str
    usable: bool
    reason: str


@dataclass(frozen=True)
class DocumentText:
    pages: list[PageText]


def extract(doc: pdfium.PdfDocument) -> DocumentText:
    """Read every page's text layer and judge whether it is worth using."""
    return DocumentText([_page(doc, i) for i in range(len(doc))])


def _page(doc: pdfium.PdfDocument, index: int) -> PageText:
    page = doc[index]
    try:
        textpage = page.get_textpage()
        try:
            raw = textpage.get_text_bounded()
        finally:
            textpage.close()
    finally:
        page.close()
    text = _clean(raw)
    n = sum(ch.isalnum() for ch in text)
    if n < MIN_USABLE_CHARS:
        return PageText(text, False, f"text layer has {n} letters or digits (< {MIN_USABLE_CHARS})")
    return PageText(text, True, f"text layer with {n} letters or digits")


def _clean(raw: str) -> str:
    text = _SOFT_HYPHEN_BREAK.sub(r"\1\2", raw)
    text = _CONTROL.sub("", text.replace("\x02", ""))
    paragraphs = [" ".join(line.strip() for line in block.splitlines() if line.strip()) for block in re.split(r"\r?\n\s*\r?\n", text)]
    return "\n\n".join(p for p in paragraphs if p)


def join_pages(chunks: list[str], page_markers: bool = False) -> str:
    """One document; page markers only when asked for."""
    if page_markers:
        body = "\n\n".join(f"<!-- page {i} -->\n\n{c}".rstrip() for i, c in enumerate(chunks, 1))
    else:
        body = "\n\n".join(c.strip() for c in chunks if c.strip())
    return body.strip() + "\n" if body.strip() else ""
