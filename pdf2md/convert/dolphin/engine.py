"""Dolphin 1.x inference (Swin encoder, MBart decoder): one batched `generate` per prompt, offline only."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AutoProcessor, VisionEncoderDecoderModel

from pdf2md.convert.dolphin.generation import NonFiniteGuard, RepetitionStop, answers_or_none, pick_device, rerun_broken_in_fp32
from pdf2md.convert.dolphin.layout import PageGeometry
from pdf2md.convert.dolphin.profiles import Profile, profile_for
from pdf2md.convert.dolphin.prompts import ANSWER_TOKEN, decoder_prompt
from pdf2md.convert.dolphin.render import pad_to_square
from pdf2md.convert.dolphin.repetition import loop_rule

log = logging.getLogger(__name__)

MAX_LENGTH = 4096
MAX_UPSCALE = 8
"""The Donut processor's first resize is capped at this multiple of the final size (see pixel_values): crops
up to 8 times longer than wide get upstream's exact pixels, thinner ones (text lines) resampling noise."""
THUMBNAIL_REDUCING_GAP = 2.0
"""The reducing gap of the 4.47 processor's thumbnail (a box reduction first, then bicubic)."""
ATTENTION = {"encoder": "eager", "decoder": "sdpa"}
"""DonutSwin has no SDPA; MBart's decoder does."""


class DolphinModel:
    """Loads the checkpoint once (local files only: never the hub) and answers one prompt over a batch of images.

    fp16 on CUDA (as upstream runs it), fp32 on a CPU; rows that overflow fp16 are decoded again in fp32.
    The profile (1.0 or 1.5, read from the checkpoint) sets the repetition penalty and the prompts.
    """

    def __init__(self, model_dir: Path, device: str | None = None, dtype: torch.dtype | None = None, profile: Profile | None = None) -> None:
        profile = profile or profile_for(model_dir)
        target = pick_device(device)
        dtype = dtype or (torch.float16 if target.type == "cuda" else torch.float32)
        processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        model = VisionEncoderDecoderModel.from_pretrained(model_dir, local_files_only=True, dtype=dtype, attn_implementation=ATTENTION)
        self._attach(model, processor, profile, target, dtype)
        log.info("Dolphin %s loaded from %s on %s (%s)", profile.name, model_dir, target, dtype)

    @classmethod
    def from_parts(cls, model: VisionEncoderDecoderModel, processor: Any, profile: Profile, device: str | None = None) -> DolphinModel:
        """An engine on a model built in memory (the GPU benchmark's published shapes, random weights): no files read."""
        engine = cls.__new__(cls)
        engine._attach(model, processor, profile, pick_device(device), next(model.parameters()).dtype)
        return engine

    def _attach(self, model: VisionEncoderDecoderModel, processor: Any, profile: Profile, device: torch.device, dtype: torch.dtype) -> None:
        self.profile = profile
        self.device = device
        self.dtype = dtype
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.model = model.to(device).eval()  # type: ignore[arg-type]  # transformers wraps to(); mypy loses torch's signature
        self._banned = [[self.tokenizer.unk_token_id], self.tokenizer.convert_tokens_to_ids([ANSWER_TOKEN])]
        positions = getattr(self.model.config.decoder, "max_position_embeddings", MAX_LENGTH)
        self.max_length = min(MAX_LENGTH, positions)

    def frame(self, page: Image.Image) -> tuple[Image.Image, PageGeometry]:
        return pad_to_square(page)

    @torch.inference_mode()
    def generate(self, images: Sequence[Image.Image], prompt: str) -> list[str | None]:
        """The answers to one prompt for each image, prompt and special tokens removed (None: numbers broke)."""
        answers = self._generate(images, prompt)
        return rerun_broken_in_fp32(self.model, self.dtype, images, answers, lambda again: self._generate(again, prompt))

    def _generate(self, images: Sequence[Image.Image], prompt: str) -> list[str | None]:
        pixels = pixel_values(self.processor.image_processor, images, self.device, self.dtype)
        ids = self.tokenizer([decoder_prompt(prompt)] * len(images), add_special_tokens=False, return_tensors="pt")
        prompt_ids = ids.input_ids.to(self.device)
        guard = NonFiniteGuard(self.tokenizer.eos_token_id)
        out = self.model.generate(
            pixel_values=pixels,
            decoder_input_ids=prompt_ids,
            decoder_attention_mask=ids.attention_mask.to(self.device),
            max_length=self.max_length,
            min_length=1,
            do_sample=False,
            num_beams=1,
            repetition_penalty=self.profile.repetition_penalty,
            use_cache=True,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            bad_words_ids=self._banned,
            logits_processor=[guard],
            stopping_criteria=[RepetitionStop(prompt_ids.shape[1], loop_rule(prompt), self.tokenizer.decode)],
        )
        return answers_or_none([self._answer(text) for text in self.tokenizer.batch_decode(out, skip_special_tokens=False)], guard)

    def _answer(self, decoded: str) -> str:
        """What follows the answer token, without pad/eos/bos (decoded, not sliced by token counts)."""
        marker = ANSWER_TOKEN.strip()
        _, found, answer = decoded.partition(marker)
        text = answer if found else decoded
        for token in (marker, self.tokenizer.pad_token, self.tokenizer.eos_token, self.tokenizer.bos_token):
            if token:
                text = text.replace(token, "")
        return text.strip()


def pixel_values(image_processor: Any, images: Sequence[Image.Image], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The pixels upstream's processor gives (transformers 4.47, which upstream pins), on `device` in `dtype`.

    That processor (huggingface/transformers 01fc2ff src/transformers/models/donut/image_processing_donut.py)
    resizes the short side to 896 with the configured filter, then `thumbnail`s into the square with bicubic
    resampling and PIL's reducing_gap=2.0 whatever the configured filter, then centres the result on black.
    The installed transformers 5 thumbnails with the configured filter and no reducing gap: its pixels are
    not the ones Dolphin was trained on, so it is not called for Dolphin's own settings.
    The first resize draws a text-line crop some 25,000 px wide before shrinking it into the square: 0.4-1 s
    a crop on a CPU. It is capped at MAX_UPSCALE times the final size (README.md's Dolphin differences: up to
    the cap the pixels are upstream's, past it they differ by resampling noise, tests/dolphin/test_preprocessing.py).
    The crops cross to the device as bytes and are padded and normalised there: a page's 20 crops are 48 MB
    of float32, a quarter of a second of CPU work. A processor configured otherwise than this mirrors
    (long-axis alignment, no padding, ...) runs itself.
    """
    if not _mirrorable(image_processor):
        pixels = image_processor(images=list(images), return_tensors="pt").pixel_values
        return pixels.to(device, dtype)
    box = (image_processor.size["width"], image_processor.size["height"])
    batch = torch.zeros((len(images), 3, box[1], box[0]), dtype=torch.uint8)
    resample = image_processor.resample
    for i, crop in enumerate(_RESIZERS.map(lambda image: _resized(image, box, resample), images)):
        left, top = (box[0] - crop.width) // 2, (box[1] - crop.height) // 2
        batch[i, :, top:top + crop.height, left:left + crop.width] = torch.from_numpy(np.array(crop.convert("RGB"))).permute(2, 0, 1)
    mean = torch.tensor(image_processor.image_mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(image_processor.image_std, device=device).view(1, 3, 1, 1)
    scaled = batch.to(device).float() * image_processor.rescale_factor
    return ((scaled - mean) / std).to(dtype)


_RESIZERS = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="dolphin-resize")
"""PIL resizes without the GIL: a g4dn.xlarge's four vCPUs share a page's crops."""


def _resized(image: Image.Image, box: tuple[int, int], resample: int) -> Image.Image:
    """The processor's resize (the configured filter) then its thumbnail (bicubic, reducing_gap 2), the first
    capped at MAX_UPSCALE times the final size."""
    image = image.convert("RGB")
    first = _first_resize(image.size, min(box))
    final = _thumbnail(first, box)
    if first[0] * first[1] > (MAX_UPSCALE * final[0]) * (MAX_UPSCALE * final[1]):
        first = (MAX_UPSCALE * final[0], MAX_UPSCALE * final[1])  # its thumbnail is still `final`
    if image.size != first:
        image = image.resize(first, resample=resample)
    if image.size != final:
        image = image.resize(final, resample=Image.Resampling.BICUBIC, reducing_gap=THUMBNAIL_REDUCING_GAP)
    return image


_MIRRORED = {"do_resize": True, "do_thumbnail": True, "do_pad": True, "do_rescale": True, "do_normalize": True, "do_align_long_axis": False}
"""The Donut processor settings pixel_values reproduces (Dolphin's own)."""


def _mirrorable(image_processor: Any) -> bool:
    size = image_processor.size
    return (
        all(getattr(image_processor, name, None) == value for name, value in _MIRRORED.items())
        and bool(size["width"]) and bool(size["height"])
    )


def _first_resize(size: tuple[int, int], short_side: int) -> tuple[int, int]:
    """The processor's resize: short side to `short_side`, long side truncated (as transformers computes it)."""
    width, height = size
    if width <= height:
        return short_side, int(short_side * height / width)
    return int(short_side * width / height), short_side


def _thumbnail(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The processor's thumbnail: shrink into the box, the shorter side truncated (as transformers computes it)."""
    width, height = min(size[0], box[0]), min(size[1], box[1])
    if size == (width, height):
        return size
    if size[1] > size[0]:
        return int(size[0] * height / size[1]), height
    if size[0] > size[1]:
        return width, int(size[1] * width / size[0])
    return width, height
