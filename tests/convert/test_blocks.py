"""Paragraphs, headings and reading order measured against the document's own typography."""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from pdf2md.convert import ConvertOptions, convert_pdf
from pdf2md.convert.text import spans as spans_module
from pdf2md.convert.text.layout import Box, Line, reading_order
from tests.convert.pdfgen import Page

MakePdf = Callable[..., Path]

WORDS = "the quick brown fox jumps over the lazy dog again and again".split()


def text_md(path: Path) -> str:
    return convert_pdf(path, ConvertOptions(backend="text")).markdown


def prose(n: int, start: int = 0) -> str:
    return " ".join(WORDS[(start + i) % len(WORDS)] for i in range(n))


def test_wide_line_spacing_joins_lines_and_an_indent_starts_a_paragraph(make_pdf: MakePdf) -> None:
    # 11 pt text with a 20 pt leading: gaps of about 0.6 line heights, wider than the default threshold.
    lines = [(72, 700, "First paragraph opens with a line that runs wide"),
             (72, 680, "and carries on over a second line that is as wide"),
             (72, 660, "and a third line that is about as wide as the rest"),
             (72, 640, "before it ends here."),
             (84, 620, "Second paragraph is indented and runs wide as well"),
             (72, 600, "then wraps on to a second line of the same length"),
             (72, 580, "and ends on this one.")]
    md = text_md(make_pdf(Page(texts=lines)))
    assert md.split("\n\n") == [
        "First paragraph opens with a line that runs wide and carries on over a second line that is as wide "
        "and a third line that is about as wide as the rest before it ends here.",
        "Second paragraph is indented and runs wide as well then wraps on to a second line of the same length "
        "and ends on this one.\n",
    ]


def test_characters_left_out_by_get_text_are_read_one_by_one(monkeypatch: object) -> None:
    # GetText wrote 'abc' for four characters: indices after the gap would point at the wrong boxes.
    chars = "abXc"

    def get_text(_tp: object, _start: int, _n: int, buffer: ctypes.Array) -> int:
        for i, ch in enumerate("abc"):
            buffer[i] = ord(ch)
        return 4

    fake = SimpleNamespace(FPDFText_CountChars=lambda _tp: len(chars), FPDFText_GetText=get_text,
                           FPDFText_GetUnicode=lambda _tp, i: ord(chars[i]))
    monkeypatch.setattr(spans_module, "raw", fake)  # type: ignore[attr-defined]
    assert spans_module._page_text(None) == "abXc"


def test_number_and_heading_beside_a_column_of_text_is_not_a_table(make_pdf: MakePdf) -> None:
    # The left column's short lines (a section number, its title, a subheading) would make its typical
    # line narrow; its long lines still show it is running text.
    left = [(72, 700, "3"), (100, 700, "Problems"), (72, 672, "(1) Scope of it"),
            *[(72, 672 - 14 * i, f"Leftcolumnline{i}runsfullwidthwithoutspaces end") for i in range(1, 3)]]
    right = [(330, 700 - 14 * i, f"Rightcolumnline{i}runsfullwidthwithoutspaces end") for i in range(5)]
    md = text_md(make_pdf(Page(texts=[*left, *right])))
    assert "|" not in md and md.index("Leftcolumnline2") < md.index("Rightcolumnline0")


def _line(text: str, x0: float, y0: float, x1: float, y1: float) -> Box:
    line = Line([], text, x0, y0, x1, y1, y1 - y0, False, False)
    return Box(x0, y0, x1, y1, line)


def test_a_narrow_gap_beside_a_big_title_is_no_column_gutter() -> None:
    # A two-line title with a banner top right: 8 pt between the title and the banner is a word space
    # at this size, so the banner must not split the title's lines apart.
    boxes = [_line("Issued 2 April", 62, 738, 152, 749), _line("Publisher", 62, 722, 147, 733),
             _line("No. 1695", 494, 760, 547, 775), _line("Issues", 412, 711, 529, 738),
             _line("Insurance terms and", 62, 631, 404, 665), _line("their open questions", 62, 590, 469, 624),
             _line("Body text starts here", 77, 524, 534, 537)]
    order = [box.item.text for box in reading_order(boxes, 12.0)]  # type: ignore[attr-defined]
    assert order.index("their open questions") == order.index("Insurance terms and") + 1
    assert order[-1] == "Body text starts here"


def test_dash_before_a_number_is_a_section_number_not_a_bullet(make_pdf: MakePdf) -> None:
    texts = [(72, 700, "-2-5 Scope of supply", "F2", 14), (72, 680, "The scope covers all of the goods."),
             (72, 650, "- a real list item"), (72, 630, "-5 degrees at night")]
    md = text_md(make_pdf(Page(texts=texts)))
    assert re.search(r"^#+ -2-5 Scope of supply$", md, re.MULTILINE)
    assert "- a real list item" in md and "\n-5 degrees at night" in md


def test_parenthesised_list_numbers_keep_their_label(make_pdf: MakePdf) -> None:
    md = text_md(make_pdf(Page(texts=[(72, 700, "1) first note"), (72, 686, "2) second note")])))
    assert "1) first note\n\n2) second note" in md


def test_a_page_set_smaller_than_the_document_has_its_own_headings(make_pdf: MakePdf) -> None:
    # Page 1: the document's body text at 11 pt. Page 2: a brochure page at 7 pt whose 12 pt line and
    # 7 pt bold line head its text, though neither stands out from the document's body text.
    page1 = Page(texts=[(72, 700 - 14 * i, prose(12, i)) for i in range(30)])
    small = [(72, 600 - 9 * i, "brochure " + prose(11, i), "F1", 7) for i in range(6)]
    small2 = [(72, 520 - 9 * i, "brochure " + prose(11, i + 3), "F1", 7) for i in range(6)]
    page2 = Page(texts=[(72, 640, "Highlights", "F1", 12), *small, (72, 540, "What we do", "F2", 7), *small2])
    md = text_md(make_pdf(page1, page2))
    assert re.search(r"^#+ Highlights$", md, re.MULTILINE)
    assert re.search(r"^#+ What we do$", md, re.MULTILINE)
    assert not re.search(r"^#+ (the|brochure)", md, re.MULTILINE)


def test_a_bold_caption_is_not_a_heading(make_pdf: MakePdf) -> None:
    texts = [(72, 700, "Figure 2-1 Sales by region", "F2", 11), (72, 680, "Sales grew in every region this year."),
             (72, 650, "Methods", "F2", 11), (72, 630, "We counted the sales.")]
    md = text_md(make_pdf(Page(texts=texts)))
    assert "\nFigure 2-1 Sales by region" in "\n" + md
    assert re.search(r"^#+ Methods$", md, re.MULTILINE)


def test_code_listing_is_fenced_from_its_first_line(make_pdf: MakePdf) -> None:
    # The opening line sits left of the indented lines under it (no overlap), and a blank line splits the listing.
    code = [(72, 640, "/*"), (93.6, 628, "Return the bounds of a list."), (72, 616, "*/"),  # Courier 9: 5.4 pt a char
            (72, 604, "int bound(list *l) {"), (115.2, 592, "return l->n;"), (72, 580, "}"),
            (72, 556, "int empty(list *l);")]
    page = Page(texts=[(72, 680, "Listings follow the text that introduces them, as here:"),
                       *[(x, y, text, "F3", 9) for x, y, text in code],
                       (72, 520, "Text resumes after the listing.")])
    md = text_md(make_pdf(page))
    assert ("```\n/*\n    Return the bounds of a list.\n*/\nint bound(list *l) {\n        return l->n;\n}\n\n"
            "int empty(list *l);\n```") in md
    assert md.startswith("Listings follow") and md.rstrip().endswith("Text resumes after the listing.")


def test_contact_lines_in_a_large_font_are_not_headings(make_pdf: MakePdf) -> None:
    cover = ["Quarterly Review", "1200 Harbour Street, Suite 5", "Springfield, IL 62704", "info@example.com",
             "Tel. +1 (217) 555-0142", "October 14, 1998"]
    texts = [(72, 720 - 30 * i, line, "F1", 16) for i, line in enumerate(cover)]
    texts += [(72, 520 - 13 * i, prose(12, i), "F1", 10) for i in range(8)]
    md = text_md(make_pdf(Page(texts=texts)))
    assert re.search(r"^#+ Quarterly Review$", md, re.MULTILINE)
    for line in cover[1:]:
        assert re.search(rf"^{re.escape(line)}$", md, re.MULTILINE), line


def test_a_line_starting_with_a_hash_is_text_not_a_heading(make_pdf: MakePdf) -> None:
    page = Page(texts=[(72, 700, "#define MAX_SIZE 100"), (72, 660, "The limit is set once for the whole program.")])
    assert text_md(make_pdf(page)).startswith("\\#define MAX_SIZE 100\n\n")


def test_a_name_initial_is_not_a_list_label_but_lettered_items_are(make_pdf: MakePdf) -> None:
    page = Page(texts=[(72, 700, "J. Aligon, P. Marcel and E. Negre"),
                       (72, 660, "a. the first choice"), (72, 640, "b. the second choice")])
    md = text_md(make_pdf(page))
    assert md.startswith("J. Aligon, P. Marcel and E. Negre\n\n")
    assert "- a. the first choice\n\n- b. the second choice" in md


def test_words_set_apart_without_space_characters_keep_their_spaces(make_pdf: MakePdf) -> None:
    tight = (72, 700, ["Chief", -150, "Operating", -150, "Officer", -150, "and", -150, "the", -150, "firm"], "F1", 10)
    tracked = (72, 680, ["Chief", -120, "Operating", -120, "Officer"], "F1", 10)
    close = (72, 660, ["Chief", -30, "Operating"], "F1", 10)
    md = text_md(make_pdf(Page(texts=[tight, tracked, close])))
    assert "Chief Operating Officer and the firm" in md
    assert md.count("Chief Operating Officer") == 2 and "ChiefOperating" in md


def test_section_numbers_in_a_column_of_their_own_stay_with_their_titles(make_pdf: MakePdf) -> None:
    # a contents page: numbers set at a tab stop in bold, titles led to their page numbers in regular type
    entries = [("1", "OVERVIEW", "6", 0), ("2", "LRS", "6", 0), ("2.1", "LRS model", "7", 12), ("3", "MODEL", "8", 0),
               ("3.1", "LRS model", "9", 12), ("3.1.1", "Logical view", "9", 24)]
    texts: list[tuple] = [(250, 740, "TABLE OF CONTENTS", "F2", 12)]
    for i, (number, title, page, indent) in enumerate(entries):
        y = 700 - 16 * i
        leader = "." * int((400 - indent - 6 * len(title)) / 2.78)
        texts += [(72 + indent, y + 0.4, number, "F2", 10), (110 + indent, y, f"{title} {leader}{page}", "F1", 10)]
    md = text_md(make_pdf(Page(texts=texts)))
    order = [md.find(f"{number} {title} ...") for number, title, _, _ in entries]
    assert -1 not in order and order == sorted(order), md


def test_a_label_and_its_value_on_one_line_read_as_one_line(make_pdf: MakePdf) -> None:
    texts = [(72, 700, prose(14)), (72, 686, prose(14, 3)), (72, 650, "Reference number:"), (300, 650, "AB-2024-0117"),
             (72, 620, prose(14, 5)), (72, 606, prose(9, 2))]
    md = text_md(make_pdf(Page(texts=texts)))
    assert "Reference number: AB-2024-0117" in md
