"""Bench worker: convert the dev corpus with one extractor and record its time and peak memory.

Run by the interpreter of the extractor's own venv (see peers.py) as
`python bench/extractors.py EXTRACTOR JOB.json RESULT.json`, so it imports nothing but the standard library
at module level; each extractor imports its library inside its factory. The job names the PDFs, their page
counts (from the manifest, so every column divides by the same pages) and the output folder. A factory
builds the converter once (a model or a converter object is set up once in real use too); the first PDF
is converted once untimed to warm caches, then every PDF is timed on wall clock and on process CPU time.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

Convert = Callable[[Path], str]
log = logging.getLogger("bench.extractors")


def pdf2md_text() -> Convert:
    """The text path, exactly as `pdf2md convert --backend text` runs it."""
    from pdf2md.convert import ConvertOptions, convert_pdf

    options = ConvertOptions(backend="text")
    return lambda pdf: convert_pdf(pdf, options).markdown


def _pymupdf4llm(layout: bool, header_footer: bool) -> Convert:
    """pymupdf4llm; pymupdf 2.x carries it and turns its layout model on whenever pymupdf-layout imports."""
    import pymupdf4llm

    pymupdf4llm.use_layout(layout)
    if not layout:  # the legacy path takes neither header/footer nor OCR switches and warns about them
        return lambda pdf: pymupdf4llm.to_markdown(str(pdf), show_progress=False)
    return lambda pdf: pymupdf4llm.to_markdown(str(pdf), header=header_footer, footer=header_footer,
                                               use_ocr=False, show_progress=False)


def docling_native() -> Convert:
    """docling's model-free pipeline: docling-parse text cells in parser order, one parser thread, no images."""
    from docling.datamodel.base_models import InputFormat
    from docling.datamodel.pipeline_options import NativePdfPipelineOptions
    from docling.document_converter import DocumentConverter, NativePdfFormatOption

    options = NativePdfPipelineOptions(parser_threads=1, generate_page_images=False, generate_picture_images=False)
    converter = DocumentConverter(format_options={InputFormat.PDF: NativePdfFormatOption(pipeline_options=options)})
    return lambda pdf: converter.convert(pdf).document.export_to_markdown()


def markitdown() -> Convert:
    """markitdown's PDF converter, plugins off."""
    from markitdown import MarkItDown

    converter = MarkItDown(enable_plugins=False)
    return lambda pdf: converter.convert(str(pdf)).markdown


def pypdfium2_raw() -> Convert:
    """The floor: pypdfium2's own bounded text of every page, pages joined by blank lines."""
    import pypdfium2 as pdfium

    def convert(pdf: Path) -> str:
        doc = pdfium.PdfDocument(pdf)
        try:
            texts = []
            for page in doc:
                textpage = page.get_textpage()
                texts.append(textpage.get_text_bounded())
                textpage.close()
                page.close()
            return "\n\n".join(texts)
        finally:
            doc.close()

    return convert


def camelot(flavor: str) -> Convert:
    """camelot's tables alone, page by page, each as a pipe table (its first row the header): the table
    anchor, not a converter, so its text-similarity figures are near zero by design. `stream` reads
    columns from text alignment, `lattice` from the ruling lines of a rendered page (OpenCV)."""
    import warnings

    import camelot as camelot_py

    def convert(pdf: Path) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No tables found in table area" for every empty page
            tables = camelot_py.read_pdf(str(pdf), pages="all", flavor=flavor, suppress_stdout=True)
        return "\n\n".join(_pipe_table(table.df.values.tolist()) for table in tables)

    return convert


def _pipe_table(rows: list[list[object]]) -> str:
    """A grid of cells as a pipe table: line breaks inside a cell become spaces, pipes are escaped."""
    cells = [[" ".join(str(c).split()).replace("|", "\\|") for c in row] for row in rows]
    if not cells or not cells[0]:
        return ""
    out = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    out += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(out)


FACTORIES: dict[str, Callable[[], Convert]] = {
    "pdf2md-text": pdf2md_text,
    "pymupdf4llm": lambda: _pymupdf4llm(layout=True, header_footer=True),
    "pymupdf4llm-nohf": lambda: _pymupdf4llm(layout=True, header_footer=False),
    "pymupdf4llm-legacy": lambda: _pymupdf4llm(layout=False, header_footer=False),
    "docling-native": docling_native,
    "markitdown": markitdown,
    "pypdfium2-raw": pypdfium2_raw,
    "camelot-stream": lambda: camelot("stream"),
    "camelot-lattice": lambda: camelot("lattice"),
}


def run(name: str, job: dict) -> dict:
    """Convert every PDF of the job; a PDF that fails is listed, not fatal, and its time is not counted."""
    corpus, out = Path(job["corpus"]), Path(job["out"])
    convert = FACTORIES[name]()
    if job["pdfs"]:
        try:
            convert(corpus / job["pdfs"][0]["pdf"])
        except Exception:  # noqa: BLE001 - the timed pass below records the failure
            log.debug("warm-up failed", exc_info=True)
    pages, wall, cpu, failed = 0, 0.0, 0.0, []
    for entry in job["pdfs"]:
        rel = entry["pdf"]
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            markdown = convert(corpus / rel)
        except Exception as exc:  # noqa: BLE001 - a failing PDF is reported, not fatal to the bench
            failed.append(f"{rel}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        wall += time.perf_counter() - wall0
        cpu += time.process_time() - cpu0
        pages += entry["pages"]
        target = out / (rel[:-4] + ".md")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(markdown, encoding="utf-8")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"pages": pages, "seconds": wall, "cpu_seconds": cpu, "rss_mb": rss_mb, "failed": failed}


def main() -> int:
    name, job_file, result_file = sys.argv[1:4]
    logging.basicConfig(level=logging.WARNING)
    job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    Path(result_file).write_text(json.dumps(run(name, job)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
