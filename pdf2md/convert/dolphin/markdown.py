"""Read elements -> one page of Markdown, driven by a table of label rules (what to ask, how to write)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pdf2md.convert.document_model import BBox, Block, join_blocks
from pdf2md.convert.dolphin.latex import clean_latex
from pdf2md.convert.dolphin.tables import table_markdown

FIGURE_MODES = ("drop", "image", "reference")
"""drop: a figure is a block without Markdown (its box in the JSON, no link); image: the same, its image cut
out for the writer to save and link; reference: a link to page-NNNN-figure-NN.png, for a caller that saves
the images under those names itself."""


@dataclass(frozen=True)
class LabelRule:
    """`kind` picks the element prompt (None: nothing to read); `block` picks the Markdown writer."""

    kind: str | None
    block: str


_HEADING = {"title": 1, "sec": 2, "sub_sec": 3, "sub_sub_sec": 4, "sec_0": 1, "sec_1": 2, "sec_2": 3}
_HEADING.update({name: 4 for name in ("sec_3", "sec_4", "sec_5")})
"""1.0 names its levels (title, sec, sub_sec); 1.5 and v2 number them from the title (sec_0)."""

LABELS: dict[str, LabelRule] = {
    **{name: LabelRule("text", f"h{level}") for name, level in _HEADING.items()},
    "list": LabelRule("text", "list"),
    "tab": LabelRule("table", "table"),
    "equ": LabelRule("formula", "formula"),
    "formula": LabelRule("formula", "formula"),
    "code": LabelRule("code", "code"),
    "alg": LabelRule("text", "algorithm"),
    "fig": LabelRule(None, "figure"),
    "header": LabelRule(None, "drop"),
    "foot": LabelRule(None, "drop"),
    "watermark": LabelRule(None, "drop"),
    "distorted_page": LabelRule("text", "markdown"),
}
"""Dolphin's labels; any other (para, cap, fnote, author, half_para, reference, ...) is a paragraph of text.
1.0 names its formulas `formula` and its algorithms `alg` (written as upstream 1.0's `_handle_formula` and
`_handle_algorithm` write them: display math, a code block); 1.5 and v2 name them `equ` and `code`.
A v2 `distorted_page` is the whole page read at once, already Markdown: it is written as it came.
Header, footer and watermark boxes are not read: upstream reads them and writes them as paragraphs, a running
head and a page number on every page of the document (README.md's Dolphin differences)."""
DEFAULT_RULE = LabelRule("text", "paragraph")


def rule_for(label: str) -> LabelRule:
    return LABELS.get(label, DEFAULT_RULE)


@dataclass(frozen=True)
class ReadElement:
    """One element of a page with what the model read (empty for figures and failures)."""

    label: str
    text: str
    order: int


LATEX_BLOCKS = frozenset({"paragraph", "formula", *(f"h{level}" for level in range(1, 5))})
"""Where upstream's LaTeX clean-ups apply: text, headings and formulas (never code, tables or lists)."""


def page_markdown(elements: Sequence[ReadElement], page: int, figures: str = "reference", latex: str | None = None) -> str:
    """Blocks in reading order, a blank line apart; list items of one list stay together.

    `latex` names the generation's LaTeX clean-ups (latex.clean_latex; None: the text as read)."""
    return join_blocks(page_blocks(elements, page, figures, latex=latex))


def page_blocks(elements: Sequence[ReadElement], page: int, figures: str = "reference",
                boxes: Mapping[int, BBox] | None = None, latex: str | None = None) -> tuple[Block, ...]:
    """The page's blocks in reading order as the document model holds them; `boxes`: each element's box by
    its order, as fractions of the page (top-left origin); `latex` as in page_markdown."""
    blocks: list[Block] = []
    figure_no = 0
    for element in sorted(elements, key=lambda e: e.order):
        block = rule_for(element.label).block
        box = boxes.get(element.order) if boxes else None
        if block == "figure":
            figure_no += 1
            link = f"![Figure {figure_no}]({figure_name(page, figure_no)})" if figures == "reference" else ""
            blocks.append(Block("figure", link, box, label=element.label))
            continue
        text = clean_latex(element.text, latex) if latex and block in LATEX_BLOCKS else element.text
        written = WRITERS[block](text) if block in WRITERS else ""
        if written:
            tight = block == "list" and bool(blocks) and blocks[-1].kind == "list_item"
            level = int(block[1]) if block in _LEVELS else None
            blocks.append(Block(_KINDS.get(block, block), written, box, level=level, label=element.label, tight=tight))
    return tuple(blocks)


_LEVELS = {f"h{level}" for level in range(1, 5)}
_KINDS = {**{name: "heading" for name in _LEVELS}, "list": "list_item"}
"""Writer block -> the document model's kind (the others are named alike)."""


def figure_name(page: int, number: int) -> str:
    """The image a figure reference points to: page and figure, both counted from 1."""
    return f"page-{page + 1:04d}-figure-{number:02d}.png"


def _flow(text: str) -> str:
    """Join the model's line breaks into running text (a hyphen at a break joins the word)."""
    text = re.sub(r"(\w)-\n(\w)", r"\1\2", text.strip())
    lines = [line.strip() for line in text.split("\n")]
    out = ""
    for line in lines:
        if not line:
            continue
        joiner = "" if not out or (_is_cjk(out[-1]) and _is_cjk(line[0])) else " "
        out += joiner + line
    return out


def _is_cjk(char: str) -> bool:
    return "\u3040" <= char <= "\u30ff" or "\u4e00" <= char <= "\u9fff" or "\uac00" <= char <= "\ud7af"


def _heading(level: int) -> Callable[[str], str]:
    def write(text: str) -> str:
        flowed = _flow(text).lstrip("#").strip()
        return f"{'#' * level} {flowed}" if flowed else ""

    return write


_ORDERED = re.compile(r"^\d+[.)]\s")
_BULLET = re.compile(r"^[-*+•·▪●◦]\s*")


def _list_item(text: str) -> str:
    """Numbered items keep their number (an ordered list); others get '- ' instead of their bullet."""
    flowed = _flow(text)
    if not flowed or _ORDERED.match(flowed):
        return flowed
    return "- " + _BULLET.sub("", flowed)


_MARKUP_START = re.compile(r"^(#|[-*+](?=\s))")


def _paragraph(text: str) -> str:
    """Running text; a leading '#' or bullet is escaped so a footnote does not turn into a heading or list."""
    return _MARKUP_START.sub(r"\\\1", _flow(text))


def _table(text: str) -> str:
    written = table_markdown(text)
    return written if written is not None else _flow(text)


_MATH_DELIMS = re.compile(r"^\s*(?:\$\$|\$|\\\[|\\\()\s*|\s*(?:\$\$|\$|\\\]|\\\))\s*$")


def _formula(text: str) -> str:
    latex = _MATH_DELIMS.sub("", text.strip()).strip()
    return f"$$\n{latex}\n$$" if latex else ""


def _code(text: str) -> str:
    code = text.strip("\n")
    if not code.strip():
        return ""
    fence = "```"
    while fence in code:
        fence += "`"
    return f"{fence}\n{code}\n{fence}"


_ALGORITHM_ENVS = re.compile(r"\\(?:begin|end)\{algorithm(?:ic)?\}")
_CAPTION = re.compile(r"\\caption\{(.*?)\}")


def _algorithm(text: str) -> str:
    """1.0's `alg`: a code block without the algorithm environments and `\\label` lines, its caption in bold above."""
    caption = ""
    lines = []
    for line in _ALGORITHM_ENVS.sub("", text).strip().split("\n"):
        if "\\caption" in line:
            found = _CAPTION.search(line)
            caption = f"**{found.group(1)}**" if found else caption
        elif "\\label" not in line:
            lines.append(line)
    code = _code("\n".join(lines))
    return "\n\n".join(part for part in (caption, code) if part)


WRITERS: dict[str, Callable[[str], str]] = {
    **{f"h{level}": _heading(level) for level in range(1, 5)},
    "markdown": str.strip,
    "paragraph": _paragraph,
    "list": _list_item,
    "table": _table,
    "formula": _formula,
    "code": _code,
    "algorithm": _algorithm,
}
"""Markdown writers by block; "figure" and "drop" have none (figures are written by page_markdown)."""
