"""Where pdf2md differs from upstream Dolphin on purpose: one record per difference, rendered into README.md.

README.md's Dolphin difference table is `difference_table()` verbatim (tests/dolphin/test_profiles.py checks
it), so the table cannot drift from this list. Each record names the generations it concerns (profiles.PROFILES)
and the upstream code it departs from, by commit and file (SOURCES).
"""

from __future__ import annotations

from dataclasses import dataclass

from pdf2md.convert.dolphin.profiles import PROFILES

SOURCES = {
    "1.0": "bytedance/Dolphin 4c09bb3 demo_page_hf.py; 6043b32 utils/utils.py, utils/markdown_utils.py",
    "1.5": "bytedance/Dolphin 05f0df1 demo_page.py, utils/utils.py, utils/markdown_utils.py",
    "v2": "bytedance/Dolphin 762eb48 demo_page.py; 5270fee utils/utils.py, utils/markdown_utils.py",
}
"""The upstream code each profile follows (full commits: 4c09bb3bfabf, 6043b32c913c, 05f0df1c74cb, 762eb48018ee, 5270fee6851f)."""


@dataclass(frozen=True)
class Difference:
    generations: tuple[str, ...]
    upstream: str
    pdf2md: str
    why: str


DIFFERENCES: tuple[Difference, ...] = (
    Difference(("1.0", "1.5", "v2"), "header, footer and watermark boxes are read and written as ordinary paragraphs (utils/markdown_utils.py `convert`)",
               "they are not read", "a running head, page number or watermark on every page is not the document's text, and each costs a decode"),
    Difference(("1.0",), "`reference` boxes are read and left out of the Markdown (`special_labels`, no writer)",
               "written as paragraphs", "a bibliography is content"),
    Difference(("1.0", "1.5", "v2"), "tables are written as the model's HTML (`extract_table_from_html`)",
               "rectangular tables become pipe tables; spans stay HTML", "Markdown readers render pipe tables"),
    Difference(("1.0", "1.5", "v2"), "headings: `title`/`sec_0` `#`, `sec`/`sec_1` `##`, `sub_sec`/`sec_2`..`sec_5` `###`",
               "`sub_sub_sec` and `sec_3`+ are `####`", "the fourth level stays apart from the third"),
    Difference(("1.0", "1.5", "v2"), "no loop stop: decoding runs to 4096 tokens (`max_length` / `max_new_tokens`)",
               "a row caught in a token loop is stopped and its tail cut; copies and span per element kind; whole table rows never count as a loop",
               "a loop costs up to 4,000 decode steps per crop"),
    Difference(("1.0", "1.5", "v2"), "figure crops are saved under markdown/figures/ and linked",
               "references to `page-NNNN-figure-NN.png` with the boxes in the page results (or dropped)", "the worker writes only Markdown"),
    Difference(("1.0", "1.5"), "a page whose layout parses to nothing yields no Markdown",
               "the page is read whole as one paragraph (and the generation guard checks the answer's format)", "a page lost silently is worse"),
    Difference(("v2",), "`distorted_page` when the raw answer does not start with `[` and end with `]`",
               "the same check after surrounding whitespace is stripped", "a trailing newline is not a cut answer"),
    Difference(("v2",), "coordinates mapped with `smart_resize(factor=28, min_pixels=784, max_pixels=2560000)` hard-coded in `process_coordinates`",
               "mapped with the processor's own pixel limits", "the grid the model saw; the two agree where the processor is configured with those limits"),
    Difference(("v2",), "each image is resized by qwen_vl_utils (QwenLM/Qwen2-VL 487a12d qwen-vl-utils/src/qwen_vl_utils/vision_process.py: 3,136..12,845,056 pixels, bicubic) and then by the processor",
               "resized once, by the processor", "qwen_vl_utils is no dependency; the grid is the same where the processor's limits are those"),
    Difference(("v2",), "`resize_img`, then the processor refuses a ratio over 1:200 and the whole document fails",
               "`resize_img`, then a crop thinner than 1:200 is padded with white to 1:200", "one hairline crop must not lose a document"),
    Difference(("1.0", "1.5"), "crops resized by the pinned processor (requirements.txt 4f13c09: transformers 4.47)",
               "the same pixels, but a crop more than 8 times longer than wide has its first resize capped at 8 times its final size (at most 5 grey levels of resampling noise)",
               "an uncapped text line takes 0.4-1 s of CPU"),
    Difference(("1.0", "1.5", "v2"), "only the unknown token is banned (`bad_words_ids`)", "the answer token is banned too (1.x)",
               "an answer token inside an answer would cut it when the prompt is stripped"),
    Difference(("1.0", "1.5", "v2"), "a fixed `max_batch_size` (16 for 1.x, 4 for v2)", "element batches sized to free GPU memory (at most 8), halved on out-of-memory",
               "a T4 runs out of memory at 16"),
    Difference(("1.5", "v2"), "LaTeX clean-ups by plain `str.replace` (`replace_dict`), which also rewrites `\\bmod`, `\\cdots`, `\\pmod`, `\\multicolumn`",
               "the renames (`\\upmu`, `\\bm`, `\\eqno`, `\\varmathbb`, `\\in fty`) on whole commands only; the entries that only add a space are not repeated",
               "a longer command must survive"),
    Difference(("1.0",), "`\\eqno{(n)}` -> `\\tag{n}` and `_ {` -> `_{` over the whole page; prose with `_{`, `^{` or `\\` wrapped in `$...$`",
               "the two fixes on text, headings and formulas only; no math wrapping", "code and tables keep their text; a Windows path is not math"),
    Difference(("1.0", "1.5", "v2"), "formulas `$$...$$` on one line, code fenced as `bash`, list items always `- `",
               "`$$` on lines of their own, unlabelled fences, numbered items keep their numbers", "the same rendering; a numbered list stays numbered"),
)


def difference_table() -> str:
    """README.md's Dolphin difference table, rendered from DIFFERENCES and the profiles' sources."""
    unknown = {g for d in DIFFERENCES for g in d.generations} - set(PROFILES)
    if unknown:
        raise ValueError(f"differences name generations without a profile: {sorted(unknown)}")
    rows = ["| generation | upstream code | upstream | pdf2md | why |", "| --- | --- | --- | --- | --- |"]
    rows += [f"| {name} | {SOURCES[name]} | | | the profile's rules (`profiles.py`) |" for name in PROFILES]
    rows += [f"| {', '.join(d.generations)} | | {d.upstream} | {d.pdf2md} | {d.why} |" for d in DIFFERENCES]
    return "\n".join(rows)
