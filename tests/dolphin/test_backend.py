"""The real path on a real PDF: render -> layout -> parse -> crops -> elements -> Markdown, on tiny random Dolphins.

Every test runs on each generation: 1.0 and 1.5 (Swin + MBart) and v2 (Qwen2.5-VL).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from pdf2md.contracts import ENV_MODEL_DIR, ENV_MODEL_URI, PageRoute
from pdf2md.convert.backends import BackendUnavailable, PageOutput, load_backend
from pdf2md.convert.dolphin import DolphinBackend
from pdf2md.convert.dolphin.layout import PageGeometry
from pdf2md.convert.dolphin.prompts import LAYOUT_PROMPT, PROMPTS
from pdf2md.convert.dolphin.render import pad_to_square, prefetch_pages, render_page
from pdf2md.convert.errors import ConversionError
from pdf2md.convert.pipeline import Conversion, ConvertOptions, convert_pdf
from pdf2md.isolation import IsolatedConverter

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

RECORDED_BOXES = [
    ((0.12, 0.10, 0.60, 0.13), "title"),
    ((0.12, 0.18, 0.88, 0.46), "para"),
    ((0.12, 0.18, 0.88, 0.46), "para"),
    ((0.12, 0.47, 0.50, 0.52), "equ"),
    ((0.12, 0.52, 0.88, 0.70), "tab"),
    ((0.55, 0.72, 0.88, 0.90), "fig"),
    ((0.12, 0.72, 0.50, 0.90), "code"),
]
"""A page as Dolphin lays it out, with a repeated box (1.x shrinks it away) and, on 1.x, a truncated last line."""

PROMPT_BATCHES = {
    "1.0": {PROMPTS["text"]: 8, PROMPTS["table"]: 2},  # 1.0 reads equ and code with the text prompt
    "1.5": {PROMPTS["text"]: 4, PROMPTS["formula"]: 2, PROMPTS["table"]: 2, PROMPTS["code"]: 2},
    "v2": {PROMPTS["text"]: 4, PROMPTS["formula"]: 2, PROMPTS["table"]: 2, PROMPTS["code"]: 2},
}
"""Crops per prompt for both pages together: title, para, equ, tab, code each (the figure is not read)."""


def recorded_layout(generation: str, geometry: PageGeometry) -> str:
    """RECORDED_BOXES in each generation's own format: 1.0 fractions, 1.5 pixels of the 896 square, v2 of its grid.

    v2 gets no repeated box and no truncated tail: either alone makes it read the page whole (test_layout.py).
    """
    if generation == "1.0":
        return "\n".join(f"[{a},{b},{c},{d}] {label}" for (a, b, c, d), label in RECORDED_BOXES) + "\nbroken ["
    width, height = geometry.grid
    boxes = RECORDED_BOXES if generation == "1.5" else [RECORDED_BOXES[0], *RECORDED_BOXES[2:]]
    pairs = [f"[{round(a * width)},{round(b * height)},{round(c * width)},{round(d * height)}][{label}]" for (a, b, c, d), label in boxes]
    return "[PAIR_SEP]".join(pairs) + ("[PAIR_SEP][12," if generation == "1.5" else "")


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> DolphinBackend:
    return DolphinBackend(model_dir, max_batch=4)


class RecordedLayout:
    """The real tiny model for elements, a recorded answer for the page layout; logs every call."""

    def __init__(self, real: DolphinBackend, generation: str) -> None:
        self.real = real.engine
        self.generation = generation
        self.profile = self.real.profile
        self.calls: list[tuple[str, int]] = []

    def frame(self, page: Image.Image) -> tuple[Image.Image, PageGeometry]:
        return self.real.frame(page)

    def generate(self, images: Sequence[Image.Image], prompt: str) -> list[str]:
        self.calls.append((prompt, len(images)))
        if prompt == LAYOUT_PROMPT:
            return [recorded_layout(self.generation, self.frame(image)[1]) for image in images]
        return self.real.generate(images, prompt)


def test_real_model_end_to_end_through_the_backend(model_env: Path, pdf_path: Path) -> None:
    backend = load_backend("dolphin")
    assert isinstance(backend, DolphinBackend)
    doc = pdfium.PdfDocument(pdf_path)
    try:
        out = backend.convert_pages(doc, [1, 0])
    finally:
        doc.close()
    assert sorted(out) == [0, 1]
    for page in out.values():
        assert isinstance(page, PageOutput) and isinstance(page.markdown, str)
        assert page.seconds > 0
        assert page.extra["layout"] in ("model", "fallback") and page.extra["elements"] >= 1
        assert page.extra["failed_elements"] == 0


def test_recorded_layout_drives_crops_batched_across_pages(backend: DolphinBackend, generation: str, pdf_path: Path) -> None:
    recorded = RecordedLayout(backend, generation)
    pooled = DolphinBackend(engine=recorded, max_batch=16, figures="reference")
    doc = pdfium.PdfDocument(pdf_path)
    try:
        out = pooled.convert_pages(doc, [0, 1])
    finally:
        doc.close()
    assert recorded.profile.name == generation
    assert recorded.calls[0] == (LAYOUT_PROMPT, 2)
    by_prompt: dict[str, int] = {}
    for prompt, n in recorded.calls[1:]:
        by_prompt[prompt] = by_prompt.get(prompt, 0) + n
    assert by_prompt == PROMPT_BATCHES[generation]
    size = pooled.batcher.size  # both pages' crops of one prompt fill its batches; a batch never mixes prompts
    assert len(recorded.calls) == 1 + sum(-(-n // size) for n in by_prompt.values())
    for index, page in out.items():
        assert page.extra["layout"] == "model" and page.extra["elements"] == 6
        assert f"![Figure 1](page-{index + 1:04d}-figure-01.png)" in page.markdown
        assert page.extra["figures"][0]["name"] == f"page-{index + 1:04d}-figure-01.png"
        assert all(0 <= v <= 1 for v in page.extra["figures"][0]["box"])


def test_out_of_memory_halves_the_batch_and_finishes(backend: DolphinBackend, generation: str, pdf_path: Path) -> None:
    class Tight(RecordedLayout):
        def generate(self, images: Sequence[Image.Image], prompt: str) -> list[str]:
            if len(images) > 1:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
            return super().generate(images, prompt)

    tight = DolphinBackend(engine=Tight(backend, generation), max_batch=4)
    doc = pdfium.PdfDocument(pdf_path)
    try:
        out = tight.convert_pages(doc, [0, 1])
    finally:
        doc.close()
    assert tight.batcher.size == 1
    assert all(p.extra["failed_elements"] == 0 and p.extra["element_batch"] == 1 for p in out.values())


def test_pipeline_with_the_dolphin_backend(model_env: Path, pdf_path: Path) -> None:
    result = convert_pdf(pdf_path, ConvertOptions(backend="dolphin"))
    assert result.pages == 2 and result.backend == "dolphin"
    assert [r.route for r in result.routes] == ["dolphin", "dolphin"]
    for route in result.routes:  # what the model did per page reaches the output's results record
        assert route.seconds > 0 and route.model["layout"] in ("model", "fallback") and route.model["elements"] >= 1
    assert result.gpu_peak_mb is None  # a CPU: nothing to report


def test_the_documents_gpu_peak_is_its_largest_page() -> None:
    routes = [PageRoute(1, "text", "ok"), PageRoute(2, "dolphin", "scan", 1.0, {"gpu_peak_mb": 900.0}), PageRoute(3, "dolphin", "scan", 1.0, {"gpu_peak_mb": 1200.5})]
    assert Conversion("", 3, "dolphin+text", routes, 2.0).gpu_peak_mb == 1200.5


def test_pipeline_without_a_model_is_backend_unavailable(tmp_path: Path, pdf_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MODEL_DIR, str(tmp_path))
    monkeypatch.delenv(ENV_MODEL_URI, raising=False)
    load_backend.cache_clear()
    try:
        with pytest.raises(ConversionError) as err:
            convert_pdf(pdf_path, ConvertOptions(backend="dolphin"))
    finally:
        load_backend.cache_clear()
    assert err.value.error_class == "backend-unavailable"
    assert "incomplete: missing config.json" in str(err.value)


def test_bad_figures_option_is_rejected(backend: DolphinBackend) -> None:
    with pytest.raises(BackendUnavailable, match="PDF2MD_DOLPHIN_FIGURES='inline'"):
        DolphinBackend(engine=backend.engine, figures="inline")


def test_pages_render_once_into_a_centred_square(pdf_path: Path) -> None:
    doc = pdfium.PdfDocument(pdf_path)
    try:
        page = render_page(doc, 0, pad_to_square)
        assert page.image.size == (896, 896) and page.geometry.content == (101, 0, 794, 896)  # 612 x 792 pt at 896/792
        assert page.image.getpixel((50, 448)) == (0, 0, 0) and page.image.getpixel((120, 20)) == (255, 255, 255)
        with pytest.raises(pdfium.PdfiumError):
            list(prefetch_pages(doc, [0, 7], pad_to_square))
        first = next(iter(prefetch_pages(doc, [0, 1, 0, 1], pad_to_square, depth=1)))
        assert first.index == 0
    finally:
        doc.close()


def test_the_model_loads_before_the_first_pdf_and_is_not_charged_to_it(model_env: Path, pdf_path: Path) -> None:
    # The limit sits between what a two-page PDF adds (about 60 MB here: torch's first-inference buffers
    # included) and what torch plus the model hold before it (over 300 MB): it holds only if the
    # PDF's limit counts from the loaded child.
    limit_mb = 200
    with IsolatedConverter(ConvertOptions(backend="dolphin"), timeout_s=120, memory_mb=limit_mb) as converter:
        assert converter.convert(pdf_path).pages == 2
        assert converter._baseline > limit_mb * 2**20


def test_a_missing_model_fails_each_pdf_not_the_child(tmp_path: Path, pdf_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_MODEL_DIR, str(tmp_path))
    monkeypatch.delenv(ENV_MODEL_URI, raising=False)
    with IsolatedConverter(ConvertOptions(backend="dolphin"), timeout_s=60, memory_mb=1024) as converter:
        for _ in range(2):
            with pytest.raises(ConversionError) as err:
                converter.convert(pdf_path)
            assert err.value.error_class == "backend-unavailable" and "incomplete" in str(err.value)
