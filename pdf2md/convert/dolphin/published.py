"""The published Dolphin shapes with random weights: real-size GPU timing where no weights can be downloaded.

Dolphin 1.5: `VisionEncoderDecoderModel`, a Donut-Swin encoder at 896x896 (patch 4, embed 128, depths
[2,2,14,2], heads [4,8,16,32], window 7) and a 10-layer MBart decoder (d_model 1024, 16 heads, FFN 4096,
4096 positions, scaled embeddings, tied output) — the checkpoint shape in /work/shared/PLATFORM-NOTES.md.
Its vocabulary, 73,921, is the size that makes that shape the checkpoint's 322M parameters (321.98M).

Dolphin v2: Qwen2.5-VL-3B (`Qwen2_5_VLForConditionalGeneration`), the values of Qwen/Qwen2.5-VL-3B-Instruct's
config.json as vendored in public repositories (found with the library's code search: a copy titled
"Qwen/Qwen2.5-VL-3B-Instruct — model config", and a C++ config-parser test "Selected Json config from
Qwen2.5VL-3B"; both agree): text hidden 2048, FFN 11008, 36 layers, 16 heads, 2 KV heads, vocab 151,936,
RMS eps 1e-6, rope theta 1e6, mrope [16,24,24], 128,000 positions, tied embeddings; vision depth 32,
hidden 1280, FFN 3420, 16 heads, patch 14, merge 2, temporal patch 2, window 112, full attention at blocks
7/15/23/31, output 2048.

Token ids of the special tokens come from the small tokenizer built here (tiny.py): ids are positions in
the same 73,921 / 151,936-row embeddings, so the arithmetic per token is the published model's.
Nothing is downloaded or read from disk: weights are drawn on the target device.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from pdf2md.convert.dolphin.profiles import PROFILES
from pdf2md.convert.dolphin.tiny import dolphin_1x_config, dolphin_tokenizer, qwen_token_ids, qwen_tokenizer

GENERATIONS = ("1.5", "v2")
DOLPHIN_15_VOCAB = 73_921
DOLPHIN_15_SQUARE = 896
V2_PIXELS = (784, 2_560_000)
"""Dolphin v2's processor limits (min and max pixels), as bench/dolphin_host.py and upstream resize pages."""

QWEN25_VL_3B_TEXT: dict[str, Any] = {
    "vocab_size": 151_936,
    "hidden_size": 2048,
    "intermediate_size": 11_008,
    "num_hidden_layers": 36,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 128_000,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
}
QWEN25_VL_3B_VISION: dict[str, Any] = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 2048,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "hidden_act": "silu",
}


def dolphin_15_parts() -> tuple[Any, Any]:
    """(config, processor) of Dolphin 1.5's published shape."""
    from transformers import DonutImageProcessor, DonutProcessor, DonutSwinConfig

    tokenizer = dolphin_tokenizer("1.5")
    encoder = DonutSwinConfig(
        image_size=DOLPHIN_15_SQUARE, patch_size=4, embed_dim=128, depths=[2, 2, 14, 2], num_heads=[4, 8, 16, 32], window_size=7
    )
    config = dolphin_1x_config(
        tokenizer, encoder, vocab_size=DOLPHIN_15_VOCAB, d_model=1024, layers=10, heads=16, ffn_dim=4096,
        max_positions=4096,
    )
    images = DonutImageProcessor(size={"height": DOLPHIN_15_SQUARE, "width": DOLPHIN_15_SQUARE}, do_align_long_axis=False)
    return config, DonutProcessor(image_processor=images, tokenizer=tokenizer)


def dolphin_v2_parts() -> tuple[Any, Any, Any]:
    """(config, tokenizer, image processor) of Dolphin v2's published shape (Qwen2.5-VL-3B)."""
    from transformers import Qwen2_5_VLConfig
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = qwen_tokenizer()
    ids = qwen_token_ids(tokenizer)
    specials = {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]}
    config = Qwen2_5_VLConfig(
        text_config={**QWEN25_VL_3B_TEXT, **specials},
        vision_config=QWEN25_VL_3B_VISION,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
        **specials,  # type: ignore[arg-type]  # kept in config.json for generation; the typed signature omits them
    )
    return config, tokenizer, Qwen2VLImageProcessorPil(min_pixels=V2_PIXELS[0], max_pixels=V2_PIXELS[1])


def build_model(generation: str, device: str | torch.device, dtype: torch.dtype = torch.float32) -> Any:
    """The published shape with random weights drawn on `device` in `dtype` ('meta': shapes only, no memory)."""
    from transformers import Qwen2_5_VLForConditionalGeneration, VisionEncoderDecoderModel

    if generation == "1.5":
        config = dolphin_15_parts()[0]
        with _default_dtype(dtype), torch.device(device):
            return VisionEncoderDecoderModel(config).eval()
    if generation == "v2":
        config = dolphin_v2_parts()[0]
        config.get_text_config()._attn_implementation = "sdpa"
        with _default_dtype(dtype), torch.device(device):
            return Qwen2_5_VLForConditionalGeneration(config).eval()
    raise ValueError(f"no published shape for Dolphin {generation!r} (one of {', '.join(GENERATIONS)})")


def build_engine(generation: str, device: str | None = None, dtype: torch.dtype | None = None) -> Any:
    """A ready engine (engine.DolphinModel / engine_v2.DolphinV2Model) on the published shape with random weights.

    Precision follows the profile: fp16 for 1.5 on CUDA, bf16 for v2 where the GPU has it (fp16 otherwise), fp32 on a CPU.
    """
    from pdf2md.convert.dolphin.engine import DolphinModel
    from pdf2md.convert.dolphin.engine_v2 import DolphinV2Model
    from pdf2md.convert.dolphin.generation import pick_device

    target = pick_device(device)
    if dtype is None:
        dtype = torch.float32 if target.type != "cuda" else _cuda_dtype(PROFILES[generation].half_precision, target)
    model = build_model(generation, target, dtype)
    if generation == "1.5":
        processor = dolphin_15_parts()[1]
        return DolphinModel.from_parts(model, processor, PROFILES["1.5"], str(target))
    _config, tokenizer, images = dolphin_v2_parts()
    return DolphinV2Model.from_parts(model, tokenizer, tokenizer.chat_template, images, str(target))


def parameter_count(generation: str) -> int:
    """Parameters of the published shape, counted on the meta device (nothing is allocated)."""
    model = build_model(generation, "meta")
    return sum(p.numel() for p in model.parameters())


def _cuda_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "bf16" and torch.cuda.get_device_capability(device) >= (8, 0):
        return torch.bfloat16
    return torch.float16


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Draw the weights directly in `dtype` (a 3.75B model drawn in fp32 first would need twice the memory)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
