"""Dolphin v2 (Qwen2.5-VL) on a tiny random model: chat prompts, left-padded batches, the processor's grid."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw

from pdf2md.convert.backends import BackendUnavailable
from pdf2md.convert.dolphin import DolphinBackend
from pdf2md.convert.dolphin.backend import load_engine
from pdf2md.convert.dolphin.layout import PageGeometry
from pdf2md.convert.dolphin.prompts import LAYOUT_PROMPT, PROMPTS

pytest.importorskip("torch")
pytest.importorskip("transformers")

from pdf2md.convert.dolphin.engine import DolphinModel  # noqa: E402
from pdf2md.convert.dolphin.engine_v2 import DolphinV2Model, fit  # noqa: E402


@pytest.fixture(scope="module")
def engine(tiny_v2_model_dir: Path) -> DolphinV2Model:
    return DolphinV2Model(tiny_v2_model_dir)


def _page(size: tuple[int, int], text: str) -> Image.Image:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((5, 5), text, fill="black")
    return image


def test_batched_answers_equal_single_runs(engine: DolphinV2Model) -> None:
    images = [_page((300, 400), "a tall page"), _page((420, 90), "a wide line"), _page((60, 60), "x")]
    batched = engine.generate(images, PROMPTS["text"])
    for image, answer in zip(images, batched, strict=True):
        (alone,) = engine.generate([image], PROMPTS["text"])
        # left padding is exact; the tiny model's 256 positions end a padded row a little sooner
        assert answer and alone.startswith(answer)


def test_frame_grid_is_the_grid_the_processor_feeds_the_model(engine: DolphinV2Model) -> None:
    page = _page((692, 896), "letter")
    framed, geometry = engine.frame(page)
    assert framed.size == geometry.size == (692, 896) and geometry.content == (0, 0, 692, 896)
    (grid,) = engine.images(images=[framed], return_tensors="pt")["image_grid_thw"].tolist()
    patch = engine.images.patch_size
    assert geometry.grid == (grid[2] * patch, grid[1] * patch)


def upstream_resize_img(size: tuple[int, int]) -> tuple[int, int]:
    """bytedance/Dolphin 5270fee utils/utils.py `resize_img`, on sizes: the long side shrunk to 1600, then the
    short side grown to 28 (the long side then uncapped)."""
    width, height = size
    if max(width, height) < 1600 and min(width, height) >= 28:
        return size
    if max(width, height) > 1600:
        width, height = (1600, int(height * (1600 / width))) if width > height else (int(width * (1600 / height)), 1600)
    if min(width, height) < 28:
        width, height = (28, int(height * (28 / width))) if width < height else (int(width * (28 / height)), 28)
    return width, height


@pytest.mark.parametrize("size", [(10, 800), (800, 10), (1, 1), (3000, 2000), (10, 1500), (892, 5), (1600, 1600), (2400, 12)])
def test_crops_are_resized_as_upstream_resizes_them(size: tuple[int, int]) -> None:
    assert fit(Image.new("RGB", size, "white")).size == upstream_resize_img(size)


@pytest.mark.parametrize("size", [(4, 900), (900, 4), (896, 4)])
def test_crops_thinner_than_the_processor_accepts_are_padded_not_refused(size: tuple[int, int]) -> None:
    """Upstream's resize makes a 900 x 4 crop 6300 x 28, which Qwen's processor refuses (ratio over 200): upstream
    loses the document. Here the resized crop is padded with white to the ratio, its pixels untouched."""
    crop = Image.new("RGB", size, "white")
    crop.paste((0, 0, 0), (0, 0, size[0] // 2, size[1] // 2))
    resized = crop.resize(upstream_resize_img(size))
    fitted = fit(crop)
    assert max(resized.size) / min(resized.size) > 200 >= max(fitted.size) / min(fitted.size)
    assert max(fitted.size) == max(resized.size) and min(fitted.size) == -(-max(resized.size) // 200)
    box = ((fitted.width - resized.width) // 2, (fitted.height - resized.height) // 2)  # centred, as ImageOps.pad puts it
    inner = fitted.crop((box[0], box[1], box[0] + resized.width, box[1] + resized.height))
    assert inner.tobytes() == resized.tobytes()  # the text survives as upstream resized it


def test_a_hairline_crop_is_read_not_refused(engine: DolphinV2Model) -> None:
    (answer,) = engine.generate([Image.new("RGB", (900, 4), "black")], PROMPTS["text"])
    assert isinstance(answer, str)


def test_the_checkpoint_picks_the_engine(tiny_model_dir: Path, tiny_v2_model_dir: Path, tmp_path: Path) -> None:
    assert isinstance(load_engine(tiny_model_dir), DolphinModel)
    assert isinstance(load_engine(tiny_v2_model_dir), DolphinV2Model)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(BackendUnavailable, match="holds a 'llama' model, not Dolphin"):
        load_engine(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(BackendUnavailable, match="no readable config.json"):
        load_engine(tmp_path)


def test_a_checkpoint_without_a_chat_template_is_one_clear_error(tiny_v2_model_dir: Path, tmp_path: Path) -> None:
    bare = shutil.copytree(tiny_v2_model_dir, tmp_path / "bare")
    (bare / "chat_template.jinja").unlink()
    config = json.loads((bare / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(BackendUnavailable, match="has no chat template"):
        DolphinV2Model(bare)
    (bare / "chat_template.json").write_text(json.dumps({"chat_template": (tiny_v2_model_dir / "chat_template.jinja").read_text()}))
    assert DolphinV2Model(bare).template  # the older file beside the tokenizer is read


class LostPage:
    """v2's real frame; a layout of crossing boxes; a whole-page answer already in Markdown."""

    WHOLE_PAGE = "# Receipt\n\n| item | price |\n|---|---|\n| tea | 2.50 |"

    def __init__(self, real: DolphinV2Model) -> None:
        self.real = real
        self.profile = real.profile
        self.prompts: list[str] = []

    def frame(self, page: Image.Image) -> tuple[Image.Image, PageGeometry]:
        return self.real.frame(page)

    def generate(self, images: Sequence[Image.Image], prompt: str) -> list[str]:
        self.prompts.append(prompt)
        if prompt == LAYOUT_PROMPT:
            return ["[10,10,150,120][para][PAIR_SEP][60,40,190,160][para][PAIR_SEP][20,30,170,200][tab]"] * len(images)
        return [self.WHOLE_PAGE] * len(images)


def test_a_lost_layout_reads_the_whole_page_as_markdown(engine: DolphinV2Model, pdf_path: Path) -> None:
    lost = LostPage(engine)
    backend = DolphinBackend(engine=lost, max_batch=2)
    doc = pdfium.PdfDocument(pdf_path)
    try:
        (page,) = backend.convert_pages(doc, [0]).values()
    finally:
        doc.close()
    assert lost.prompts == [LAYOUT_PROMPT, PROMPTS["text"]]
    assert page.extra["layout"] == "fallback" and page.extra["elements"] == 1
    assert page.markdown == LostPage.WHOLE_PAGE


def test_a_fitted_image_is_not_copied_again() -> None:
    page = fit(Image.new("RGB", (692, 896), "white"))
    assert fit(page) is page
    assert fit(Image.new("L", (692, 896), 255)).mode == "RGB"
