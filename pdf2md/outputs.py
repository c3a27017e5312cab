"""What a PDF becomes besides its Markdown, as the run's `outputs` setting asks (contracts.OUTPUTS).

The Markdown stays the one object that says a PDF is done: its conditional PUT (If-None-Match / If-Match)
is the commit, and the other outputs ("sidecars": the JSON, the figures) are written before it, under names
fixed by the PDF's path, so that a rerun overwrites them rather than adding copies, and a PDF whose Markdown
never landed is not done for the next plan, whatever sidecars it left. The worker and `pdf2md convert`
write the same sidecars, one to S3 and one to a folder.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from pdf2md.contracts import CONVERTER_VERSION, DEFAULT_OUTPUTS
from pdf2md.convert import Conversion
from pdf2md.convert.document_json import JSON_CONTENT_TYPE, document_bytes
from pdf2md.convert.figures import FIGURE_CONTENT_TYPE, linked


@dataclass(frozen=True)
class Sidecar:
    """One object written beside the Markdown: its path relative to the output prefix, its bytes."""

    rel: str
    body: bytes
    content_type: str


def page_markers(outputs: Sequence[str]) -> bool:
    return "page-markers" in outputs


@dataclass(frozen=True)
class Written:
    """What a converted PDF becomes: the Markdown's text, and the sidecars to write before it."""

    markdown: str
    sidecars: list[Sidecar]

    @property
    def figures(self) -> int:
        return sum(car.content_type == FIGURE_CONTENT_TYPE for car in self.sidecars)


def written(md_rel: str, conversion: Conversion, outputs: Sequence[str], source: dict[str, str] | None = None) -> Written:
    """The Markdown at `md_rel` (a path ending in .md) and the objects `outputs` asks for beside it: with
    figures, the images under <name>.assets/ and the Markdown and JSON re-rendered from the document with
    the figures linked (relative to the Markdown, so a synced copy of the prefix reads anywhere)."""
    document, markdown = conversion.document, conversion.markdown
    out: list[Sidecar] = []
    if "figures" in outputs and conversion.images:
        stem = md_rel[:-3]
        document = linked(document, posixpath.basename(stem) + ".assets")
        markdown = document.markdown(page_markers(outputs))
        out += [Sidecar(f"{stem}.assets/{name}", data, FIGURE_CONTENT_TYPE) for name, data in conversion.images.items()]
    if "json" in outputs:
        body = document_bytes(document, source=source, converter_version=CONVERTER_VERSION, backend=conversion.backend)
        out.append(Sidecar(md_rel[:-3] + ".json", body, JSON_CONTENT_TYPE))
    return Written(markdown, out)


def wants_figures(outputs: Sequence[str]) -> bool:
    return "figures" in outputs


def needs_document(outputs: Sequence[str]) -> bool:
    """Whether a writer renders from the document (the JSON, figure links) rather than the Markdown alone."""
    return "json" in outputs or "figures" in outputs


def outputs_meta(outputs: Sequence[str]) -> str | None:
    """The Markdown's x-amz-meta-outputs: None for Markdown only (the default run's metadata is unchanged)."""
    return None if tuple(outputs) == DEFAULT_OUTPUTS else ",".join(outputs)
