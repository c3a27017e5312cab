"""Tables as readers see them, checked the way olmOCR-style `table` tests check them: a cell, its
neighbours, and its column and row headings (../shared/tools/score.py's check_table)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from pdf2md.convert import ConvertOptions, convert_pdf
from pdf2md.convert.text.tables import with_header
from tests.convert.pdfgen import Page, write_objects

MakePdf = Callable[..., Path]
SCORER = Path(__file__).resolve().parents[3] / "shared" / "tools" / "score.py"
_WIDTHS = {**dict.fromkeys("0123456789$", 556), ",": 278, ".": 278, "(": 333, ")": 333, " ": 278, "-": 333}
"""Helvetica advance widths (thousandths of an em) of the characters set right-aligned below."""


@pytest.fixture(scope="module")
def scorer() -> ModuleType:
    if not SCORER.is_file():
        pytest.skip(f"the shared scorer is absent ({SCORER}): table tests need its check_table")
    spec = importlib.util.spec_from_file_location("shared_score", SCORER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def text_md(path: Path) -> str:
    return convert_pdf(path, ConvertOptions(backend="text")).markdown


def width(text: str, size: float = 10) -> float:
    return sum(_WIDTHS.get(ch, 556) for ch in text) * size / 1000


def right(x: float, y: float, text: str, font: str = "F1") -> tuple:
    """Text set flush right at x, as numbers in a table column are."""
    return (x - width(text), y, text, font, 10)


def centred(x: float, y: float, text: str) -> tuple:
    return (x - width(text) / 2, y, text, "F1", 10)


def assert_cell(scorer: ModuleType, md: str, cell: str, **relations: str) -> None:
    ok, detail = scorer.check_table({"type": "table", "cell": cell, **relations}, md)
    assert ok, f"{cell} {relations}: {detail}\n{md}"


def results_table(rules: bool) -> Page:
    """A paper's table: two benchmarks, each heading two columns of figures, a stub of model names."""
    texts: list[tuple] = [(72, 720, "We compare the models on two benchmarks and report top-1 and top-5 accuracy in"),
                          (72, 707, "the table below; the best result of each column is discussed in the text.")]
    texts += [centred(265, 640, "CIFAR-10"), centred(425, 640, "ImageNet"), (80, 626, "Model", "F1", 10)]
    columns = [230, 300, 390, 460]
    texts += [right(x, 626, h) for x, h in zip(columns, ["Top-1", "Top-5", "Top-1", "Top-5"])]
    rows = [("ResNet-50", "93.2", "99.1", "76.1", "92.9"), ("ViT-B/16", "98.1", "99.8", "81.8", "95.9"),
            ("ConvNeXt-T", "96.4", "99.5", "82.1", "96.0"), ("Ours", "98.7", "99.9", "83.4", "96.6")]
    y = 626
    for row in rows:
        y -= 14
        texts.append((80, y, row[0], "F1", 10))
        texts += [right(x, y, v) for x, v in zip(columns, row[1:])]
    texts.append((72, y - 40, "The results show that our model is ahead on every benchmark in the comparison."))
    lines = [(72, 655, 470, 655), (180, 637, 310, 637), (340, 637, 470, 637), (72, 622, 470, 622), (72, y - 5, 470, y - 5)]
    return Page(texts=texts, lines=lines if rules else [])


@pytest.mark.parametrize("rules", [False, True], ids=["unruled", "booktabs"])
def test_grouped_column_headings_head_their_columns(make_pdf: MakePdf, scorer: ModuleType, rules: bool) -> None:
    md = text_md(make_pdf(results_table(rules)))
    assert_cell(scorer, md, "81.8", top_heading="Top-1", left_heading="ViT-B/16", up="76.1", right="95.9")
    assert_cell(scorer, md, "81.8", top_heading="ImageNet")
    assert_cell(scorer, md, "99.5", top_heading="CIFAR-10", left="96.4", down="99.9")
    assert_cell(scorer, md, "Top-5", left="Top-1", down="92.9")
    assert "comparison." in md.split("</table>")[-1]


def balance_sheet() -> Page:
    """A statement: stacked date headings over right-aligned amounts, section labels on rows of their own,
    currency signs set apart, negatives in parentheses, and no rules at all."""
    texts: list[tuple] = [(72, 740, "Consolidated Balance Sheets", "F2", 14), (72, 722, "(in millions of dollars)", "F1", 10)]
    texts += [right(400, 700, "December 31,", "F2"), right(500, 700, "December 31,", "F2"),
              right(400, 688, "2023", "F2"), right(500, 688, "2022", "F2")]
    rows = [("Assets", ()), ("Current assets:", ()),
            ("Cash and cash equivalents", ("$", "1,234", "$", "1,100")),
            ("Accounts receivable, net", ("", "567", "", "432")),
            ("Inventories", ("", "890", "", "(45)")),
            ("Total current assets", ("", "2,691", "", "1,487")),
            ("Total assets", ("$", "5,901", "$", "4,492")),
            ("Liabilities", ()),
            ("Accounts payable", ("$", "(312)", "$", "298")),
            ("Net income (loss)", ("", "(1,045)", "", "876"))]
    y = 688
    for label, amounts in rows:
        y -= 14
        texts.append((72, y, label, "F1" if amounts else "F2", 10))
        if amounts:
            sign_a, a, sign_b, b = amounts
            texts += [right(400, y, a), right(500, y, b)]
            texts += [(330, y, sign, "F1", 10) for sign in (sign_a,) if sign]
            texts += [(430, y, sign, "F1", 10) for sign in (sign_b,) if sign]
    texts.append((72, y - 40, "The accompanying notes are an integral part of these consolidated financial statements."))
    return Page(texts=texts)


def test_statement_keeps_its_stub_headings_and_section_rows(make_pdf: MakePdf, scorer: ModuleType) -> None:
    md = text_md(make_pdf(balance_sheet()))
    assert_cell(scorer, md, "(45)", top_heading="December 31, 2022", left_heading="Inventories", up="432")
    assert_cell(scorer, md, "890", left="Inventories", right="(45)", down="2,691")
    assert_cell(scorer, md, "$1,234", left="Cash and cash equivalents", top_heading="December 31, 2023")
    assert_cell(scorer, md, "Current assets:", up="Assets", down="Cash and cash equivalents")
    assert_cell(scorer, md, "Accounts payable", up="Liabilities", right="$(312)")


def test_heading_set_in_two_lines_is_one_heading(make_pdf: MakePdf, scorer: ModuleType) -> None:
    texts: list[tuple] = [(80, 693, "Method", "F1", 10)]
    for x, (top, bottom) in zip([250, 330, 410], [("Train", "time (h)"), ("Peak", "memory"), ("Test", "error (%)")]):
        texts += [centred(x, 700, top), centred(x, 688, bottom)]
    rows = [("Baseline", "12.5", "16.0", "4.31"), ("Pruned", "8.25", "9.5", "4.52"), ("Distilled", "6.0", "7.75", "4.48")]
    for i, row in enumerate(rows):
        texts.append((80, 669 - 14 * i, row[0], "F1", 10))
        texts += [centred(x, 669 - 14 * i, v) for x, v in zip([250, 330, 410], row[1:])]
    md = text_md(make_pdf(Page(texts=texts)))
    assert_cell(scorer, md, "9.5", top_heading="Peak memory", left_heading="Pruned", right="4.52")
    assert_cell(scorer, md, "Test error (%)", left="Peak memory", down="4.31")


def test_numbered_steps_beside_their_text_are_a_list_not_a_table(make_pdf: MakePdf) -> None:
    steps = [("1.", "Open the valve slowly."), ("2.", "Wait for the pressure to settle."), ("3.", "Close the valve.")]
    texts = [item for i, (n, s) in enumerate(steps) for item in ((72, 600 - 14 * i, n), (100, 600 - 14 * i, s))]
    md = text_md(make_pdf(Page(texts=texts)))
    assert md == "1. Open the valve slowly.\n\n2. Wait for the pressure to settle.\n\n3. Close the valve.\n"


def test_two_columns_of_prose_are_not_a_table(make_pdf: MakePdf) -> None:
    left = ["The committee met in the spring to review", "the proposal and agreed that the budget",
            "should be reviewed again before the end", "of the year, with a report to follow."]
    right_column = ["Members raised several concerns about", "the timing of the work and the cost of",
                    "the new building, which had grown since", "the last estimate was made."]
    texts = [item for i, (a, b) in enumerate(zip(left, right_column)) for item in ((72, 700 - 13 * i, a), (320, 700 - 13 * i, b))]
    md = text_md(make_pdf(Page(texts=texts)))
    assert "|" not in md and "<table>" not in md
    assert "review the proposal" in md and "about the timing" in md


def test_header_depth_from_the_stub_and_from_grouping_headings() -> None:
    cells = [["", "2023", "2022"], ["", "Revenue", "Revenue"], ["Europe", "10", "9"], ["Asia", "7", "6"]]
    joined, spans, depth = with_header(cells, [[1, 1, 1]] * 4)
    assert depth == 1 and joined[0] == ["", "2023 Revenue", "2022 Revenue"] and len(joined) == 3
    grouped = [["", "Sales"], ["Region", "Q1", "Q2"], ["Europe", "10", "9"], ["Asia", "7", "6"]]
    _, _, depth = with_header(grouped, [[1, 2], [1, 1, 1], [1, 1, 1], [1, 1, 1]])
    assert depth == 2
    plain = [["Region", "Q1"], ["Europe", "10"], ["Asia", "7"]]
    assert with_header(plain, [[1, 1]] * 3)[2] == 1


def _two_columns(table_rows: list[tuple], left_items: list[str]) -> Page:
    """Two columns of 9 pt text; under them, short items in the left column beside table rows at the same heights."""
    sentence = "the committee met in the spring and heard every witness twice"
    texts: list[tuple] = []
    for i in range(4):
        texts += [(40, 720 - 11 * i, sentence, "F1", 9), (330, 720 - 11 * i, sentence, "F1", 9)]
    texts += [(50, 640 - 16 * i, item, "F1", 9) for i, item in enumerate(left_items)]
    return Page(texts=[*texts, *table_rows])


def test_a_table_in_one_column_does_not_take_the_other_columns_lines(make_pdf: MakePdf, scorer: ModuleType) -> None:
    rows = [("Group", "State", "CSOs"), ("Children", "12", "34"), ("Women", "56", "78"), ("Migrants", "90", "11")]
    cells = [(x, 640 - 16 * r, text, "F1", 9) for r, row in enumerate(rows) for x, text in zip((340, 450, 520), row)]
    items = ["Yes, at the national level", "Yes, at regional level", "Yes, at the local level", "No"]
    md = text_md(make_pdf(_two_columns(cells, items)))
    assert_cell(scorer, md, "56", top_heading="State", left_heading="Women", up="12")
    assert "\n- Yes, at regional level" in md or "\nYes, at regional level" in md
    assert not any("Yes" in cell for table in scorer.tables(md) for cell in table.texts)


def test_a_wide_table_over_both_columns_stays_one_table(make_pdf: MakePdf, scorer: ModuleType) -> None:
    rows = [("Site", "Depth", "Mass", "Count"), ("North", "12", "3.4", "7"), ("South", "15", "2.9", "9"),
            ("East", "11", "3.1", "4")]
    cells = [(x, 640 - 16 * r, text, "F1", 9) for r, row in enumerate(rows) for x, text in zip((40, 200, 360, 520), row)]
    md = text_md(make_pdf(_two_columns(cells, [])))
    assert_cell(scorer, md, "3.1", top_heading="Mass", left_heading="East", left="11", right="4")


def statistical_abstract(group_rules: bool) -> Page:
    """A statistical table: stub labels run into dot leaders (spaced dots, the label's full stop among
    them), figures in columns, rules above and below the headings and, optionally, vertical rules between
    column groups only (each drawn cell then holds a whole column of figures)."""
    texts: list[tuple] = [(72, 740, "Table 12. Arrests by Sex: 2009", "F2", 12)]
    columns = [240, 300, 380, 440]
    headings = ["All ages", "Under 18", "Male", "Female"]
    texts += [(80, 700, "Offense charged", "F1", 10)] + [right(x, 700, h) for x, h in zip(columns, headings)]
    rows = [("Total", ("11,062.6", "1,540.0", "8,263.3", "1,071.6")), ("Violent crime.", ("467.9", "69.1", "380.2", "56.5")),
            ("Robbery.", ("102.1", "25.5", "90.0", "22.9")), ("Burglary.", ("240.9", "60.3", "205.0", "53.4")),
            ("Arson", ("9.8", "4.3", "8.1", "(X)")), ("Fraud.", ("173.7", "5.1", "98.4", "-"))]
    y = 694
    for label, figures in rows:
        y -= 14
        texts.append((80, y, label, "F1", 10))
        dot = 80 + width(label) + (5 - width(".") if label.endswith(".") else 2.5)  # the full stop in step
        while dot < 200:
            texts.append((dot, y, ".", "F1", 10))
            dot += 5
        texts += [right(x, y, v) for x, v in zip(columns, figures)]
    texts.append((72, y - 40, "Source: a survey of arrests reported by the agencies of every state."))
    lines = [(72, 714, 470, 714), (72, 694, 470, 694), (72, y - 5, 470, y - 5)]
    if group_rules:
        lines += [(200, 714, 200, y - 5), (330, 714, 330, y - 5)]
    return Page(texts=texts, lines=lines)


@pytest.mark.parametrize("group_rules", [False, True], ids=["rules-across", "rules-between-groups"])
def test_dot_leaders_are_the_gap_between_a_label_and_its_figures(make_pdf: MakePdf, scorer: ModuleType,
                                                                  group_rules: bool) -> None:
    md = text_md(make_pdf(statistical_abstract(group_rules)))
    assert_cell(scorer, md, "25.5", left_heading="Robbery", top_heading="Under 18", up="69.1", right="90.0")
    assert_cell(scorer, md, "Burglary", right="240.9", up="Robbery", down="Arson")
    assert_cell(scorer, md, "(X)", left="8.1", top_heading="Female")
    assert ". ." not in md


def test_a_contents_page_keeps_its_leaders_as_text(make_pdf: MakePdf) -> None:
    texts: list[tuple] = [(72, 740, "Contents", "F2", 14)]
    for i, (entry, page) in enumerate([("Preface", "xi"), ("1 Security fundamentals", "1"), ("2 Roles", "7")]):
        y = 710 - 16 * i
        texts.append((72, y, entry + " " + ". " * ((380 - int(width(entry))) // 6)))
        texts.append(right(500, y, page))
    md = text_md(make_pdf(Page(texts=texts)))
    assert "Preface . . ." in md and "1 Security fundamentals . . ." in md


def grouped_census_table() -> Page:
    """Three columns under each of two group headings, the columns set close (their two-line headings run
    into the next column's: "Under 18 18 years"), every rule drawn cell by cell, and the rule under the
    group headings running on from one group to the next."""
    texts: list[tuple] = [(72, 740, "Table 3. Arrests by Sex and Age", "F2", 12)]
    columns = [200, 248, 296, 344, 392, 440]
    texts += [centred(248 - 22, 712, "Total"), centred(392 - 22, 712, "Male")]
    for x in (columns[0], columns[3]):
        texts += [right(x, 696, "All"), right(x + 48, 696, "Under 18"), right(x + 96, 696, "18 years"),
                  right(x + 48, 686, "years"), right(x + 96, 686, "and over")]
    texts.append((80, 686, "Offense charged", "F1", 10))
    rows = [("Total", ("1,062", "154.0", "952.6", "826.3", "107.1", "719.1")),
            ("Robbery", ("102.1", "25.5", "76.6", "90.0", "22.9", "67.1")),
            ("Arson", ("9.8", "4.3", "5.5", "8.1", "3.7", "4.4")),
            ("Fraud", ("173.7", "5.1", "168.5", "98.4", "3.3", "95.0"))]
    y = 686
    for label, figures in rows:
        y -= 14
        texts.append((80, y, label, "F1", 10))
        texts += [right(x, y, v) for x, v in zip(columns, figures)]
    edges = [72, 160, 204, 252, 300, 348, 396, 444]
    segments = list(zip(edges, edges[1:]))
    lines = [(a, 724, b, 724) for a, b in segments] + [(a, 708, b, 708) for a, b in segments[1:]]
    lines += [(a, 682, b, 682) for a, b in segments] + [(a, y - 5, b, y - 5) for a, b in segments]
    return Page(texts=texts, lines=lines)


def test_group_headings_over_a_shared_rule_and_close_column_headings(make_pdf: MakePdf, scorer: ModuleType) -> None:
    md = text_md(make_pdf(grouped_census_table()))
    assert_cell(scorer, md, "22.9", top_heading="Male", left_heading="Robbery", left="90.0", right="67.1")
    assert_cell(scorer, md, "22.9", top_heading="Under 18 years")
    assert_cell(scorer, md, "76.6", top_heading="Total", up="952.6")
    assert_cell(scorer, md, "76.6", top_heading="18 years and over")


def boxed_header_table() -> Page:
    """A statistics office's table in a frame: the header's cells parted by vertical rules, the body's
    columns by none, only a horizontal rule under every row."""
    edges = [84, 170, 250, 330, 410]
    texts: list[tuple] = [(84, 740, "Table 3. Reported cases by country and origin, 2007", "F2", 11)]
    texts += [centred((a + b) / 2, 712, h) for a, b, h in zip(edges, edges[1:], ["Country", "Domestic (%)", "Imported (%)",
                                                                                   "Total (n)"])]
    rows = [("Austria", "0", "100", "1"), ("Germany", "14.3", "76.2", "21"), ("Italy", "0", "0", "76"),
            ("Netherlands", "0", "80.0", "5")]
    for i, row in enumerate(rows):
        y = 692 - 16 * i
        texts.append((88, y, row[0], "F1", 10))
        texts += [centred((a + b) / 2, y, v) for a, b, v in zip(edges[1:], edges[2:], row[1:])]
    bottom = 706 - 16 * len(rows)
    lines = [(84, 724, 410, 724), *((x, 706, x, 724) for x in edges[1:-1]), (84, bottom, 84, 724), (410, bottom, 410, 724)]
    lines += [(84, 706 - 16 * i, 410, 706 - 16 * i) for i in range(len(rows) + 1)]
    return Page(texts=texts, lines=lines)


def test_a_body_ruled_by_horizontals_under_a_boxed_header_keeps_its_columns(make_pdf: MakePdf,
                                                                               scorer: ModuleType) -> None:
    md = text_md(make_pdf(boxed_header_table()))
    assert_cell(scorer, md, "76.2", left="14.3", right="21", top_heading="Imported (%)", left_heading="Germany")
    assert_cell(scorer, md, "Netherlands", up="Italy", right="0")


def drawn_columns_table() -> Page:
    """Columns of figures set so close that their lines run together, parted by vertical rules the table's
    full height; the rules across are only the top, the one under the header and the bottom (the body's
    rows are its lines of text)."""
    edges = [72, 170, 212, 254, 296]
    texts: list[tuple] = [centred((a + b) / 2, 700, h) for a, b, h in zip(edges, edges[1:], ["Category", "Number", "Error",
                                                                                              "Percent"])]
    rows = [("All ages", "291,099", "101,894", "100,000"), ("With a disability", "954,425", "222,894", "180,700"),
            ("Severe disability", "334,947", "363,601", "120,000"), ("Aged 6 and older", "266,752", "434,840", "100,000"),
            ("Needed assistance", "510,996", "565,336", "410,000")]
    for i, row in enumerate(rows):
        y = 682 - 12 * i
        texts.append((75, y, row[0], "F1", 10))
        texts += [right(b - 1, y, v) for b, v in zip(edges[2:], row[1:])]
    bottom = 682 - 12 * len(rows) + 8
    lines = [(72, 712, 305, 712), (72, 694, 305, 694), (72, bottom, 305, bottom)]
    lines += [(x, bottom, x, 712) for x in edges]
    return Page(texts=texts, lines=lines)


def test_drawn_columns_part_close_figures_where_the_body_rows_are_not_ruled(make_pdf: MakePdf,
                                                                           scorer: ModuleType) -> None:
    md = text_md(make_pdf(drawn_columns_table()))
    assert_cell(scorer, md, "222,894", left="954,425", right="180,700", up="101,894", down="363,601", top_heading="Error")
    assert "|---|" in md  # one header row and no spans: a pipe table


def test_a_multi_row_header_is_an_html_thead_with_spans(make_pdf: MakePdf, scorer: ModuleType) -> None:
    """The stub's heading, set on the header's last line under nothing, spans both header rows beside the
    group headings, each of which spans its two columns."""
    md = text_md(make_pdf(results_table(rules=True)))
    assert "<thead>" in md and '<th rowspan="2">Model</th>' in md and '<th colspan="2">CIFAR-10</th>' in md
    assert_cell(scorer, md, "CIFAR-10", left="Model", right="ImageNet")
    assert_cell(scorer, md, "Model", down="ResNet-50")


def tall_bullets_pdf(path: Path) -> Path:
    """Two items, each a bullet in a font whose descriptor claims an ascent and a descent of two em (as a
    symbol font's can): pdfium gives the glyph a box four lines tall, reaching over the item above."""
    shown = [(700, "Reported as not relevant"), (686, "Generates missing data")]
    content = b"\n".join(b"BT /F1 10 Tf 72 %d Td (%s) Tj ET BT /F2 12 Tf 60 %d Td (\x95) Tj ET" % (y, t.encode(), y)
                          for y, t in shown)
    objects = [b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
               b"<< /Type /FontDescriptor /FontName /TallBullets /Flags 4 /FontBBox [0 -1500 1000 2500] /ItalicAngle 0"
               b" /Ascent 2500 /Descent -1500 /CapHeight 700 /StemV 80 >>",
               b"<< /Type /Font /Subtype /TrueType /BaseFont /TallBullets /FirstChar 149 /LastChar 149 /Widths [460]"
               b" /FontDescriptor 2 0 R /Encoding /WinAnsiEncoding >>",
               b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
               b"<< /Type /Page /Parent 6 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
               b" /Resources << /Font << /F1 1 0 R /F2 3 0 R >> >> >>",
               b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>",
               b"<< /Type /Catalog /Pages 6 0 R >>"]
    return write_objects(path, objects, 7)


def test_a_bullet_with_a_tall_font_box_stays_on_its_line(tmp_path: Path) -> None:
    """In a table's cell (a list of reasons) as in running text, each bullet marks the item on its own line."""
    md = text_md(tall_bullets_pdf(tmp_path / "bullets.pdf"))
    assert md == "- Reported as not relevant\n\n- Generates missing data\n"
