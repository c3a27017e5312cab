"""The text-layer path: structure recovered from positioned text, one feature per test."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from pdf2md.convert import ConvertOptions, convert_pdf
from pdf2md.convert.text import spans as spans_module
from pdf2md.convert.text.layout import build_rows, make_line
from pdf2md.convert.text.markdown import join_lines
from pdf2md.convert.text.spans import Span
from pdf2md.convert.text.tables import Table
from pdf2md.convert.textlayer import ordered_items
from tests.convert.pdfgen import Page

MakePdf = Callable[..., Path]


def text_md(path: Path, **options: object) -> str:
    return convert_pdf(path, ConvertOptions(backend="text", **options)).markdown  # type: ignore[arg-type]


def body(y: float, *lines: str, x: float = 72, leading: float = 13) -> list[tuple]:
    """Consecutive body lines in 11pt Helvetica from y downwards."""
    return [(x, y - i * leading, line) for i, line in enumerate(lines)]


def test_golden_small_document(make_pdf: MakePdf) -> None:
    page = Page(texts=[
        (72, 720, "Annual Results", "F2", 20),
        *body(680, "The first line of body text goes here and", "continues on the second line of the para-", "graph until it ends."),
        *body(630, "A second paragraph stands apart."),
        (72, 600, "Outlook", "F2", 14),
        *body(575, "• first item", "• second item"),
    ])
    assert text_md(make_pdf(page)) == (
        "# Annual Results\n\n"
        "The first line of body text goes here and continues on the second line of the paragraph until it ends.\n\n"
        "A second paragraph stands apart.\n\n"
        "## Outlook\n\n"
        "- first item\n\n"
        "- second item\n"
    )


def test_bold_line_at_body_size_is_a_heading(make_pdf: MakePdf) -> None:
    page = Page(texts=[(72, 700, "Methods", "F2", 11), *body(680, "We measured everything twice over the year.", "Then we measured it again.")])
    md = text_md(make_pdf(page))
    assert re.match(r"#{1,4} Methods\n\nWe measured", md)


def test_lines_of_a_paragraph_join_and_gaps_split(make_pdf: MakePdf) -> None:
    page = Page(texts=[*body(700, "alpha beta gamma delta epsilon zeta eta", "theta iota kappa"), *body(650, "lambda mu nu")])
    assert text_md(make_pdf(page)) == "alpha beta gamma delta epsilon zeta eta theta iota kappa\n\nlambda mu nu\n"


def test_hyphenated_word_at_line_end_is_joined(make_pdf: MakePdf) -> None:
    page = Page(texts=body(700, "the results were remark-", "able in every respect"))
    assert "remarkable in every respect" in text_md(make_pdf(page))


def test_ligatures_and_pdfium_soft_hyphen_marker() -> None:
    assert join_lines(["the ﬁrst ﬂoor is e\x02", "ﬃcient"]) == "the first floor is efficient"
    assert join_lines(["well-", "Known"]) == "well- Known"


def test_bullets_and_numbers_become_list_items(make_pdf: MakePdf) -> None:
    page = Page(texts=body(700, "• apples", "• pears", "1. first step", "2. second step"))
    md = text_md(make_pdf(page))
    assert "- apples" in md and "- pears" in md
    assert "1. first step" in md and "2. second step" in md


def test_aligned_columns_become_a_pipe_table(make_pdf: MakePdf) -> None:
    rows = [("Name", "Qty", "Price"), ("Apple", "3", "1.20"), ("Pear", "12", "0.80"), ("Plum", "7", "2.05")]
    texts = [(x, 700 - 16 * r, cell) for r, row in enumerate(rows) for x, cell in zip((72, 250, 400), row)]
    md = text_md(make_pdf(Page(texts=texts)))
    assert "| Name | Qty | Price |\n|---|---|---|\n| Apple | 3 | 1.20 |" in md
    assert "| Plum | 7 | 2.05 |" in md


def test_cell_spanning_columns_gives_an_html_table(make_pdf: MakePdf) -> None:
    texts = [(72, 716, "Fruit varieties alongside their respective quantities"), (400, 716, "Price")]
    rows = [("Apple", "3", "1.20"), ("Pear", "12", "0.80"), ("Plum", "7", "2.05")]
    texts += [(x, 700 - 16 * r, cell) for r, row in enumerate(rows) for x, cell in zip((72, 250, 400), row)]
    md = text_md(make_pdf(Page(texts=texts)))
    assert '<th colspan="2">Fruit varieties alongside their respective quantities</th><th>Price</th>' in md
    assert "<td>Pear</td><td>12</td><td>0.80</td>" in md


def test_running_headers_footers_and_page_numbers_are_removed(make_pdf: MakePdf) -> None:
    pages = [Page(texts=[(72, 760, "ACME Quarterly Review"), *body(700, f"Content of page {n} is here."), (300, 40, str(n))])
             for n in range(1, 4)]
    md = text_md(make_pdf(*pages))
    assert "ACME" not in md
    assert md == "Content of page 1 is here.\n\nContent of page 2 is here.\n\nContent of page 3 is here.\n"


def test_page_markers_only_when_asked(make_pdf: MakePdf) -> None:
    path = make_pdf(Page(texts=body(700, "one")), Page(texts=body(700, "two")))
    assert "<!--" not in text_md(path)
    assert text_md(path, page_markers=True) == "<!-- page 1 -->\n\none\n\n<!-- page 2 -->\n\ntwo\n"


def test_two_columns_are_read_one_after_the_other(make_pdf: MakePdf) -> None:
    left = body(700, "left column starts here and", "left column goes on and on", "left column ends here now.")
    right = body(700, "right column starts here too", "right column goes on as well", "right column ends here now.", x=330)
    md = text_md(make_pdf(Page(texts=[(72, 740, "A Title Across", "F2", 18), *left, *right])))
    assert md.index("left column ends") < md.index("right column starts")
    assert md.index("A Title Across") < md.index("left column starts")


def test_monospace_lines_are_fenced_code(make_pdf: MakePdf) -> None:
    prose = body(700, "The entry point of the program is short enough", "to quote in full, as it is below:")
    page = Page(texts=[*prose, (72, 664, "def main():", "F3", 10), (72, 652, "    return 1", "F3", 10)])
    assert "```\ndef main():\n    return 1\n```" in text_md(make_pdf(page))


def test_rotated_page_reads_in_display_order(make_pdf: MakePdf) -> None:
    page = Page(texts=body(700, "first line of the page", "second line of the page"), rotate=90)
    md = text_md(make_pdf(page))
    assert md.index("first line") < md.index("second line")


def _span(text: str, x0: float) -> Span:
    return Span(text, x0, 0.0, x0 + 8 * len(text), 10.0, 10.0, False, False, False, 0)


def test_right_to_left_words_come_out_in_logical_order() -> None:
    # Visual order, left to right, of the Hebrew line "שלום עולם 2024 abc" ("2024 abc" stays LTR).
    spans = [_span("2024", 0), _span("abc", 40), _span("עולם", 80), _span("שלום", 120)]
    assert make_line(spans).text == "שלום עולם 2024 abc"


def _grid(xs: list[float], ys: list[float]) -> list[tuple[float, float, float, float]]:
    """Rules of a full grid: every column edge and every row edge."""
    return [(x, ys[-1], x, ys[0]) for x in xs] + [(xs[0], y, xs[-1], y) for y in ys]


def test_ruled_table_cells_come_from_the_rules(make_pdf: MakePdf) -> None:
    # Columns only 6 pt apart (text alignment would merge them) and a cell wrapped over two lines.
    xs, ys = [70, 130, 170, 230], [700, 684, 656, 640]
    texts = [(72, 689, "Model"), (132, 689, "Mean"), (172, 689, "Std"),
             (72, 673, "alpha"), (72, 661, "beta"), (132, 667, "0.965"), (172, 667, "0.912"),
             (72, 645, "gamma"), (132, 645, "0.881"), (172, 645, "0.734")]
    md = text_md(make_pdf(Page(texts=texts, lines=_grid(xs, ys))))
    assert "| Model | Mean | Std |\n|---|---|---|\n| alpha beta | 0.965 | 0.912 |\n| gamma | 0.881 | 0.734 |" in md


def test_ruled_header_without_inner_border_spans_columns(make_pdf: MakePdf) -> None:
    xs, ys = [70, 170, 270, 370], [700, 684, 668, 652]
    lines = [line for line in _grid(xs, ys) if line[0] != 270] + [(270, 652, 270, 684)]  # none beside the header
    texts = [(72, 689, "Fruit"), (172, 689, "Quantities"), (72, 673, "Kind"), (172, 673, "2023"), (272, 673, "2024"),
             (72, 657, "Apple"), (172, 657, "3"), (272, 657, "5")]
    md = text_md(make_pdf(Page(texts=texts, lines=lines)))
    assert '<tr><th>Fruit</th><th colspan="2">Quantities</th></tr>' in md
    assert "<tr><td>Apple</td><td>3</td><td>5</td></tr>" in md


def test_a_box_around_a_paragraph_is_not_a_table(make_pdf: MakePdf) -> None:
    texts = body(700, "A note in a box is still a paragraph", "and reads as one.")
    md = text_md(make_pdf(Page(texts=texts, lines=_grid([66, 400], [715, 680]))))
    assert md == "A note in a box is still a paragraph and reads as one.\n"


def test_small_lines_beside_a_big_title_stay_separate_lines(make_pdf: MakePdf) -> None:
    texts = [(50, 700, "Title in a big font", "F1", 20), *body(706, "some text with", "a smaller font", "on multiple lines",
                                                                x=400, leading=9)]
    md = text_md(make_pdf(Page(texts=[(t[0], t[1], t[2], "F1", 10) if len(t) == 3 else t for t in texts])))
    assert "some text with a smaller font on multiple lines" in md


def test_characters_on_different_lines_do_not_make_one_span() -> None:
    above, below = (85.0, 619.0, 144.0, 736.0), (85.0, 367.0, 142.0, 484.0)
    assert not spans_module._continuous(above, below, 4)
    stacked_top, stacked_next = (100.0, 700.0, 110.0, 706.0), (100.0, 694.0, 110.0, 700.0)
    assert spans_module._continuous(stacked_top, stacked_next, 2, vertical=True)


def test_reversed_right_to_left_ligature_is_put_back(monkeypatch: object) -> None:
    boxes = {0: (2.0, 0.0, 3.0, 1.0), 1: (1.0, 0.0, 2.0, 1.0), 2: (0.0, 0.0, 1.0, 1.0), 3: (0.0, 0.0, 1.0, 1.0)}
    monkeypatch.setattr(spans_module, "_char_box", lambda _tp, i, _rect: boxes[i])  # type: ignore[attr-defined]
    # "کالای" read as "کاالی": the lam-alef glyph (one box) came out alef first; a real alef-lam (two boxes) stays.
    assert spans_module._logical_clusters(None, "کاال", 0, None) == "کالا"
    boxes[3] = (-1.0, 0.0, 0.0, 1.0)
    assert spans_module._logical_clusters(None, "کاال", 0, None) == "کاال"


def test_two_columns_of_long_unspaced_lines_are_prose_not_a_table(make_pdf: MakePdf) -> None:
    # Lines written with few spaces (as CJK text is) but running the full width of two columns.
    left = [f"Leftcolumnline{n}runsfullwidthwithoutspaces end" for n in range(5)]
    right = [f"Rightcolumnline{n}runsfullwidthwithoutspaces end" for n in range(5)]
    md = text_md(make_pdf(Page(texts=[*body(700, *left, x=40), *body(700, *right, x=330)])))
    assert "|" not in md and md.index("Leftcolumnline4") < md.index("Rightcolumnline0")


def test_table_between_horizontal_rules_only(make_pdf: MakePdf) -> None:
    # Booktabs style: top rule, rule under a two-line header, bottom rule; no vertical lines, only one body row.
    texts = [(72, 712, "Method"), (200, 712, "Precision"), (300, 712, "Recall"), (200, 700, "(%)"), (300, 700, "(%)"),
             (72, 680, "Ours"), (200, 680, "90"), (300, 680, "88")]
    md = text_md(make_pdf(Page(texts=texts, lines=[(70, 724, 360, 724), (70, 694, 360, 694), (70, 672, 360, 672)])))
    assert "| Method | Precision (%) | Recall (%) |\n|---|---|---|\n| Ours | 90 | 88 |" in md


def test_a_paragraph_between_two_rules_is_not_a_table(make_pdf: MakePdf) -> None:
    texts = body(705, "A note between two rules is a paragraph", "and reads as one piece of text.")
    lines = [(70, 718, 400, 718), (70, 685, 400, 685), (70, 660, 400, 660)]
    md = text_md(make_pdf(Page(texts=[*texts, *body(672, "Key     Value")], lines=lines)))
    assert "|" not in md and "A note between two rules is a paragraph and reads as one piece of text." in md


def test_a_body_line_that_opens_two_pages_alike_is_not_a_running_head(make_pdf: MakePdf) -> None:
    # Both pages open a section with the same sentence under different titles: repeated, but not at the edge.
    opening = "Lorem ipsum dolor sit amet, consetetur sadipscing elitr, sed diam"
    pages = [Page(texts=[(72, 740, title, "F2", 14), *body(710, opening, "nonumy eirmod tempor invidunt ut labore",
                                                           "et dolore magna aliquyam erat, sed diam", f"voluptua {title}."),
                         (300, 40, str(n))]) for n, title in enumerate(["Code Example", "Formula"], 1)]
    md = text_md(make_pdf(*pages))
    assert md.count(opening) == 2
    assert md.endswith("voluptua Formula.\n")


def test_a_table_on_a_right_to_left_page_reads_from_the_right() -> None:
    def span(text: str, x0: float, y0: float) -> Span:
        return Span(text, x0, y0, x0 + 8 * len(text), y0 + 10, 10.0, False, False, False, 0)

    rows = [("1403/09/19", "תאריך"), ("1403/10/04", "אישור"), ("436", "מספר")]
    spans = [span(text, x, 700 - 20 * r) for r, row in enumerate(rows) for x, text in zip((100, 300), row)]
    tables = [item for item in ordered_items(build_rows(spans)) if isinstance(item, Table)]
    assert [row[0] for row in tables[0].cells] == ["תאריך", "אישור", "מספר"]


def test_text_that_reads_as_an_html_tag_is_escaped(make_pdf: MakePdf) -> None:
    md = text_md(make_pdf(Page(texts=body(700, "Write @<Clear the arrays@> to name the section."))))
    assert md == "Write @&lt;Clear the arrays@> to name the section.\n"


def test_a_hyphen_before_a_capital_at_a_line_end_is_kept() -> None:
    # 'Schwarz-Weiß' broken after its hyphen is one compound; 'Bundes-republik' was hyphenated.
    assert join_lines(["Bilder in Schwarz\x02", "Weiß und in der Bundes\x02", "republik"]) == (
        "Bilder in Schwarz-Weiß und in der Bundesrepublik")
