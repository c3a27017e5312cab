"""Realistic decode work from a model with random weights: answers of real length, recorded content.

A random model never says when to stop, and its layout answer parses to nothing. For the GPU benchmark
(bench/dolphin_gpu.py) each model call still runs every forward pass, but its tokens are forced: the
end-of-sequence token is suppressed until the row reaches the length a real answer has, then forced. The
text handed back to the pipeline is the recorded answer, so the layout parses into the page's real elements
and every crop is cut and read as it would be.

Where the lengths come from: each dev page's ground truth (docling's DoclingDocument JSON in
corpus/dev/docling_md: every element's box, label and text). The layout answer is those boxes written in the
generation's own format; each element's answer is its ground-truth text (tables as HTML from the cell grid).
Tokens are counted by `estimate_tokens`, a documented stand-in for the checkpoints' tokenizers (not available
offline): Qwen2's tokenizer splits numbers into single digits (Qwen technical report, 2023, section 2.2: "we split
numbers into single digits"), English BPE runs about 4 characters per token (OpenAI's tokenizer guide: "one
token generally corresponds to ~4 characters of common English text"), and CJK about one token per character.
An element whose ground truth carries no text (docling leaves formulas and code empty when not enriched) gets
DEFAULT_TOKENS for its kind.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from PIL import Image
from transformers import LogitsProcessor

from pdf2md.convert.dolphin.layout import PageGeometry, parse_layout
from pdf2md.convert.dolphin.markdown import rule_for
from pdf2md.convert.dolphin.profiles import Profile
from pdf2md.convert.dolphin.prompts import LAYOUT_PROMPT
from pdf2md.convert.dolphin.render import RenderedPage

DEFAULT_TOKENS = {"text": 60, "table": 400, "formula": 60, "code": 150}
"""Tokens for an element whose ground truth has no text: a short paragraph, a 10x5 HTML table, a display
formula in LaTeX, a 10-line code block (rough typical sizes, used only where docling recorded nothing)."""
DOCLING_LABELS = {
    "title": "sec_0",
    "section_header": "sec_1",
    "text": "para",
    "paragraph": "para",
    "list_item": "list",
    "caption": "cap",
    "footnote": "fnote",
    "page_header": "header",
    "page_footer": "foot",
    "formula": "equ",
    "code": "code",
    "table": "tab",
    "document_index": "tab",
    "picture": "fig",
    "chart": "fig",
}
"""docling's labels -> Dolphin's (anything else is read as a paragraph)."""

_TOKEN_PIECES = re.compile(r"</?[A-Za-z]+>|\d|[A-Za-z]+|[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|[^\W\d_A-Za-z]+|\S")


def estimate_tokens(text: str) -> int:
    """Tokens a checkpoint's BPE would spend on `text` (see the module doc for the rules and their sources)."""
    count = 0
    for piece in _TOKEN_PIECES.findall(text):
        if piece.isascii() and piece.isalpha():
            count += math.ceil(len(piece) / 4)
        elif piece.isalpha() and len(piece) > 1:  # other alphabets (Arabic, Cyrillic, ...): about 2 letters a token
            count += math.ceil(len(piece) / 2)
        else:  # a digit, an HTML tag, a CJK character, a punctuation mark
            count += 1
    return count


@dataclass(frozen=True)
class Element:
    """One ground-truth element of a page: Dolphin's label, its box in PDF points from the top-left, its text."""

    label: str
    box: tuple[float, float, float, float]
    text: str


@dataclass(frozen=True)
class Answer:
    text: str
    tokens: int


def docling_pages(path: Path) -> dict[int, list[Element]]:
    """A DoclingDocument JSON -> page index (0-based) -> its elements from top to bottom."""
    doc = json.loads(path.read_text())
    heights = {int(k): v["size"]["height"] for k, v in doc.get("pages", {}).items()}
    pages: dict[int, list[Element]] = {}
    for item in [*doc.get("texts", []), *doc.get("tables", []), *doc.get("pictures", [])]:
        parent = (item.get("parent") or {}).get("$ref", "")
        if parent.startswith(("#/pictures", "#/tables")):
            continue  # text inside a figure or a table is read with it
        for prov in item.get("prov", [])[:1]:
            page_no = prov["page_no"]
            box = _top_left(prov["bbox"], heights.get(page_no, 0.0))
            label = DOCLING_LABELS.get(item.get("label", ""), "para")
            text = _table_html(item["data"]) if label == "tab" and item.get("data") else item.get("text", "")
            pages.setdefault(page_no - 1, []).append(Element(label, box, text))
    for elements in pages.values():
        elements.sort(key=lambda e: (e.box[1], e.box[0]))
    return pages


def _top_left(bbox: dict[str, Any], page_height: float) -> tuple[float, float, float, float]:
    left, right = bbox["l"], bbox["r"]
    if bbox.get("coord_origin", "BOTTOMLEFT") == "BOTTOMLEFT":
        return left, page_height - bbox["t"], right, page_height - bbox["b"]
    return left, bbox["t"], right, bbox["b"]


def _table_html(data: dict[str, Any]) -> str:
    rows = max(1, int(data.get("num_rows") or 0))
    cols = max(1, int(data.get("num_cols") or 0))
    grid = [[""] * cols for _ in range(rows)]
    for cell in data.get("table_cells", []):
        row, col = cell.get("start_row_offset_idx", 0), cell.get("start_col_offset_idx", 0)
        if row < rows and col < cols:
            grid[row][col] = cell.get("text", "")
    body = "".join("<tr>" + "".join(f"<td>{value}</td>" for value in row) + "</tr>" for row in grid)
    return f"<table>{body}</table>"


def layout_answer(elements: Sequence[Element], page_size: tuple[float, float], geometry: PageGeometry, profile: Profile) -> str:
    """The elements as the generation writes its layout: boxes in its coordinates, its separators."""
    width, height = page_size
    x0, y0, x1, y1 = geometry.content
    sx, sy = (x1 - x0) / width, (y1 - y0) / height
    entries = []
    for e in elements:
        px = (x0 + e.box[0] * sx, y0 + e.box[1] * sy, x0 + e.box[2] * sx, y0 + e.box[3] * sy)
        if profile.coordinates == "fraction":
            coords = ",".join(f"{v / side:.2f}" for v, side in zip(px, geometry.size * 2))
            entries.append(f"[{coords}] {e.label}")
            continue
        grid_scale = (geometry.grid[0] / geometry.size[0], geometry.grid[1] / geometry.size[1])
        coords = ",".join(str(round(v * grid_scale[i % 2])) for i, v in enumerate(px))
        entries.append(f"[{coords}][{e.label}]")
    return ("\n" if profile.coordinates == "fraction" else "[PAIR_SEP]").join(entries)


@dataclass
class Script:
    """Recorded answers, found by the exact pixels of the image the model is asked about."""

    answers: dict[str, Answer] = field(default_factory=dict)
    misses: int = 0
    """Images asked about that were not recorded (each read with a default length): 0 in an honest run."""

    def add_page(self, page: RenderedPage, elements: Sequence[Element], page_size: tuple[float, float], profile: Profile) -> int:
        """Record a page's layout answer and each element crop's answer; returns the elements the layout yields."""
        text = layout_answer(elements, page_size, page.geometry, profile)
        self.answers[image_key(page.layout_image)] = Answer(text, estimate_tokens(text))
        parsed = parse_layout(text, page.geometry, profile, page.image)
        by_order = dict(enumerate(elements))
        for element in parsed:
            kind = rule_for(element.label).kind
            if kind is None:
                continue
            truth = by_order[element.order].text
            tokens = estimate_tokens(truth) if truth.strip() else DEFAULT_TOKENS[kind]
            self.answers[image_key(page.image.crop(element.box))] = Answer(truth, tokens)
        return len(parsed)

    def answer(self, image: Image.Image, prompt: str) -> Answer:
        found = self.answers.get(image_key(image))
        if found is not None:
            return found
        self.misses += 1
        return Answer("", DEFAULT_TOKENS["text"] if prompt != LAYOUT_PROMPT else 1)


def image_key(image: Image.Image) -> str:
    return hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest() + f"{image.size}{image.mode}"


class ForcedLengths(LogitsProcessor):
    """Forces each row to `lengths[row]` generated tokens, then end-of-sequence.

    The tokens cycle through `fillers` (the tokenizer's ordinary ids: a cycle longer than RepetitionStop's
    window, so no row is stopped as a loop); every forward pass is the model's own.
    """

    def __init__(self, lengths: Sequence[int], eos: int, fillers: torch.Tensor) -> None:
        device = fillers.device
        self.lengths = torch.tensor(list(lengths), device=device)
        self.rows = torch.arange(len(lengths), device=device)
        self.eos, self.fillers = eos, fillers
        self.start: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.start is None:
            self.start = input_ids.shape[1]
        step = input_ids.shape[1] - self.start
        filler = self.fillers[(step + 37 * self.rows) % len(self.fillers)]
        token = torch.where(self.lengths > step, filler, torch.full_like(filler, self.eos))
        forced = torch.full_like(scores, float("-inf"))
        forced[self.rows, token] = 0.0
        return cast(torch.FloatTensor, forced)


class ScriptedEngine:
    """A real engine whose answers have recorded lengths and texts (see the module doc); counts what it decoded."""

    def __init__(self, engine: Any, script: Script, max_tokens: int | None = None) -> None:
        self.engine = engine
        self.profile: Profile = engine.profile
        self.script = script
        self.max_tokens = max_tokens
        self.tokens = 0
        self.calls: list[tuple[str, int]] = []
        tokenizer = engine.tokenizer
        self._eos = int(tokenizer.eos_token_id)
        special = {int(i) for i in tokenizer.all_special_ids}
        self._fillers = torch.tensor([i for i in range(len(tokenizer)) if i not in special], device=engine.device)
        self._generate = engine.model.generate
        self._lengths: list[int] = []
        engine.model.generate = self._forced_generate

    def frame(self, page: Image.Image) -> tuple[Image.Image, PageGeometry]:
        frame: tuple[Image.Image, PageGeometry] = self.engine.frame(page)
        return frame

    def generate(self, images: Sequence[Image.Image], prompt: str) -> list[str | None]:
        answers = [self.script.answer(image, prompt) for image in images]
        self._lengths = [self._capped(a.tokens) for a in answers]
        self.calls.append((prompt, len(images)))
        self.tokens += sum(self._lengths)
        read = self.engine.generate(images, prompt)
        return [None if got is None else answer.text for got, answer in zip(read, answers)]

    def _capped(self, tokens: int) -> int:
        return max(1, min(tokens, self.max_tokens or tokens))

    def _forced_generate(self, *args: Any, **kwargs: Any) -> Any:
        rows = _batch_rows(kwargs)
        lengths = self._lengths if len(self._lengths) == rows else [max(self._lengths, default=1)] * rows
        forced = ForcedLengths(lengths, self._eos, self._fillers)
        kwargs["logits_processor"] = [*kwargs.get("logits_processor", []), forced]
        return self._generate(*args, **kwargs)


def _batch_rows(kwargs: dict[str, Any]) -> int:
    for name in ("decoder_input_ids", "input_ids"):
        if kwargs.get(name) is not None:
            return int(kwargs[name].shape[0])
    raise ValueError("generate was called without input ids")
