"""Dolphin 1.x's crops and pages get the pixels upstream's processor gives them (transformers 4.47, which
bytedance/Dolphin pins in requirements.txt 4f13c09), not the installed transformers 5's.

The golden pixels come from upstream's algorithm written out here from its code
(huggingface/transformers 01fc2ff src/transformers/models/donut/image_processing_donut.py `preprocess`):
the short side resized to 896 with the configured filter (`resize`), a `thumbnail` into the 896 square with
bicubic resampling and reducing_gap=2.0 whatever the configured filter, and the result centred on black
(`pad_image`: delta // 2 before, the rest after).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from pdf2md.convert.dolphin.engine import pixel_values  # noqa: E402
from pdf2md.convert.dolphin.layout import PageGeometry  # noqa: E402
from pdf2md.convert.dolphin.render import RenderedPage, pad_to_square  # noqa: E402

PANGRAM = "The quick brown fox jumps over the lazy dog 0123456789"
SIDE = 896


def _text_crop(width: int, height: int, text: str = PANGRAM) -> Image.Image:
    crop = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(crop)
    for y in range(2, max(3, height - 12), 14):
        draw.text((3, y), text, fill="black", font_size=12)
    return crop


def upstream_pixels(image: Image.Image, resample: int) -> np.ndarray:
    """Upstream's processor on one image, as grey levels (H, W, 3) before rescaling and normalising."""
    image = image.convert("RGB")
    width, height = image.size
    size = (SIDE, int(SIDE * height / width)) if width <= height else (int(SIDE * width / height), SIDE)
    image = image.resize(size, resample=resample)
    in_w, in_h = image.size
    out_w, out_h = min(in_w, SIDE), min(in_h, SIDE)
    if (out_w, out_h) != (in_w, in_h):
        if in_h > in_w:
            out_w = int(in_w * out_h / in_h)
        elif in_w > in_h:
            out_h = int(in_h * out_w / in_w)
        image = image.resize((out_w, out_h), resample=Image.Resampling.BICUBIC, reducing_gap=2.0)
    square = np.zeros((SIDE, SIDE, 3), dtype=np.uint8)
    top, left = (SIDE - image.height) // 2, (SIDE - image.width) // 2
    square[top:top + image.height, left:left + image.width] = np.asarray(image)
    return square


@pytest.fixture(scope="module")
def processor():  # type: ignore[no-untyped-def]
    """Dolphin's own preprocessing settings: an 896 square, no long-axis alignment, Donut's bilinear resize."""
    return transformers.DonutImageProcessor(size={"height": SIDE, "width": SIDE}, do_align_long_axis=False)


def _grey_levels(processor, pixels: torch.Tensor) -> np.ndarray:  # type: ignore[no-untyped-def]
    mean = torch.tensor(processor.image_mean).view(3, 1, 1)
    std = torch.tensor(processor.image_std).view(3, 1, 1)
    return ((pixels[0] * std + mean) / processor.rescale_factor).round().permute(1, 2, 0).numpy()


@pytest.mark.parametrize("size", [(300, 400), (700, 500), (520, 180), (600, 80), (40, 300), (896, 896), (5, 5)])
def test_crops_get_upstreams_pixels(processor, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    crop = _text_crop(*size)
    ours = _grey_levels(processor, pixel_values(processor, [crop], torch.device("cpu"), torch.float32))
    golden = upstream_pixels(crop, processor.resample).astype(np.float64)
    assert ours.shape == golden.shape == (SIDE, SIDE, 3)
    assert np.abs(ours - golden).max() <= 1  # same size, same padding, the same picture


def test_the_installed_processor_is_not_upstreams(processor) -> None:  # type: ignore[no-untyped-def]
    """transformers 5 thumbnails with the configured (bilinear) filter and no reducing gap: what pdf2md fed
    Dolphin before, many grey levels away from what it was trained on."""
    crop = _text_crop(520, 180)
    installed = _grey_levels(processor, processor(images=[crop], return_tensors="pt").pixel_values)
    assert np.abs(installed - upstream_pixels(crop, processor.resample)).max() > 8


@pytest.mark.parametrize("size", [(880, 30), (896, 20), (20, 600)])
def test_thin_crops_past_the_resize_cap_differ_by_resampling_noise_only(processor, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    """A documented difference (README.md): the first resize of a crop more than 8 times longer than wide is
    capped at 8 times its final size (0.4-1 s a crop otherwise); the padding is exact, the picture the same
    but for noise (measured: at most 5 grey levels, 0.005 on average)."""
    crop = _text_crop(*size)
    ours = _grey_levels(processor, pixel_values(processor, [crop], torch.device("cpu"), torch.float32))
    golden = upstream_pixels(crop, processor.resample).astype(np.float64)
    padding = (golden == 0).all(axis=2) & (upstream_pixels(Image.new("RGB", size, "white"), processor.resample) == 0).all(axis=2)
    assert ((ours == 0).all(axis=2)[padding]).all()
    noise = np.abs(ours - golden)[~padding].mean()
    other = upstream_pixels(_text_crop(*size, text="Pack my box with five dozen liquor jugs"), processor.resample)
    assert np.abs(ours - golden).max() <= 8 and noise < 0.5
    assert np.abs(other - golden)[~padding].mean() > 5 * noise  # another text is another picture


def test_the_layout_stage_reads_the_page_which_the_processor_resizes_then_pads(processor) -> None:  # type: ignore[no-untyped-def]
    """Upstream asks for the layout of the page as rendered (bytedance/Dolphin 4c09bb3 demo_page_hf.py and
    05f0df1 demo_page.py `process_single_image`); only the crops come from the padded square (`prepare_image`)."""
    page = _text_crop(692, 896)
    square, geometry = pad_to_square(page)
    rendered = RenderedPage(0, square, geometry, 0.0)
    assert rendered.layout_image.size == (692, 896) and rendered.image.size == (SIDE, SIDE)
    ours = _grey_levels(processor, pixel_values(processor, [rendered.layout_image], torch.device("cpu"), torch.float32))
    golden = upstream_pixels(page, processor.resample)
    assert np.abs(ours - golden).max() <= 1
    # resized (to 896 x 1160, then back into the square) and then padded: 692 px wide, resampled twice
    columns = np.nonzero(golden.any(axis=(0, 2)))[0]
    assert (columns[0], columns[-1]) == (102, 102 + 692 - 1)
    padded_first = _grey_levels(processor, pixel_values(processor, [square], torch.device("cpu"), torch.float32))
    assert np.abs(padded_first - golden).max() > 8  # what pdf2md fed the layout stage before


def test_v2_pages_are_read_as_they_are() -> None:
    page = RenderedPage(0, Image.new("RGB", (692, 896), "white"), PageGeometry.resized(692, 896, (700, 896)), 0.0)
    assert page.layout_image is page.image


def test_a_processor_set_up_otherwise_runs_itself(processor) -> None:  # type: ignore[no-untyped-def]
    aligning = transformers.DonutImageProcessor(size={"height": SIDE, "width": SIDE}, do_align_long_axis=True)
    crop = _text_crop(80, 600)
    assert torch.equal(_fast(aligning, crop), aligning(images=[crop], return_tensors="pt").pixel_values)
    assert not torch.equal(_fast(aligning, crop), _fast(processor, crop))  # the tall crop was turned


def _fast(processor, crop: Image.Image) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return pixel_values(processor, [crop], torch.device("cpu"), torch.float32)
