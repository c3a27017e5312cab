"""Section titles told by their shape where typography says nothing: body size, body face."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pdf2md.convert import ConvertOptions, convert_pdf
from pdf2md.convert.text.markdown import section_title_level
from tests.convert.pdfgen import Page

MakePdf = Callable[..., Path]
PROSE = ("The samples were collected over two summers from the northern sites",
         "and stored in the cold until the laboratory could process all of them.",
         "Each one was weighed, labelled and measured twice by two people.")


def text_md(path: Path) -> str:
    return convert_pdf(path, ConvertOptions(backend="text")).markdown


def page_with(title: tuple, leading: float = 13) -> Page:
    """A title line at y 700, then a paragraph under it at the usual line spacing."""
    return Page(texts=[title, *[(72, 687 - i * leading, line) for i, line in enumerate(PROSE)]])


@pytest.mark.parametrize(("title", "expected"), [
    ("2.3 Data collection", "### 2.3 Data collection"),
    ("IV. RESULTS", "## IV. RESULTS"),
    ("REFERENCES", "## REFERENCES"),
    ("Article 5", "## Article 5"),
])
def test_a_title_at_body_size_before_a_paragraph_is_a_heading(make_pdf: MakePdf, title: str, expected: str) -> None:
    md = text_md(make_pdf(page_with((72, 700, title))))
    assert md == f"{expected}\n\n{' '.join(PROSE)}\n"


def test_a_numbered_title_in_small_capitals_is_a_heading(make_pdf: MakePdf) -> None:
    md = text_md(make_pdf(page_with((150, 700, "VI. Evaluation", "F1", 7))))
    assert md.startswith("## VI. Evaluation\n\n")


def test_numbered_list_items_stay_a_list(make_pdf: MakePdf) -> None:
    items = [(72, 700 - 15 * i, f"{i + 1}. {fruit}") for i, fruit in enumerate(["Apples", "Oranges", "Pears"])]
    md = text_md(make_pdf(Page(texts=[*items, *[(72, 640 - 13 * i, line) for i, line in enumerate(PROSE)]])))
    assert "#" not in md
    assert md.startswith("1. Apples\n\n2. Oranges\n\n3. Pears\n\n")


def test_capitals_before_a_listing_or_more_capitals_are_not_headings(make_pdf: MakePdf) -> None:
    code = Page(texts=[(72, 700, "SELECT"), (90, 687, "name, id, owner_id, created_at, updated_at"),
                       (90, 674, "FROM accounts WHERE owner_id = 7 ORDER BY name;")])
    cover = Page(texts=[(72, 700, "QUANTUM INFORMATION"), (72, 680, "QUBITS AND PHOTONS"),
                        (72, 660, "ATOMIC AND MOLECULAR INTERACTIONS IN CAVITIES")])
    assert "#" not in text_md(make_pdf(code))
    assert "#" not in text_md(make_pdf(cover))


@pytest.mark.parametrize("text", [
    "J. Smith", "3. Install the package and run it", "2.3 Data collection 12", "Figure 2.1 Results",
    "NEW YORK, NY 10001", "Section 3 describes the method.", "@* [LTMC]", "2.3 million people came.",
])
def test_names_list_items_contents_lines_and_sentences_are_not_titles(text: str) -> None:
    assert section_title_level(text) == 0


def test_a_title_line_does_not_run_into_its_paragraph(make_pdf: MakePdf) -> None:
    # Same face, same size, ordinary line spacing: only the short line and its number set the title apart.
    md = text_md(make_pdf(page_with((72, 700, "4.1 Sampling design"))))
    assert md.startswith("### 4.1 Sampling design\n\nThe samples were collected")
