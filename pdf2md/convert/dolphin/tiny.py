"""Tiny randomly initialised Dolphins of the real architectures (1.x and v2): prove the code path without weights.

Used by the CPU tests and by `bench/dolphin_gpu.py --tiny`; each writes a complete model dir in a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pdf2md.convert.dolphin.profiles import LAYOUT_1_5_TOKENS
from pdf2md.convert.dolphin.prompts import ANSWER_TOKEN, PROMPTS

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

IMAGE_SIZE = 224
"""Smallest square the Swin stages divide cleanly (patch 4, window 7, 3 merges)."""

_CORPUS = [
    *PROMPTS.values(),
    "[0.10,0.05,0.90,0.12] title [0.10,0.15,0.90,0.40] para [0.1,0.5,0.9,0.8] tab",
    "<table><tr><td>a</td><td>b</td></tr></table> $x^2 + y^2 = z^2$ def main(): return 0",
    "The quick brown fox jumps over the lazy dog. 0123456789 ,.;:!?()[]{}<>/\\-_=+*&^%$#@'\"",
    "[210,136,910,172][sec_0][PAIR_SEP][202,217,921,325][para][author][RELATION_SEP] system user assistant",
]
_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
_QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
QWEN_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen2.5-VL's chat format: a default system turn, the image as vision tokens, then the prompt."""
V2_PIXELS = (28 * 28, 28 * 28 * 64)
"""The tiny v2 sees at most 64 merged patches a picture, so its prompts stay short."""


def dolphin_1x_config(
    tokenizer: PreTrainedTokenizerFast, encoder: Any, *, vocab_size: int, d_model: int, layers: int, heads: int,
    ffn_dim: int, max_positions: int,
) -> Any:
    """A Dolphin 1.x VisionEncoderDecoderConfig: `encoder` (DonutSwin) + an MBart decoder of this size.

    MBart sizes its KV cache from encoder_layers, so that equals the decoder's (PLATFORM-NOTES pitfall);
    from_encoder_decoder_configs makes the decoder a cross-attending decoder.
    """
    from transformers import MBartConfig, VisionEncoderDecoderConfig

    decoder = MBartConfig(
        vocab_size=vocab_size,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim,
        max_position_embeddings=max_positions,
        scale_embedding=True,
        is_decoder=True,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.pad_token_id = tokenizer.pad_token_id
    config.decoder_start_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    return config


def build_tiny_model(out_dir: Path, seed: int = 0, max_positions: int = 64, generation: str = "1.0") -> Path:
    """Save a tiny VisionEncoderDecoderModel, tokenizer and DonutProcessor into out_dir.

    generation '1.5' gives the tokenizer 1.5's layout separators as tokens, which is how the profile
    tells a 1.5 checkpoint from a 1.0 one (profiles.profile_for).
    """
    import torch
    from transformers import (
        DonutImageProcessor,
        DonutProcessor,
        DonutSwinConfig,
        VisionEncoderDecoderModel,
    )

    torch.manual_seed(seed)
    tokenizer = dolphin_tokenizer(generation)
    encoder = DonutSwinConfig(
        image_size=IMAGE_SIZE, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=7
    )
    config = dolphin_1x_config(
        tokenizer, encoder, vocab_size=len(tokenizer), d_model=32, layers=2, heads=2, ffn_dim=64, max_positions=max_positions
    )
    model = VisionEncoderDecoderModel(config=config)
    image_processor = DonutImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, do_align_long_axis=False)
    processor = DonutProcessor(image_processor=image_processor, tokenizer=tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def build_tiny_v2_model(out_dir: Path, seed: int = 0, max_positions: int = 256) -> Path:
    """Save a tiny Qwen2_5_VLForConditionalGeneration, a tokenizer with Qwen's chat template, and its image processor."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    torch.manual_seed(seed)
    tokenizer = qwen_tokenizer()
    ids = qwen_token_ids(tokenizer)
    specials = {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]}
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": max_positions,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
        **specials,
    }
    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": 32,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 56,
        "fullatt_block_indexes": [1],
    }
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        **specials,  # type: ignore[arg-type]  # kept in config.json for generation; the typed signature omits them
    )
    model = Qwen2_5_VLForConditionalGeneration(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    Qwen2VLImageProcessorPil(min_pixels=V2_PIXELS[0], max_pixels=V2_PIXELS[1]).save_pretrained(out_dir)
    return out_dir


def dolphin_tokenizer(generation: str = "1.0") -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on a few lines, wrapped like Dolphin's (with the answer token; 1.5's separators on 1.5)."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_bpe(_SPECIALS, unk="<unk>"), bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [ANSWER_TOKEN]})
    if generation == "1.5":
        tokenizer.add_tokens(list(LAYOUT_1_5_TOKENS))
    return tokenizer


def qwen_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE with Qwen's special tokens and chat template."""
    from transformers import PreTrainedTokenizerFast

    bpe = _train_bpe(_QWEN_SPECIALS, unk=None)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=QWEN_TEMPLATE)


def qwen_token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """Qwen's special tokens -> their ids in this tokenizer (a model config must name the same ids)."""
    return {token: cast(int, tokenizer.convert_tokens_to_ids(token)) for token in _QWEN_SPECIALS}


def _train_bpe(specials: list[str], unk: str | None) -> Tokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token=unk))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_CORPUS, trainer=trainer)
    return bpe
