"""One explicit profile per Dolphin generation (1.0, 1.5, v2): the rules upstream's own code applies to it.

The generation comes from the checkpoint (or an explicit override), never from the numbers in one answer.
Each rule names the upstream code it follows; README.md's Dolphin section lists where pdf2md differs on purpose.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from pdf2md.convert.backends import BackendUnavailable
from pdf2md.convert.dolphin.model_dir import checkpoint_type
from pdf2md.convert.dolphin.prompts import PROMPTS

log = logging.getLogger(__name__)

ENV_GENERATION = "PDF2MD_DOLPHIN_GENERATION"
"""Overrides the generation read from the checkpoint: '1.0', '1.5' or 'v2'."""
CONFIG_FIELD = "dolphin_generation"
"""The same override as a field of the model dir's config.json (travels with an S3-synced model)."""
LAYOUT_1_5_TOKENS = ("[PAIR_SEP]", "[RELATION_SEP]")
"""The separators of 1.5's layout format (`[x1,y1,x2,y2][label][PAIR_SEP]...`); 1.0's tokenizer predates them."""


@dataclass(frozen=True)
class Profile:
    """How one generation is run and how its layout answer is read.

    coordinates: 'fraction' (0..1 of the padded square, truncated), 'square' (pixels of the 896 square,
    rounded, right/bottom edge +1) or 'grid' (pixels of the grid the processor resized the page to, truncated).
    """

    name: str
    coordinates: str
    entry_format: str
    """'label-after' (`[x1,y1,x2,y2] label`, 1.0) or 'bracketed' (`[x1,y1,x2,y2][label][tags]` split on separators)."""
    distorted_page: bool
    """An answer not bracketed as a whole, or with too many boxes overlapping, is read as the whole page."""
    edge_adjustment: bool
    """Widen each box edge (up to 15 px) until it stops cutting text."""
    trim_previous: bool
    """A box overlapping the previous one starts below it; a nested box shrinks away."""
    repetition_penalty: float | None
    prompts: Mapping[str, str]
    """Element kind (markdown.LabelRule.kind) -> the prompt upstream asks it with."""
    fallback_label: str
    """What a page whose layout is unusable is read as (the whole page, with the text prompt)."""
    half_precision: str
    """CUDA precision: 'fp16' (as upstream runs 1.x) or 'bf16' (v2; fp16 with an fp32 rerun where bf16 is not native)."""
    latex: str = "1.5"
    """Whose LaTeX clean-ups the Markdown gets (latex.LATEX_RULES): '1.0' or '1.5' (1.5's table, which v2 keeps)."""


_TEXT_ONLY = {"text": PROMPTS["text"], "table": PROMPTS["table"], "formula": PROMPTS["text"], "code": PROMPTS["text"]}

PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        # bytedance/Dolphin 4c09bb3 demo_page_hf.py (repetition_penalty=1.1; 'tab' table prompt, every
        # other label the text prompt) and 6043b32 utils/utils.py (parse_layout_string, process_coordinates,
        # adjust_box_edges).
        "1.0": Profile(
            "1.0", "fraction", "label-after", distorted_page=False, edge_adjustment=True, trim_previous=True,
            repetition_penalty=1.1, prompts=MappingProxyType(_TEXT_ONLY), fallback_label="para", half_precision="fp16",
            latex="1.0",
        ),
        # 1.5 (05f0df1 demo_page.py and utils/utils.py): no repetition penalty, 'equ'/'code' prompts, coordinates
        # on the 896 square (process_coordinates: round(c / 896 * side), +1 on x2/y2), no edge adjustment.
        "1.5": Profile(
            "1.5", "square", "bracketed", distorted_page=False, edge_adjustment=False, trim_previous=True,
            repetition_penalty=None, prompts=MappingProxyType(dict(PROMPTS)), fallback_label="para", half_precision="fp16",
        ),
        # v2 (demo_page.py 762eb48, utils/utils.py 5270fee): distorted_page fallback, no trimming, bf16.
        "v2": Profile(
            "v2", "grid", "bracketed", distorted_page=True, edge_adjustment=False, trim_previous=False,
            repetition_penalty=None, prompts=MappingProxyType(dict(PROMPTS)), fallback_label="distorted_page", half_precision="bf16",
        ),
    }
)
ENCODER_DECODER = "vision-encoder-decoder"
QWEN2_5_VL = "qwen2_5_vl"


def profile_for(model_dir: Path, env: Mapping[str, str] | None = None) -> Profile:
    """The checkpoint's profile: an explicit override, else its architecture, else (1.x) its tokenizer."""
    env = os.environ if env is None else env
    model_type = checkpoint_type(model_dir)
    if model_type not in (ENCODER_DECODER, QWEN2_5_VL):
        raise BackendUnavailable(f"{model_dir} holds a {model_type!r} model, not Dolphin ({ENCODER_DECODER!r} or {QWEN2_5_VL!r})")
    chosen = env.get(ENV_GENERATION) or _config_field(model_dir)
    if chosen:
        profile = PROFILES.get(chosen)
        if profile is None:
            raise BackendUnavailable(f"Dolphin generation {chosen!r} is not one of {', '.join(PROFILES)} ({ENV_GENERATION} or config.json {CONFIG_FIELD})")
        if (model_type == QWEN2_5_VL) != (profile.name == "v2"):
            raise BackendUnavailable(f"{model_dir} holds a {model_type!r} model, which cannot be Dolphin {profile.name}")
        return profile
    if model_type == QWEN2_5_VL:
        return PROFILES["v2"]
    return PROFILES["1.5" if _knows_1_5_layout(model_dir) else "1.0"]


def _config_field(model_dir: Path) -> str | None:
    try:
        value = json.loads((model_dir / "config.json").read_text()).get(CONFIG_FIELD)
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def _knows_1_5_layout(model_dir: Path) -> bool:
    """Whether the tokenizer holds 1.5's layout separators as tokens of their own (read from tokenizer.json, no model load)."""
    path = model_dir / "tokenizer.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        log.warning("Dolphin: no readable %s; taken as 1.0 (set %s to say otherwise)", path, ENV_GENERATION)
        return False
    tokens = {t.get("content") for t in data.get("added_tokens", []) if isinstance(t, dict)}
    vocab = (data.get("model") or {}).get("vocab") or {}
    tokens |= set(vocab) if isinstance(vocab, dict) else {entry[0] for entry in vocab if entry}
    return all(token in tokens for token in LAYOUT_1_5_TOKENS)
