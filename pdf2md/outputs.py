"""What a PDF becomes besides its Markdown, as the run's `outputs` setting asks (contracts.OUTPUTS).

The Markdown stays the one object that says a PDF is done: its conditional PUT (If-None-Match / If-Match)
is the commit, and the other outputs ("sidecars": the JSON, the figures) are written before it, under names
fixed by the PDF's path, so that a rerun overwrites them rather than adding copies, and a PDF whose Markdown
never landed is not done for the next plan, whatever sidecars it left. The worker and `pdf2md convert`
write the same sidecars, one to S3 and one to a folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pdf2md.contracts import CONVERTER_VERSION, DEFAULT_OUTPUTS
from pdf2md.convert import Conversion
from pdf2md.convert.document_json import JSON_CONTENT_TYPE, document_bytes


@dataclass(frozen=True)
class Sidecar:
    """One object written beside the Markdown: its path relative to the output prefix, its bytes."""

    rel: str
    body: bytes
    content_type: str


def page_markers(outputs: Sequence[str]) -> bool:
    return "page-markers" in outputs


def sidecars(md_rel: str, conversion: Conversion, outputs: Sequence[str], source: dict[str, str] | None = None) -> list[Sidecar]:
    """The objects `outputs` asks for beside the Markdown at `md_rel` (a path ending in .md)."""
    out: list[Sidecar] = []
    if "json" in outputs:
        body = document_bytes(conversion.document, source=source, converter_version=CONVERTER_VERSION, backend=conversion.backend)
        out.append(Sidecar(md_rel[:-3] + ".json", body, JSON_CONTENT_TYPE))
    return out


def outputs_meta(outputs: Sequence[str]) -> str | None:
    """The Markdown's x-amz-meta-outputs: None for Markdown only (the default run's metadata is unchanged)."""
    return None if tuple(outputs) == DEFAULT_OUTPUTS else ",".join(outputs)
