"""Page furniture on one page alone (issue 18 class 1, issue 22 class 3), and the body text next to it that must stay.

Each fixture is a one-page PDF, so repetition across pages cannot help: what is found is found by position,
type size, isolation and shape. Assertions are olmOCR-style: furniture absent, body sentences present.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pdf2md.convert import ConvertOptions, convert_pdf
from tests.convert.pdfgen import Page

MakePdf = Callable[..., Path]

PARAGRAPH = [
    "The committee reviewed every submission received during the period and found",
    "that most of them followed the agreed format, with a few exceptions noted below.",
    "Those exceptions were returned to their authors together with a short note that",
    "explained what had to change before the next meeting of the working group.",
]


def text_md(path: Path) -> str:
    return convert_pdf(path, ConvertOptions(backend="text")).markdown


def body(y: float, lines: list[str], x: float = 72, leading: float = 14, size: float = 11) -> list[tuple]:
    return [(x, y - i * leading, line, "F1", size) for i, line in enumerate(lines)]


def paragraphs(top: float, count: int) -> list[tuple]:
    """`count` paragraphs of body text from `top` down, a blank line between them."""
    return [item for n in range(count) for item in body(top - n * 70, PARAGRAPH)]


def test_small_running_head_date_and_folio_are_dropped(make_pdf: MakePdf) -> None:
    page = Page(texts=[
        (72, 750, "ACME Technical Note 42", "F1", 9), (400, 750, "Network Security Practice", "F1", 9),
        (72, 739, "February 2024", "F1", 9),
        *paragraphs(700, 6),
        (300, 40, "7", "F1", 9),
    ])
    md = text_md(make_pdf(page))
    for furniture in ("ACME Technical Note", "Network Security Practice", "February 2024"):
        assert furniture not in md
    assert not md.rstrip().endswith("7")
    assert md.startswith("The committee reviewed every submission")
    assert md.count("explained what had to change before the next meeting") == 6


def test_folio_at_the_outer_end_takes_its_running_head_along(make_pdf: MakePdf) -> None:
    page = Page(texts=[(72, 740, "12", "F1", 11), (330, 740, "CHAPTER 3. RESULTS AND METHODS", "F1", 11),
                       *paragraphs(700, 5)])
    md = text_md(make_pdf(page))
    assert "CHAPTER 3" not in md and not md.startswith("12")
    assert md.startswith("The committee reviewed")


def test_site_doi_and_download_stamps_are_dropped(make_pdf: MakePdf) -> None:
    page = Page(texts=[
        (380, 760, "www.example-journal.org/reports", "F1", 12),
        *paragraphs(700, 5),
        (72, 50, "JOURNAL OF EXAMPLES | 5 : 8555 | DOI: 10.1234/jex.8555", "F1", 10), (530, 50, "3", "F2", 10),
        (72, 30, "Downloaded from https://example.org on 3 May 2023", "F1", 8),
    ])
    md = text_md(make_pdf(page))
    for furniture in ("example-journal.org", "DOI: 10.1234", "Downloaded from"):
        assert furniture not in md
    assert md.count("The committee reviewed every submission") == 5


def test_stamp_up_the_side_margin_is_dropped_but_rotated_pages_are_read(make_pdf: MakePdf) -> None:
    stamp = (580, 200, "Downloaded by a reader on 3 May 2023", "F1", 8, 0, 90)
    md = text_md(make_pdf(Page(texts=[*paragraphs(700, 4), stamp])))
    assert "Downloaded by" not in md and "The committee reviewed" in md
    sideways = [(300 - 14 * i, 100, line, "F1", 11, 0, 90) for i, line in enumerate(PARAGRAPH)]
    assert "explained what had to change" in text_md(make_pdf(Page(texts=sideways)))


def test_title_body_near_the_margins_and_footnote_are_kept(make_pdf: MakePdf) -> None:
    # A held-out-like page: a big bold title in the top band, body text running close to the top and bottom
    # edges, a footnote with a raised mark at the foot of the page.
    page = Page(texts=[
        (72, 755, "A Study of Committee Work", "F2", 18),
        *body(725, PARAGRAPH), *paragraphs(650, 7),
        (72, 36, "1", "F1", 6), (76, 33, "The working group met four times in the year under review.", "F1", 8),
    ])
    md = text_md(make_pdf(page))
    assert md.startswith("# A Study of Committee Work")
    assert md.count("The committee reviewed every submission") == 8
    assert "The working group met four times in the year under review." in md


def test_last_line_of_a_paragraph_alone_at_the_top_is_kept(make_pdf: MakePdf) -> None:
    # The end of a paragraph carried over from the previous page, then a gap (a figure) before the body.
    page = Page(texts=[(72, 740, "of the results."), *paragraphs(640, 5)])
    md = text_md(make_pdf(page))
    assert md.startswith("of the results.")


def test_plain_running_head_standing_apart_is_dropped(make_pdf: MakePdf) -> None:
    page = Page(texts=[(420, 740, "J. Doe et al."), *paragraphs(690, 5)])
    md = text_md(make_pdf(page))
    assert "Doe" not in md and md.startswith("The committee reviewed")


def test_table_of_contents_numbers_are_not_folios(make_pdf: MakePdf) -> None:
    entries = ["Introduction", "Background", "Methods", "Results", "Discussion", "Appendix", "Index"]
    texts = [item for i, entry in enumerate(entries)
             for item in ((72, 700 - 90 * i, entry, "F1", 11), (520, 700 - 90 * i, str(3 + 4 * i), "F1", 11))]
    md = text_md(make_pdf(Page(texts=texts)))
    assert "Introduction" in md and "Index" in md and "27" in md


def test_small_author_line_on_a_cover_page_is_kept(make_pdf: MakePdf) -> None:
    # A cover has no running text to measure furniture against: its display lines all stay.
    page = Page(texts=[(250, 700, "JANE Q. AUTHOR", "F1", 16),
                       *[(250, 500 - 30 * i, word, "F1", 24) for i, word in enumerate(("THE", "LONG", "ROAD", "HOME"))]])
    md = text_md(make_pdf(page))
    assert "JANE Q. AUTHOR" in md and "HOME" in md


def test_folio_and_running_foot_in_display_type_and_the_line_under_them_are_dropped(make_pdf: MakePdf) -> None:
    # a statistical compendium's foot: page number and section title set large right under the last
    # note, the publication's name small beneath them (no space sets them apart, only their type)
    last = 740 - 8 * 70 - 3 * 14
    page = Page(texts=[*paragraphs(740, 9), (72, last - 16, "206 Law Enforcement, Courts, and Prisons", "F1", 14),
                       (300, last - 26, "U.S. Census Bureau, Statistical Abstract of the United States: 2012", "F1", 9)])
    md = text_md(make_pdf(page))
    assert "Law Enforcement" not in md and "Census Bureau" not in md
    assert md.count("explained what had to change before the next meeting") == 9


def test_a_numbered_heading_in_body_type_near_the_foot_is_kept(make_pdf: MakePdf) -> None:
    last = 740 - 8 * 70 - 3 * 14
    page = Page(texts=[*paragraphs(740, 9), (72, last - 30, "12 Apples and Oranges", "F1", 11),
                       *body(last - 50, PARAGRAPH[:2])])
    md = text_md(make_pdf(page))
    assert "12 Apples and Oranges" in md


# --- issue 22, class 3: banners, running heads and footers on one page, and the body beside them ---------


def test_journal_banner_with_volume_date_and_folio_on_one_line_is_dropped(make_pdf: MakePdf) -> None:
    page = Page(texts=[(72, 750, "Journal of Applied Examples, Vol. 26, No. 2, March 2020, pp. 101-120", "F1", 8),
                       (530, 750, "103", "F1", 8), *paragraphs(700, 6)])
    md = text_md(make_pdf(page))
    assert "Journal of Applied Examples" not in md and "103" not in md
    assert md.startswith("The committee reviewed every submission")


def test_article_folio_glued_to_a_running_title_is_no_heading(make_pdf: MakePdf) -> None:
    # an article-number folio and the short title set as one bold line over the body: no '## 26:2 ...'
    page = Page(texts=[(72, 745, "26:2 Committee Work in Practice", "F2", 11), *paragraphs(700, 6)])
    md = text_md(make_pdf(page))
    assert "Committee Work in Practice" not in md
    assert md.startswith("The committee reviewed every submission")


def test_a_numbered_heading_at_the_top_of_a_page_is_kept(make_pdf: MakePdf) -> None:
    page = Page(texts=[(72, 745, "2.6 Committee Work in Practice", "F2", 11), *paragraphs(700, 6)])
    assert "Committee Work in Practice" in text_md(make_pdf(page))


def test_downloaded_from_stamp_alone_at_the_foot_is_dropped(make_pdf: MakePdf) -> None:
    page = Page(texts=[*paragraphs(700, 6),
                       (160, 40, "Downloaded from journals.example.com by guest on 12 June 2024", "F1", 7)])
    md = text_md(make_pdf(page))
    assert "Downloaded from" not in md
    assert md.rstrip().endswith("before the next meeting of the working group.")


def test_manual_running_head_over_a_rule_is_dropped(make_pdf: MakePdf) -> None:
    # a manual's section running head in body type, its edition date at the right, ruled off the body
    page = Page(texts=[(72, 745, "Hydro Network Data Model, Edition 1.0"), (494, 745, "2004-06"),
                       (72, 712, "Overview", "F2", 12), *paragraphs(690, 6)],
                lines=[(72, 740, 540, 740)])
    md = text_md(make_pdf(page))
    assert "Hydro Network" not in md and "2004-06" not in md
    assert md.startswith("**Overview**") or md.startswith("#") or md.startswith("Overview")


def test_running_head_over_a_typed_rule_is_dropped(make_pdf: MakePdf) -> None:
    page = Page(texts=[(380, 745, "Presentation of Findings"), (72, 733, "_" * 84), *paragraphs(690, 6)])
    md = text_md(make_pdf(page))
    assert "Presentation of Findings" not in md and "____" not in md
    assert md.startswith("The committee reviewed every submission")


def test_multi_line_footer_with_series_number_and_large_folio_is_dropped(make_pdf: MakePdf) -> None:
    page = Page(texts=[*paragraphs(700, 6), (510, 42, "ECB", "F2", 7),
                       (440, 28, "Working Paper Series No 1299", "F2", 7), (555, 24, "37", "F2", 18),
                       (490, 18, "February 2011", "F2", 7)])
    md = text_md(make_pdf(page))
    for furniture in ("ECB", "Working Paper Series", "February 2011", "37"):
        assert furniture not in md
    assert md.count("explained what had to change before the next meeting") == 6


def test_caption_and_table_header_over_a_rule_at_the_top_are_kept(make_pdf: MakePdf) -> None:
    # a table at the top of a page: its caption over a rule, and its header row of three cells over another
    page = Page(texts=[(72, 745, "Table A-1. Summary of forecast assumptions", "F2", 10),
                       (72, 722, "Region"), (250, 722, "Growth"), (450, 722, "Share"),
                       *paragraphs(600, 5)],
                lines=[(72, 738, 540, 738), (72, 716, 540, 716)])
    md = text_md(make_pdf(page))
    assert "Table A-1. Summary of forecast assumptions" in md
    assert "Region" in md and "Growth" in md
    # a table continued from the page before: its header row repeated over a rule, no caption
    cells = [(72, 745, "Region"), (250, 745, "Growth"), (450, 745, "Share"),
             *[(x, 722 - 14 * i, text) for i in range(3) for x, text in ((72, f"Area {i}"), (250, f"{i}.5"), (450, f"{i}%"))]]
    md = text_md(make_pdf(Page(texts=[*cells, *paragraphs(600, 5)], lines=[(72, 739, 540, 739)])))
    assert "Region" in md and "Share" in md


def test_underlined_and_boxed_lines_at_the_edge_are_kept(make_pdf: MakePdf) -> None:
    # an underlined line opening the page (the rule is as long as its text: no head rule); a framed
    # formula box whose bottom edge lies over the last two lines, a label that looks like a folio among them
    title = "The Committee and Its Work in Practice over the Past Decade"  # 303 pt wide in Helvetica 11
    page = Page(texts=[(72, 745, title), *paragraphs(728, 6),
                       (110, 100, "Definition 17", "F2", 11), (130, 86, "f(x) = x + 1 for every x in X")],
                lines=[(72, 742, 375, 742), (90, 112, 540, 112), (90, 112, 90, 140), (540, 112, 540, 140)])
    md = text_md(make_pdf(page))
    assert md.startswith(title)
    assert "Definition 17" in md and "f(x) = x + 1 for every x in X" in md


def test_source_note_above_the_folio_is_kept(make_pdf: MakePdf) -> None:
    page = Page(texts=[*paragraphs(700, 6), (72, 120, "Source: LSA Fevrier, 1998"), (300, 40, "98", "F1", 13)])
    md = text_md(make_pdf(page))
    assert md.rstrip().endswith("Source: LSA Fevrier, 1998")
