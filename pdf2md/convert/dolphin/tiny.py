"""A tiny randomly initialised Dolphin 1.x of the real architecture: proves the code path without weights.

Used by the CPU tests and by `bench/dolphin_gpu.py --tiny`; it writes a complete model dir in a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pdf2md.convert.dolphin.prompts import ANSWER_TOKEN, PROMPTS

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

IMAGE_SIZE = 224
"""Smallest square the Swin stages divide cleanly (patch 4, window 7, 3 merges)."""

_CORPUS = [
    *PROMPTS.values(),
    "[0.10,0.05,0.90,0.12] title [0.10,0.15,0.90,0.40] para [0.1,0.5,0.9,0.8] tab",
    "<table><tr><td>a</td><td>b</td></tr></table> $x^2 + y^2 = z^2$ def main(): return 0",
    "The quick brown fox jumps over the lazy dog. 0123456789 ,.;:!?()[]{}<>/\\-_=+*&^%$#@'\"",
]
_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def build_tiny_model(out_dir: Path, seed: int = 0, max_positions: int = 64) -> Path:
    """Save a tiny VisionEncoderDecoderModel, tokenizer and DonutProcessor into out_dir."""
    import torch
    from transformers import (
        DonutImageProcessor,
        DonutProcessor,
        DonutSwinConfig,
        MBartConfig,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
    )

    torch.manual_seed(seed)
    tokenizer = _build_tokenizer()
    encoder = DonutSwinConfig(
        image_size=IMAGE_SIZE, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=7
    )
    decoder = MBartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=max_positions,
        scale_embedding=True,
        is_decoder=True,
        add_cross_attention=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.pad_token_id = tokenizer.pad_token_id
    config.decoder_start_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    model = VisionEncoderDecoderModel(config=config)
    image_processor = DonutImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, do_align_long_axis=False)
    processor = DonutProcessor(image_processor=image_processor, tokenizer=tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def _build_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on a few lines, wrapped like Dolphin's (with the answer token)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(_CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": [ANSWER_TOKEN]})
    return tokenizer
