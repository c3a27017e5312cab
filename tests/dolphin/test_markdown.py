"""Golden tests of Markdown assembly from recorded element answers, and the writers one by one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pdf2md.convert.dolphin.markdown import WRITERS, ReadElement, page_markdown
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
