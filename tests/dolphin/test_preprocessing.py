"""Dolphin 1.x's own preprocessing gives the processor's pixels: exactly below the resize cap, resampling noise above."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from pdf2md.convert.dolphin.engine import pixel_values  # noqa: E402

PANGRAM = "The quick brown fox jumps over the lazy dog 0123456789"


def _text_crop(width: int, height: int, text: str = PANGRAM) -> Image.Image:
    crop = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(crop)
    for y in range(2, max(3, height - 12), 14):
        draw.text((3, y), text, fill="black", font_size=12)
    return crop


@pytest.fixture(scope="module")
def processor():  # type: ignore[no-untyped-def]
    """Dolphin's own preprocessing settings: an 896 square, no long-axis alignment."""
    return transformers.DonutImageProcessor(size={"height": 896, "width": 896}, do_align_long_axis=False)


@pytest.mark.parametrize("size", [(300, 400), (896, 896), (700, 500), (5, 5)])
def test_crops_below_the_cap_get_exactly_the_processors_pixels(processor, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    crop = _text_crop(*size)
    reference = processor(images=[crop], return_tensors="pt").pixel_values
    assert torch.allclose(_fast(processor, crop), reference, atol=1e-6)  # float32 rounding at most


@pytest.mark.parametrize("size", [(600, 80), (880, 30), (40, 300), (896, 20)])
def test_thin_crops_differ_by_resampling_noise_only(processor, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    crop = _text_crop(*size)
    reference = processor(images=[crop], return_tensors="pt").pixel_values
    fast = _fast(processor, crop)
    assert fast.shape == reference.shape == (1, 3, 896, 896)
    padding = (reference == -1).all(dim=1, keepdim=True).expand_as(reference)
    assert torch.equal((fast == -1).all(dim=1, keepdim=True).expand_as(fast), padding)  # the same place in the square
    noise = (fast - reference).abs()[~padding].mean()
    other = processor(images=[_text_crop(*size, text="Pack my box with five dozen liquor jugs")], return_tensors="pt").pixel_values
    assert noise < 0.01 and (other - reference).abs()[~padding].mean() > 10 * noise  # another text is another picture


def test_a_processor_set_up_otherwise_runs_itself(processor) -> None:  # type: ignore[no-untyped-def]
    aligning = transformers.DonutImageProcessor(size={"height": 896, "width": 896}, do_align_long_axis=True)
    crop = _text_crop(80, 600)
    assert torch.equal(_fast(aligning, crop), aligning(images=[crop], return_tensors="pt").pixel_values)
    assert not torch.equal(_fast(aligning, crop), _fast(processor, crop))  # the tall crop was turned


def _fast(processor, crop: Image.Image) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return pixel_values(processor, [crop], torch.device("cpu"), torch.float32)
