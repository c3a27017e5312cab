"""The JSON writer: the typed document (document_model) as `pdf2md/document.schema.json` describes it.

Optional facts are left out where the source has none (a page label, a box, a confidence), never written
as a guess; `schema_version` changes with any change to the shape (a new optional key: minor; a key
removed or changing meaning: major).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from pdf2md.convert.document_model import Block, Document, Page, PageConfidence

SCHEMA_VERSION = "1.0"
SCHEMA_FILE = "document.schema.json"
"""Shipped in the package (pdf2md/document.schema.json)."""
JSON_CONTENT_TYPE = "application/json"


def schema() -> dict[str, Any]:
    """The JSON Schema the per-document JSON follows."""
    loaded: dict[str, Any] = json.loads(resources.files("pdf2md").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))
    return loaded


def document_dict(document: Document, *, source: dict[str, str] | None = None, converter_version: str = "",
                  backend: str = "") -> dict[str, Any]:
    """The document's JSON object; `source` (uri, etag) and the converter's version head it where known."""
    head: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    if converter_version:
        head["converter_version"] = converter_version
    if source:
        head["source"] = source
    if backend:
        head["backend"] = backend
    return {**head, "page_count": len(document.pages), "pages": [_page(p) for p in document.pages]}


def document_bytes(document: Document, **head: Any) -> bytes:
    """The JSON as written beside the Markdown: UTF-8, compact (a document of thousands of blocks stays small)."""
    return json.dumps(document_dict(document, **head), ensure_ascii=False, separators=(",", ":")).encode()


def _page(page: Page) -> dict[str, Any]:
    out: dict[str, Any] = {"number": page.number}
    if page.label:
        out["label"] = page.label
    out.update(width=page.width, height=page.height, route=page.route, reason=page.reason)
    if page.confidence is not None:
        out["confidence"] = _confidence(page.confidence)
    out["blocks"] = [_block(i, b) for i, b in enumerate(page.blocks)]
    return out


def _confidence(confidence: PageConfidence) -> dict[str, Any]:
    out: dict[str, Any] = {"source": confidence.source}
    if confidence.value is not None:
        out["value"] = confidence.value
    if confidence.checks:
        out["checks"] = dict(confidence.checks)
    return out


def _block(index: int, block: Block) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "kind": block.kind}
    if block.level is not None:
        out["level"] = block.level
    out["markdown"] = block.markdown
    if block.bbox is not None:
        out["bbox"] = list(block.bbox)
    if block.confidence is not None:
        out["confidence"] = block.confidence
    if block.label is not None:
        out["label"] = block.label
    if block.image is not None:
        out["image"] = block.image
    return out
