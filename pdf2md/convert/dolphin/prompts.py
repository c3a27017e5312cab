"""Dolphin's prompts (all generations): one page prompt for the layout, one per element kind, as upstream trained them."""

from __future__ import annotations

LAYOUT_PROMPT = "Parse the reading order of this document."
ANSWER_TOKEN = " <Answer/>"
"""The special token that ends every 1.x prompt; the answer follows it (v2 uses a chat template)."""

PROMPTS: dict[str, str] = {
    "text": "Read text in the image.",
    "table": "Parse the table in the image.",
    "formula": "Read formula in the image.",
    "code": "Read code in the image.",
}
"""Element kind -> prompt. Crops are batched per kind so a batch shares one prompt and needs no padding."""


def decoder_prompt(prompt: str) -> str:
    """The decoder input as Dolphin was trained: BOS, the prompt, the answer token (no other specials)."""
    return f"<s>{prompt}{ANSWER_TOKEN}"
