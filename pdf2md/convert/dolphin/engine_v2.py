"""Dolphin v2 inference (Qwen2.5-VL): the checkpoint's chat template, left-padded batches, offline only.

Inputs are built from the tokenizer and the image processor rather than the combined processor class,
which in transformers 5 also demands a video processor (and torchvision) that page images never use.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageOps
from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

from pdf2md.convert.backends import BackendUnavailable
from pdf2md.convert.dolphin.generation import NonFiniteGuard, RepetitionStop, answers_or_none, pick_device, rerun_broken_in_fp32
from pdf2md.convert.dolphin.layout import PageGeometry
from pdf2md.convert.dolphin.profiles import PROFILES, Profile
from pdf2md.convert.dolphin.repetition import loop_rule

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 4096
MAX_SIDE = 1600
MIN_SIDE = 28
"""Upstream's `resize_img` (bytedance/Dolphin 5270fee utils/utils.py): the long side shrunk to 1600 px, then
the short side grown to 28 px (the long side then may pass 1600: a thin crop is not capped)."""
MAX_RATIO = 200
"""The Qwen2.5-VL processor (and qwen_vl_utils) refuse a longer-to-shorter side ratio above this; upstream then
raises and loses the whole document. A crop that thin is padded with white up to this ratio instead."""
TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


class DolphinV2Model:
    """Loads the checkpoint once and answers one prompt over a batch of images (page or element crops).

    bf16 (as released and as upstream runs it) where the GPU has it; on a T4 (no bf16) fp16, with each row
    that overflows fp16 decoded again in fp32 (generation.rerun_broken_in_fp32); fp32 on a CPU.
    """

    def __init__(self, model_dir: Path, device: str | None = None, dtype: torch.dtype | None = None, profile: Profile = PROFILES["v2"]) -> None:
        target = pick_device(device)
        dtype = dtype or _dtype_for(target)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        template = tokenizer.chat_template or _template_file(model_dir)
        if not template:
            raise BackendUnavailable(f"Dolphin v2 model dir {model_dir} has no chat template")
        images = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, local_files_only=True, dtype=dtype, attn_implementation="sdpa")
        self._attach(model, tokenizer, template, images, profile, target, dtype)
        log.info("Dolphin v2 loaded from %s on %s (%s)", model_dir, target, dtype)

    @classmethod
    def from_parts(
        cls, model: Qwen2_5_VLForConditionalGeneration, tokenizer: Any, template: str, images: Any, device: str | None = None
    ) -> DolphinV2Model:
        """An engine on a model built in memory (the GPU benchmark's published shapes, random weights): no files read."""
        engine = cls.__new__(cls)
        engine._attach(model, tokenizer, template, images, PROFILES["v2"], pick_device(device), next(model.parameters()).dtype)
        return engine

    def _attach(
        self, model: Any, tokenizer: Any, template: str, images: Any, profile: Profile, device: torch.device, dtype: torch.dtype
    ) -> None:
        self.profile = profile
        self.device = device
        self.dtype = dtype
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        self.template = template
        self.images = images
        self.model = model.to(device).eval()
        self.image_token = self.tokenizer.convert_ids_to_tokens(self.model.config.image_token_id)
        self.merge = self.images.merge_size
        size = self.images.size
        self.pixels = (size["shortest_edge"], size["longest_edge"])
        self.positions = self.model.config.get_text_config().max_position_embeddings

    def frame(self, page: Image.Image) -> tuple[Image.Image, PageGeometry]:
        """The page as the model sees it, and the grid the processor resizes it to (the layout's coordinates)."""
        page = fit(page)
        height, width = smart_resize(
            page.height, page.width, factor=self.images.patch_size * self.merge, min_pixels=self.pixels[0], max_pixels=self.pixels[1]
        )
        return page, PageGeometry.resized(page.width, page.height, (width, height))

    @torch.inference_mode()
    def generate(self, images: Sequence[Image.Image], prompt: str) -> list[str | None]:
        """The answers to one prompt for each image, prompt and special tokens removed (None: numbers broke)."""
        answers = self._generate(images, prompt)
        return rerun_broken_in_fp32(self.model, self.dtype, images, answers, lambda again: self._generate(again, prompt))

    def _generate(self, images: Sequence[Image.Image], prompt: str) -> list[str | None]:
        vision = self.images(images=[fit(image) for image in images], return_tensors="pt")
        grids = vision["image_grid_thw"]
        chat = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}],
            chat_template=self.template,
            tokenize=False,
            add_generation_prompt=True,
        )
        texts = [chat.replace(self.image_token, self.image_token * (int(g.prod()) // self.merge**2), 1) for g in grids]
        enc = self.tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt").to(self.device)
        prompt_len = enc.input_ids.shape[1]
        guard = NonFiniteGuard(self.tokenizer.eos_token_id)
        out = self.model.generate(
            input_ids=enc.input_ids,
            attention_mask=enc.attention_mask,
            pixel_values=vision["pixel_values"].to(self.device, self.dtype),
            image_grid_thw=grids.to(self.device),
            max_new_tokens=max(1, min(MAX_NEW_TOKENS, self.positions - prompt_len)),
            do_sample=False,
            num_beams=1,
            use_cache=True,
            pad_token_id=self.tokenizer.pad_token_id,
            logits_processor=[guard],
            stopping_criteria=[RepetitionStop(prompt_len, loop_rule(prompt), self.tokenizer.decode)],
        )
        answers = self.tokenizer.batch_decode(out[:, prompt_len:], skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return answers_or_none([answer.strip() for answer in answers], guard)


def fit(image: Image.Image) -> Image.Image:
    """Upstream's `resize_img`, then white padding where the result is thinner than the processor accepts.

    An image that already fits comes back as it is: a framed page is fitted again by generate at no cost.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    if max(width, height) > MAX_SIDE:
        scale = MAX_SIDE / max(width, height)
        image = image.resize((MAX_SIDE, int(height * scale)) if width > height else (int(width * scale), MAX_SIDE))
        width, height = image.size
    if min(width, height) < MIN_SIDE:
        image = image.resize((int(width * (MIN_SIDE / height)), MIN_SIDE) if width >= height else (MIN_SIDE, int(height * (MIN_SIDE / width))))
    short = -(-max(image.size) // MAX_RATIO)
    if min(image.size) < short:
        target = (image.width, short) if image.width >= image.height else (short, image.height)
        image = ImageOps.pad(image, target, color="white")
    return image


def _dtype_for(device: torch.device) -> torch.dtype:
    """bf16 only where the GPU computes it natively (Ampere and later); torch would emulate it on a T4."""
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16


def _template_file(model_dir: Path) -> str | None:
    """Older checkpoints keep the chat template beside the tokenizer rather than in its config."""
    for name in TEMPLATE_FILES:
        path = model_dir / name
        if path.is_file():
            text = path.read_text()
            return json.loads(text)["chat_template"] if name.endswith(".json") else text
    return None
