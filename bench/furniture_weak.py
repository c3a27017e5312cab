"""Page furniture on single pages, checked against the labels multi-page PDFs give for free.

In a document of several pages, a margin line that comes back (digits aside) at the same end of most pages
is a running head, a footer or a folio. Each page is then laid out *alone*, as the converter sees a one-page
PDF, and the furniture rules (`pdf2md.convert.text.furniture`) judge its margin rows without that
knowledge: a row they drop that repeats is a hit, one they drop that does not repeat is over-deletion
(or furniture found only on that page: a first-page banner), a repeated row they keep is a miss.

    .venv/bin/python bench/furniture_weak.py [--half tune|check] [--show] PDF_OR_FOLDER...

`--half` keeps the documents of one half (the split of bench/dev_split.py, by the file's name), so rules
are written looking at one half and checked on the other. The labels are weak: a running head that
alternates between two texts, or changes with each section on fewer pages, counts as body ('over'), so
read the rows `--show` prints before taking an 'over' for lost body text.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.dev_split import half_of  # noqa: E402
from pdf2md.convert.text.banded import find_banded_tables  # noqa: E402
from pdf2md.convert.text.furniture import BAND, split_furniture  # noqa: E402
from pdf2md.convert.text.layout import Row, build_rows  # noqa: E402
from pdf2md.convert.text.ruled import find_ruled_tables  # noqa: E402
from pdf2md.convert.text.spans import Rect, read_page  # noqa: E402

EDGE_ROWS = 4
"""Rows at each end of a page that are labelled (furniture is never deeper)."""
SHARE = 0.4
"""A masked margin line on at least this share of the pages (and on 3) is running furniture."""
MIN_PAGES = 4
CHAPTER_PAGES = 3
"""A line nearest the page's edge on this many pages is a running head too, one that changes with the
chapter (on fewer pages than SHARE)."""
_END_NUMBER = re.compile(r"^(?:page\s*)?(\d{1,4})\b|\b(\d{1,4})$", re.IGNORECASE)


@dataclass
class PageRows:
    """One page as the converter lays it out alone: its main orientation's rows and its frame."""

    rows: list[Row]
    frame: Rect
    rules: list[Rect]


@dataclass
class Labelled:
    """A margin row, whether it repeats across the document, and whether the rules drop it."""

    doc: str
    page: int
    row: Row
    running: bool
    dropped: bool


def page_rows(doc: pdfium.PdfDocument, index: int) -> PageRows | None:
    """The rows of the page's main orientation, before any furniture is taken out (as textlayer._layout)."""
    page = read_page(doc, index)
    spans = [s for s in page.spans if not s.invisible] or page.spans
    if not spans:
        return None
    orients = Counter(s.orient for s in spans)
    orient = orients.most_common(1)[0][0]
    group = [s for s in spans if s.orient == orient]
    rest = group
    if orient == 0:
        _, rest = find_ruled_tables(group, page.rules)
        _, rest = find_banded_tables(rest, page.rules)
    return PageRows(build_rows(rest), page.frame(orient), page.rules if orient == 0 else [])


def _key(text: str) -> str:
    """A margin line's text with digits masked, as textlayer matches running lines. A bare number ('#')
    repeats wherever figures have axes: page numbers are told by their sequence instead (_folio_offsets)."""
    return re.sub(r"\d+", "#", re.sub(r"\s+", "", text.lower()))


def _ends(page: PageRows) -> list[tuple[str, Row]]:
    """The page's margin rows within the band, tagged with the end they are at."""
    height = page.frame[3] - page.frame[1]
    out: list[tuple[str, Row]] = []
    for end, rows in (("top", page.rows[:EDGE_ROWS]), ("foot", page.rows[::-1][:EDGE_ROWS])):
        for row in rows:
            middle = (row.y0 + row.y1) / 2
            depth = page.frame[3] - middle if end == "top" else middle - page.frame[1]
            if depth <= BAND * height:
                out.append((end, row))
    return out


def label_document(path: Path) -> Iterator[Labelled]:
    """Every margin row of every page of a multi-page PDF, labelled by repetition, judged by the rules."""
    doc = pdfium.PdfDocument(str(path))
    try:
        pages = [page_rows(doc, i) for i in range(len(doc))]
    finally:
        doc.close()
    kept = [(i, p) for i, p in enumerate(pages) if p is not None and len(p.rows) >= 4]
    if len(kept) < MIN_PAGES:
        return
    counts: Counter[tuple[str, str]] = Counter()
    outermost: Counter[tuple[str, str]] = Counter()  # the same, as the row nearest the page's edge
    for _, page in kept:
        counts.update({(end, _key(line.text)) for end, row in _ends(page) for line in row.lines})
        outermost.update({(end, _key(line.text)) for end, row in _ends(page) for line in row.lines
                          if row is page.rows[0] or row is page.rows[-1]})
    threshold = max(3, SHARE * len(kept))
    offsets = _folio_offsets(kept, threshold)
    for index, page in kept:
        _, furniture = split_furniture(page.rows, page.frame, page.rules)
        dropped = {id(row) for row in furniture}
        for end, row in _ends(page):
            folio = any(n - index in offsets.get(end, ()) for line in row.lines for n in _numbers(line.text))
            running = folio or all(_key(line.text).strip("#") and (
                counts[(end, _key(line.text))] >= threshold or outermost[(end, _key(line.text))] >= CHAPTER_PAGES)
                for line in row.lines)
            yield Labelled(path.name, index, row, running, id(row) in dropped)


def _numbers(text: str) -> list[int]:
    """The numbers at either end of a margin line: where a page number stands."""
    return [int(a or b) for a, b in _END_NUMBER.findall(text)]


def _folio_offsets(pages: list[tuple[int, PageRows]], threshold: float) -> dict[str, set[int]]:
    """Page number minus page index, at each end, where it holds on enough pages: those numbers are folios
    (a running head whose text changes with the section still carries one)."""
    counts: Counter[tuple[str, int]] = Counter()
    for index, page in pages:
        counts.update({(end, n - index) for end, row in _ends(page) for line in row.lines for n in _numbers(line.text)})
    out: dict[str, set[int]] = {}
    for (end, offset), n in counts.items():
        if n >= threshold:
            out.setdefault(end, set()).add(offset)
    return out


def pdfs(paths: list[Path], half: str | None) -> list[Path]:
    found = sorted({p for path in paths for p in ([path] if path.is_file() else path.rglob("*.pdf"))})
    return [p for p in found if half is None or half_of(p.stem) == half]


def row_text(row: Row) -> str:
    return " | ".join(line.text for line in row.lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", type=Path, nargs="+")
    parser.add_argument("--half", choices=("tune", "check"))
    parser.add_argument("--show", action="store_true", help="print every row the rules get wrong")
    args = parser.parse_args()
    total = Counter[str]()
    print(f"{'document':44} {'rows':>5} {'run':>4} {'hit':>4} {'over':>4} {'miss':>4}")
    for path in pdfs(args.paths, args.half):
        try:
            rows = list(label_document(path))
        except pdfium.PdfiumError:
            continue
        if not rows:
            continue
        c = Counter[str]()
        for r in rows:
            c["rows"] += 1
            c["run"] += r.running
            c["hit"] += r.running and r.dropped
            c["over"] += r.dropped and not r.running
            c["miss"] += r.running and not r.dropped
            if args.show and r.running != r.dropped:
                print(f"   {'OVER' if r.dropped else 'MISS'} p{r.page + 1}: {row_text(r.row)[:110]}")
        total.update(c)
        print(f"{path.name[:44]:44} {c['rows']:5} {c['run']:4} {c['hit']:4} {c['over']:4} {c['miss']:4}")
    recall = total["hit"] / max(1, total["run"])
    precision = total["hit"] / max(1, total["hit"] + total["over"])
    print(f"{'TOTAL':44} {total['rows']:5} {total['run']:4} {total['hit']:4} {total['over']:4} {total['miss']:4}"
          f"   recall {recall:.3f}  precision {precision:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
