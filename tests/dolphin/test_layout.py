"""Golden tests of the stage-1 parser on recorded-format layouts (Dolphin 1.0, 1.5 and v2 formats)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdf2md.convert.dolphin.layout import LayoutElement, PageGeometry, parse_layout, whole_page

FIXTURES = Path(__file__).parent / "fixtures"
LETTER = PageGeometry.centred(692, 896)
"""A US-letter page rendered with its long side at 896 px: 102 px of padding left and right."""


def _golden(name: str) -> list[LayoutElement]:
    rows = (line.split() for line in (FIXTURES / f"{name}.expected").read_text().splitlines())
    return [LayoutElement(label, (int(a), int(b), int(c), int(d)), int(order)) for order, label, a, b, c, d in rows]


V2_LETTER = PageGeometry.resized(692, 896, grid=(700, 896))
"""The same page as Dolphin v2 sees it: unpadded, its processor resizing it to multiples of 28."""


@pytest.mark.parametrize(("name", "geometry"), [("layout_v1", LETTER), ("layout_v15", LETTER), ("layout_v2", V2_LETTER)])
def test_recorded_layouts_match_golden(name: str, geometry: PageGeometry) -> None:
    assert parse_layout((FIXTURES / f"{name}.txt").read_text(), geometry) == _golden(name)


def test_malformed_duplicate_and_thin_entries_are_skipped() -> None:
    got = parse_layout((FIXTURES / "layout_v1.txt").read_text(), LETTER)
    labels = [e.label for e in got]
    assert labels.count("fig") == 1  # the duplicate box is gone
    assert "code" in labels  # the line after the malformed ones still counts
    assert len(got) == 18  # 22 lines: 1 truncated, 1 prose, 1 duplicate, 1 one pixel high


def test_boxes_are_clipped_to_the_page_inside_the_padding() -> None:
    header, *_ = parse_layout("[0.0,0.03,1.0,0.05] header", LETTER)
    assert header.box[0] == 102 and header.box[2] == 794


def test_reversed_corners_and_a_slight_overlap() -> None:
    a, b = parse_layout("[0.5,0.3,0.2,0.1] para [0.2,0.28,0.5,0.6] para", LETTER)
    assert a.box == (179, 90, 448, 269)
    assert b.box == (179, 269, 448, 538)  # started inside the previous box: starts below it


def test_a_layout_of_crossing_boxes_is_not_trusted() -> None:
    crossing = "[0.1,0.1,0.6,0.5][para][PAIR_SEP][0.3,0.2,0.9,0.6][para][PAIR_SEP][0.1,0.7,0.9,0.8][para]"
    assert parse_layout(crossing, LETTER) == []  # 2 of 3 boxes overlap another: the page is read whole
    rows = "[PAIR_SEP]".join(f"[0.1,{y / 100},0.9,{(y + 8) / 100}][para]" for y in range(10, 90, 10))
    one_pair_in_ten = rows + "[PAIR_SEP][0.1,0.9,0.9,0.95][para][PAIR_SEP][0.1,0.93,0.9,0.99][para]"
    kept = parse_layout(one_pair_in_ten, LETTER)  # 2 of 10 overlap: the layout stands, the later box is trimmed
    assert len(kept) == 10 and kept[-1].box[1] == kept[-2].box[3]


def test_v2_pixels_count_on_the_processor_grid() -> None:
    page = PageGeometry.resized(692, 896, grid=(700, 896))
    (element,) = parse_layout("[350,448,700,896][para][author]", page)
    assert element.box == (346, 448, 692, 896) and element.label == "para"


def test_pixel_coordinates_scale_with_the_square() -> None:
    small = PageGeometry.centred(448, 448)
    (element,) = parse_layout("[448,448,896,896][para]", small)
    assert element.box == (224, 224, 448, 448)


@pytest.mark.parametrize("text", ["", "no layout at all", "[1,2,3] para", "[0.1,0.1,0.1,0.1] para", "[0.1,0.2,0.3,0.4]"])
def test_unusable_layouts_give_nothing(text: str) -> None:
    assert parse_layout(text, LETTER) == []


def test_whole_page_fallback_reads_the_page_only() -> None:
    assert whole_page(LETTER, "para") == [LayoutElement("para", (102, 0, 794, 896), 0)]
