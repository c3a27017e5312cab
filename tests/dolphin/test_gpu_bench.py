"""The real-size GPU benchmark's parts, checked on a CPU: published shapes (counted on the meta device, nothing
allocated), forced answer lengths on the real engines, token estimates, recorded layouts, and the smoke run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from pdf2md.convert.dolphin.layout import parse_layout
from pdf2md.convert.dolphin.profiles import PROFILES
from pdf2md.convert.dolphin.prompts import LAYOUT_PROMPT, PROMPTS
from pdf2md.convert.dolphin.render import pad_to_square

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pdf2md.convert.dolphin.scripted import Element, Script, ScriptedEngine, estimate_tokens, layout_answer  # noqa: E402

BENCH = Path(__file__).resolve().parents[2] / "bench" / "dolphin_gpu.py"
CORPUS = Path("/work/shared/corpus/dev")
ELEMENTS = [
    Element("sec_0", (72, 60, 400, 84), "1 Introduction"),
    Element("para", (72, 100, 540, 300), "Dolphin reads the layout first, then each element. " * 6),
    Element("tab", (72, 320, 540, 500), "<table><tr><td>a</td><td>12</td></tr></table>"),
    Element("fig", (72, 520, 300, 700), ""),
    Element("equ", (320, 520, 540, 560), ""),
]
"""A letter page (612 x 792 pt) as docling records it: a heading, a paragraph, a table, a figure, an empty formula."""


@pytest.mark.slow
def test_published_shapes_have_the_published_sizes() -> None:
    from pdf2md.convert.dolphin.published import parameter_count

    assert parameter_count("1.5") == 321_983_096  # ~0.32B: Donut-Swin 896 + 10-layer MBart, vocab 73,921
    assert parameter_count("v2") == 3_754_622_976  # ~3.75B: Qwen2.5-VL-3B with its tied embeddings


def test_token_estimates_follow_the_documented_rules() -> None:
    assert estimate_tokens("2024") == 4  # digits one by one, as Qwen2's tokenizer splits them
    assert estimate_tokens("the documents") == 1 + 3  # ASCII words: a token per 4 letters
    assert estimate_tokens("<td>1</td>") == 3  # an HTML tag is one token
    assert estimate_tokens("表格") == 2 and estimate_tokens("[a]") == 3


@pytest.mark.parametrize("generation", ["1.5", "v2"])
def test_a_recorded_layout_parses_into_the_recorded_elements(generation: str) -> None:
    profile = PROFILES[generation]
    page = Image.new("RGB", (693, 896), "white")
    image, geometry = pad_to_square(page) if generation == "1.5" else (page, _v2_geometry(page))
    answer = layout_answer(ELEMENTS, (612, 792), geometry, profile)
    parsed = parse_layout(answer, geometry, profile, image)
    assert [e.label for e in parsed] == [e.label for e in ELEMENTS]
    first = parsed[0].box  # the heading lands where it is on the page (within a pixel or two of rounding)
    expected = (geometry.content[0] + 72 * 693 / 612, 60 * 896 / 792)
    assert abs(first[0] - expected[0]) <= 2 and abs(first[1] - expected[1]) <= 2


def _v2_geometry(page: Image.Image) -> object:
    from pdf2md.convert.dolphin.layout import PageGeometry

    return PageGeometry.resized(page.width, page.height, (644, 840))


@pytest.mark.parametrize("which", ["1.5", "v2"])
def test_answers_are_forced_to_their_recorded_length(which: str, tiny_15_model_dir: Path, tiny_v2_model_dir: Path) -> None:
    from pdf2md.convert.dolphin.backend import load_engine

    engine = load_engine(tiny_15_model_dir if which == "1.5" else tiny_v2_model_dir)
    page, geometry = engine.frame(Image.new("RGB", (612, 792), "white"))
    script = Script()
    from pdf2md.convert.dolphin.render import RenderedPage

    rendered = RenderedPage(0, page, geometry, 0.0)
    assert script.add_page(rendered, ELEMENTS, (612, 792), engine.profile) == len(ELEMENTS)
    scripted = ScriptedEngine(engine, script, max_tokens=16)  # the tiny 1.5 decoder has 64 positions, prompt included
    seen: list[int] = []
    generate = scripted._generate

    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        out = generate(*args, **kwargs)
        start = kwargs["decoder_input_ids" if which == "1.5" else "input_ids"].shape[1]  # type: ignore[union-attr]
        ends = [(row[start:] == engine.tokenizer.eos_token_id).nonzero() for row in out]
        seen.extend(int(e[0]) if len(e) else out.shape[1] - start for e in ends)
        return out

    scripted._generate = spy
    layout = scripted.generate([rendered.layout_image], LAYOUT_PROMPT)  # the layout stage reads the page, not the square
    recorded = script.answer(rendered.layout_image, LAYOUT_PROMPT)
    assert layout == [recorded.text] and seen == [min(16, recorded.tokens)]
    crop = page.crop(parse_layout(layout[0] or "", geometry, engine.profile, page)[1].box)
    seen.clear()
    assert scripted.generate([crop, crop], PROMPTS["text"]) == [ELEMENTS[1].text] * 2
    assert seen == [16, 16] and scripted.tokens == min(16, estimate_tokens(layout[0] or "")) + 32 and script.misses == 0


@pytest.mark.skipif(not (CORPUS / "docling_md").is_dir(), reason=f"the dev corpus is not at {CORPUS}")
@pytest.mark.parametrize("generation", ["1.5", "v2"])
def test_the_cpu_smoke_run_reads_real_dev_pages(generation: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("dolphin_gpu", BENCH)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "dolphin_gpu", bench)  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    assert bench.main(["--smoke", generation, "--pages", "3", "--max-tokens", "4", "--json", "--corpus", str(CORPUS)]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["pages"] == 3 and result["failed_documents"] == 0 and result["unrecorded_images"] == 0
    assert result["tokens"] > 0 and result["pages_per_s"] > 0 and result["layout_batches"] and result["element_batches"]
    assert result["peak_gpu_mb"] is None and result["t4_pages_per_s_estimate"] is None  # a CPU: no GPU figures invented
