"""Golden tests of the stage-1 parser, one per generation: recorded answers -> the elements upstream would crop.

Each expected list was worked out by hand from upstream's own functions, not from this parser:
- 1.0: bytedance/Dolphin 6043b32 utils/utils.py `parse_layout_string` (`[x1,y1,x2,y2] label`),
  `process_coordinates` (int(c * side), clamped per box, a box overlapping the previous one starts at its
  bottom, at least 1 px) and `adjust_box_edges`; 4c09bb3 demo_page_hf.py `process_elements` (crops > 3 px are read,
  reading_order counts every parsed entry).
- 1.5: 05f0df1 utils/utils.py `parse_layout_string` (split on [PAIR_SEP] / [RELATION_SEP], the label
  is the first `][...]`) and `process_coordinates` (round(c / 896 * side), x2/y2 + 1, same overlap rule);
  demo_page.py 05f0df1 `process_elements`.
- v2: demo_page.py 762eb48 `process_elements` (an answer not starting with '[' and ending with ']' is read as
  `distorted_page`, as is one where `check_bbox_overlap` finds more than 25 % of all parsed boxes with IoU > 0.1
  to another; no trimming, duplicates read twice) and utils/utils.py 5270fee `parse_layout_string`,
  `process_coordinates` (int(c * page / grid), clamped, at least 1 px).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from pdf2md.convert.dolphin.layout import LayoutElement, PageGeometry, parse_layout, whole_page
from pdf2md.convert.dolphin.profiles import PROFILES, Profile

FIXTURES = Path(__file__).parent / "fixtures"
LETTER = PageGeometry.centred(692, 896)
"""A US-letter page rendered with its long side at 896 px, centred in the 896 square: 102 px of padding each side."""
V2_LETTER = PageGeometry.resized(692, 896, grid=(700, 896))
"""The same page as Dolphin v2 sees it: unpadded, its processor resizing it to multiples of 28."""
P10, P15, PV2 = PROFILES["1.0"], PROFILES["1.5"], PROFILES["v2"]


def _answer(name: str) -> str:
    return (FIXTURES / f"{name}.txt").read_text()


def test_1_0_golden() -> None:
    expected = [
        LayoutElement("title", (107, 44, 788, 89), 0),
        LayoutElement("para", (107, 107, 788, 358), 1),
        # 2: the nested para starts at the previous bottom (358) and ends at 359: 1 px high, not read
        LayoutElement("tab", (107, 376, 788, 537), 3),
        # 4: the repeated tab shrinks to (107, 537, 788, 538): not read
        LayoutElement("para", (107, 555, 896, 627), 5),  # x2 = 1.01: this box alone is clamped to the square
        LayoutElement("equ", (107, 645, 448, 806), 6),
        # the prose line and the truncated last entry do not match
    ]
    assert parse_layout(_answer("layout_1_0"), LETTER, P10) == expected


def test_1_5_golden() -> None:
    expected = [
        LayoutElement("title", (120, 40, 781, 91), 0),
        LayoutElement("para", (120, 100, 781, 401), 1),
        # 2: nested, shrinks to (200, 401, 501, 402); 4: the repeated tab, (120, 601, 781, 602): not read
        LayoutElement("tab", (120, 420, 781, 601), 3),
        LayoutElement("cap", (120, 610, 781, 641), 5),  # its tag [tabcap] is not the label
        LayoutElement("equ", (120, 650, 451, 701), 6),
        # '[500,650,780,700]' has no label: not an entry
    ]
    assert parse_layout(_answer("layout_1_5"), LETTER, P15) == expected


V2_EXPECTED = [
    LayoutElement("sec_0", (148, 72, 543, 98), 0),
    LayoutElement("para", (138, 120, 553, 168), 1),
    LayoutElement("para", (59, 350, 336, 620), 2),
    LayoutElement("para", (98, 400, 138, 420), 3),  # nested (IoU 0.01): v2 keeps it whole
    LayoutElement("tab", (355, 350, 632, 520), 4),
    LayoutElement("tab", (355, 350, 632, 520), 5),  # the duplicate pair: 2 of 10 boxes overlap (20 % <= 25 %)
    LayoutElement("cap", (355, 524, 632, 548), 6),
    LayoutElement("watermark", (7, 300, 29, 700), 7),
    LayoutElement("code", (59, 708, 336, 800), 8),
    LayoutElement("fig", (355, 560, 632, 800), 9),
]


def test_v2_golden() -> None:
    assert parse_layout(_answer("layout_v2"), V2_LETTER, PV2) == V2_EXPECTED


def test_v2_counts_every_box_before_it_trusts_the_layout() -> None:
    crossing = _answer("layout_v2") + "[PAIR_SEP][380,600,620,780][para]"  # crosses the figure: 4 of 11 overlap
    assert parse_layout(crossing, V2_LETTER, PV2) == []


def test_a_truncated_v2_answer_is_read_whole() -> None:
    assert parse_layout(_answer("layout_v2") + "[PAIR_SEP][360,800,", V2_LETTER, PV2) == []
    assert parse_layout(" " + _answer("layout_v2"), V2_LETTER, PV2) == []


@pytest.mark.parametrize("profile", [P10, P15])
def test_1x_never_reads_a_page_whole_because_boxes_overlap(profile: Profile) -> None:
    crossing = "[0.1,0.1,0.6,0.5] para\n[0.3,0.2,0.9,0.6] para" if profile is P10 else "[90,90,540,450][para][PAIR_SEP][270,180,800,540][para]"
    first, second = parse_layout(crossing, LETTER, profile)
    assert second.box[1] == first.box[3]  # the second box starts where the first ends


def test_each_generation_reads_only_its_own_format() -> None:
    assert parse_layout(_answer("layout_1_5"), LETTER, P10) == []
    assert parse_layout(_answer("layout_1_0"), LETTER, P15) == []


def _page_with_a_text_line(rows: tuple[int, int]) -> Image.Image:
    """The padded square (black padding) with a white page and one black bar: a line of text at `rows`."""
    square = Image.new("RGB", (896, 896), "black")
    square.paste(Image.new("RGB", (692, 896), "white"), (102, 0))
    ImageDraw.Draw(square).rectangle((200, rows[0], 499, rows[1]), fill="black")
    return square


def test_1_0_widens_an_edge_that_cuts_a_text_line() -> None:
    # box (152, 250, 546, 304): the bottom edge runs through the line (rows 300-309); upstream moves it down
    # one pixel at a time, and row 310 is the first with no transitions (score 0 <= 0.2)
    (element,) = parse_layout("[0.17,0.28,0.61,0.34] para", LETTER, P10, _page_with_a_text_line((300, 309)))
    assert element.box == (152, 250, 546, 310)
    (unadjusted,) = parse_layout("[0.17,0.28,0.61,0.34] para", LETTER, P10)
    assert unadjusted.box == (152, 250, 546, 304)


def test_1_0_gives_up_after_fifteen_pixels() -> None:
    # the line runs to row 339: fifteen steps (to 319) never lower the score, so the box is kept as written
    (element,) = parse_layout("[0.17,0.28,0.61,0.34] para", LETTER, P10, _page_with_a_text_line((300, 339)))
    assert element.box == (152, 250, 546, 304)


def test_only_1_0_adjusts_edges() -> None:
    page = _page_with_a_text_line((300, 309))
    (element,) = parse_layout("[152,250,546,304][para]", LETTER, P15, page)
    assert element.box == (152, 250, 547, 305)


@pytest.mark.parametrize("text", ["", "no layout at all", "[1,2,3] para", "[0.1,0.2,0.3,0.4]", "[-0.1,0.2,0.3,0.4] para"])
def test_unusable_1_0_answers_give_nothing(text: str) -> None:
    assert parse_layout(text, LETTER, P10) == []


def test_a_box_thinner_than_four_pixels_is_not_read() -> None:
    assert parse_layout("[0.1,0.1,0.1,0.1] para", LETTER, P10) == []  # clamped to 1 x 1 px
    assert parse_layout("[100,100,102,300][para]", LETTER, P15) == []  # 3 px wide with the +1


def test_whole_page_fallback_reads_the_page_only() -> None:
    assert whole_page(LETTER, "para") == [LayoutElement("para", (102, 0, 794, 896), 0)]
