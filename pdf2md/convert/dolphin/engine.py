"""Dolphin 1.x inference: one batched `generate` per prompt, fp16 on CUDA, fp32 on CPU, offline only."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import AutoProcessor, StoppingCriteria, VisionEncoderDecoderModel

from pdf2md.convert.dolphin.prompts import ANSWER_TOKEN, decoder_prompt
from pdf2md.convert.dolphin.repetition import MAX_UNIT, repeated_tail

log = logging.getLogger(__name__)

MAX_LENGTH = 4096
REPETITION_PENALTY = 1.1
STOP_COPIES = 8
"""A row whose last tokens repeat a unit this many times (over STOP_SPAN_TOKENS) stops decoding."""
STOP_SPAN_TOKENS = 128
"""Long enough that a legitimately repetitive answer (a row of empty table cells) is not stopped."""
ATTENTION = {"encoder": "eager", "decoder": "sdpa"}
"""DonutSwin has no SDPA; MBart's decoder does."""


class RepetitionStop(StoppingCriteria):
    """A stopping criterion that ends each row caught in a token loop (saves up to ~4k wasted steps)."""

    def __init__(self, prompt_len: int) -> None:
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        window = STOP_COPIES * MAX_UNIT
        tails = input_ids[:, max(self.prompt_len, input_ids.shape[1] - window):].tolist()
        done = [repeated_tail(row, STOP_COPIES, STOP_SPAN_TOKENS) is not None for row in tails]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class DolphinModel:
    """Loads the checkpoint once (local files only: never the hub) and answers one prompt over a batch of images."""

    def __init__(self, model_dir: Path, device: str | None = None) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
        self.tokenizer = self.processor.tokenizer
        model = VisionEncoderDecoderModel.from_pretrained(
            model_dir, local_files_only=True, dtype=self.dtype, attn_implementation=ATTENTION
        )
        self.model = model.to(self.device).eval()
        self._banned = [[self.tokenizer.unk_token_id], self.tokenizer.convert_tokens_to_ids([ANSWER_TOKEN])]
        positions = getattr(self.model.config.decoder, "max_position_embeddings", MAX_LENGTH)
        self.max_length = min(MAX_LENGTH, positions)
        log.info("Dolphin loaded from %s on %s (%s)", model_dir, self.device, self.dtype)

    @torch.inference_mode()
    def generate(self, images: Sequence[Image.Image], prompt: str) -> list[str]:
        """The answers to one prompt for each image, prompt and special tokens removed."""
        pixels = self.processor(images=list(images), return_tensors="pt").pixel_values
        pixels = pixels.to(self.device, self.dtype)
        ids = self.tokenizer([decoder_prompt(prompt)] * len(images), add_special_tokens=False, return_tensors="pt")
        prompt_ids = ids.input_ids.to(self.device)
        out = self.model.generate(
            pixel_values=pixels,
            decoder_input_ids=prompt_ids,
            decoder_attention_mask=ids.attention_mask.to(self.device),
            max_length=self.max_length,
            min_length=1,
            do_sample=False,
            num_beams=1,
            repetition_penalty=REPETITION_PENALTY,
            use_cache=True,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            bad_words_ids=self._banned,
            stopping_criteria=[RepetitionStop(prompt_ids.shape[1])],
        )
        return [self._answer(text) for text in self.tokenizer.batch_decode(out, skip_special_tokens=False)]

    def _answer(self, decoded: str) -> str:
        """What follows the answer token, without pad/eos/bos (decoded, not sliced by token counts)."""
        marker = ANSWER_TOKEN.strip()
        _, found, answer = decoded.partition(marker)
        text = answer if found else decoded
        for token in (marker, self.tokenizer.pad_token, self.tokenizer.eos_token, self.tokenizer.bos_token):
            if token:
                text = text.replace(token, "")
        return text.strip()


def free_gpu_bytes() -> int | None:
    """Free accelerator memory, or None on a CPU."""
    if not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info()
    return int(free)


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError)


def release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> float | None:
    """Peak GPU memory allocated since the last reset, or None on a CPU."""
    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)
