"""Golden tests of Markdown assembly from recorded element answers, and the writers one by one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pdf2md.convert.dolphin.markdown import WRITERS, ReadElement, page_markdown
from pdf2md.convert.dolphin.profiles import PROFILES
from pdf2md.convert.dolphin.tables import table_markdown

FIXTURES = Path(__file__).parent / "fixtures"


def _elements() -> list[ReadElement]:
    data = json.loads((FIXTURES / "elements.json").read_text())
    return [ReadElement(e["label"], e["text"], e["order"]) for e in data]


@pytest.mark.parametrize("figures", ["reference", "drop"])
def test_page_matches_golden(figures: str) -> None:
    expected = (FIXTURES / f"elements.{figures}.md").read_text().rstrip("\n")
    assert page_markdown(_elements(), page=2, figures=figures) == expected


def test_reading_order_not_list_order() -> None:
    elements = [ReadElement("para", "second", 1), ReadElement("title", "First", 0)]
    assert page_markdown(elements, page=0) == "# First\n\nsecond"


def test_rectangular_table_is_a_pipe_table() -> None:
    html = "<table><tr><th>a</th><th>b</th></tr><tr><td>1<br>2</td><td>x|y</td></tr></table>"
    assert table_markdown(html) == "| a | b |\n|---|---|\n| 1 2 | x\\|y |"


@pytest.mark.parametrize(
    "html",
    [
        '<table><tr><td colspan="2">wide</td></tr><tr><td>1</td><td>2</td></tr></table>',
        "<table><tr><td>1</td><td>2</td></tr><tr><td>3</td></tr></table>",
    ],
)
def test_spans_and_ragged_rows_stay_html(html: str) -> None:
    written = table_markdown(html)
    assert written is not None and written.startswith("<table><tr>") and written.endswith("</tr></table>")


def test_cut_table_is_closed() -> None:
    assert table_markdown("<table><tr><td>a</td><td>b</td></tr><tr><td>1</td><td>2") == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_table_answer_without_a_table_is_text() -> None:
    assert WRITERS["table"]("just some\nwords") == "just some words"


@pytest.mark.parametrize("answer", ["$$x^2$$", "\\[x^2\\]", "$x^2$", "x^2", "  $$ x^2 $$  "])
def test_formula_delimiters_are_normalised(answer: str) -> None:
    assert WRITERS["formula"](answer) == "$$\nx^2\n$$"


def test_code_fence_is_longer_than_any_fence_inside() -> None:
    assert WRITERS["code"]("a\n```\nb") == "````\na\n```\nb\n````"


def test_empty_answers_write_nothing() -> None:
    assert page_markdown([ReadElement("title", " ", 0), ReadElement("tab", "", 1), ReadElement("equ", "$$", 2)], 0) == ""


def test_unknown_labels_are_paragraphs_and_headings_are_one_line() -> None:
    elements = [ReadElement("sub_sub_sec", "4.1.2 Deep\nheading", 0), ReadElement("mystery", "# not a heading", 1)]
    assert page_markdown(elements, 0) == "#### 4.1.2 Deep heading\n\n\\# not a heading"


def test_1_0_algorithms_and_formulas_are_written_as_upstream_1_0_writes_them() -> None:
    """bytedance/Dolphin 6043b32 utils/markdown_utils.py: `alg` -> `_handle_algorithm` (environments and
    \\label dropped, the caption in bold above a code block), `formula` -> `_handle_formula` (display math)."""
    algorithm = "\\begin{algorithm}\n\\caption{Greedy decoding}\n\\label{alg:greedy}\n\\begin{algorithmic}\nwhile not done:\n  step()\n\\end{algorithmic}\n\\end{algorithm}"
    elements = [ReadElement("alg", algorithm, 0), ReadElement("formula", "E = mc^2", 1)]
    assert page_markdown(elements, 0) == "**Greedy decoding**\n\n```\nwhile not done:\n  step()\n```\n\n$$\nE = mc^2\n$$"


def test_references_keep_their_text_and_furniture_is_not_written() -> None:
    """Upstream 1.0 drops `reference` boxes (a deliberate difference: a bibliography is content); header,
    footer and watermark boxes are not read at all (upstream writes them as paragraphs)."""
    elements = [ReadElement("header", "Journal of Things", 0), ReadElement("reference", "[1] A. Author. A paper. 2020.", 1), ReadElement("foot", "7", 2)]
    assert page_markdown(elements, 0) == "[1] A. Author. A paper. 2020."


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("a \\upmu m wire", "a \\mu m wire"),
        ("$\\bm{x} \\in \\varmathbb{R}$", "$\\mathbf{x} \\in \\mathbb{R}$"),
        ("$x \\to \\in fty$", "$x \\to \\infty$"),
        ("$a = b \\eqno (1)$", "$a = b \\quad (1)$"),
        ("$a \\bmod b, \\cdots, a \\pmod{p}, \\leqslant$", "$a \\bmod b, \\cdots, a \\pmod{p}, \\leqslant$"),
    ],
)
def test_1_5_and_v2_latex_clean_ups_rename_whole_commands_only(written: str, expected: str) -> None:
    """bytedance/Dolphin 05f0df1 / 5270fee utils/markdown_utils.py `replace_dict`; a plain str.replace would
    turn \\bmod into \\mathbf od, \\cdots into \\cdot s and \\pmod into \\pm od."""
    assert page_markdown([ReadElement("para", written, 0)], 0, latex=PROFILES["v2"].latex) == expected
    assert page_markdown([ReadElement("para", written, 0)], 0, latex=PROFILES["1.5"].latex) == expected


def test_1_0_latex_clean_ups_and_where_they_apply() -> None:
    """1.0's `_post_process`: \\eqno{(n)} -> \\tag{n}, `_ {` -> `_{`; never inside code or tables."""
    elements = [ReadElement("formula", "x_ {i} = 1 \\eqno{(3)}", 0), ReadElement("alg", "x_ {i} = 1", 1)]
    assert page_markdown(elements, 0, latex=PROFILES["1.0"].latex) == "$$\nx_{i} = 1 \\tag{3}\n$$\n\n```\nx_ {i} = 1\n```"
    assert page_markdown([ReadElement("para", "a \\upmu m", 0)], 0, latex=PROFILES["1.0"].latex) == "a \\upmu m"  # not 1.0's
