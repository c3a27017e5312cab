"""convert_pdf is plan_document then the model then assemble: the split lets the model pages of a PDF be read
elsewhere (another process, a batch shared with other PDFs) and the Markdown put together afterwards."""

from __future__ import annotations

import pickle

from pdf2md.convert import ConvertOptions, convert_pdf
from pdf2md.convert.backends import PageOutput
from pdf2md.convert.document import open_pdf
from pdf2md.convert.pipeline import assemble, plan_document
from tests.conftest import SAMPLES


def test_a_text_pdf_assembles_from_its_plan_alone() -> None:
    options = ConvertOptions(backend="auto")
    with open_pdf(SAMPLES / "crazyones.pdf", (), options.max_pages) as doc:
        plan = plan_document(doc, options)
    assert plan.model_pages == [] and plan.model == ""
    whole = convert_pdf(SAMPLES / "crazyones.pdf", options)
    assembled = assemble(pickle.loads(pickle.dumps(plan)), {})
    assert (assembled.markdown, assembled.pages, assembled.backend, assembled.routes) == (
        whole.markdown, whole.pages, whole.backend, whole.routes)


def test_model_pages_are_filled_in_from_outputs_read_elsewhere() -> None:
    options = ConvertOptions(backend="auto", page_markers=True)
    with open_pdf(SAMPLES / "scanned-crazyones.pdf", (), options.max_pages) as doc:
        plan = pickle.loads(pickle.dumps(plan_document(doc, options)))
    assert plan.model_pages == list(range(plan.pages)) and plan.model in ("ocr", "dolphin")
    outputs = {i: PageOutput(f"read elsewhere {i}", 0.5, {"batch": 3}) for i in plan.model_pages}
    conversion = assemble(plan, outputs)
    assert all(f"read elsewhere {i}" in conversion.markdown for i in plan.model_pages)
    assert conversion.backend == plan.model
    assert [(r.page, r.route, r.seconds, r.model) for r in conversion.routes] == [
        (i + 1, plan.model, 0.5, {"batch": 3}) for i in plan.model_pages]
