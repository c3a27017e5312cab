"""Tables from aligned text: runs of rows split into several fragments that share column slots.

Readers find a cell's column heading in the rows above the body and its row heading in the stub column.
So the header is as deep as the rows above the first row label (or below a heading that groups columns),
stacked header lines over the same columns are one heading, a heading centred over a gap between columns
spans them, a label alone on its row (a section of a statement) is a row of its own, and a currency sign
set apart from its amount belongs to that amount's cell.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pdf2md.convert.text.layout import Line, Row, make_line

MIN_ROWS = 3
MAX_ROW_GAP = 2.5
"""Rows further apart than this many line heights do not belong to the same table."""
MIN_FILLED_ROWS = 0.6
"""Share of a table's rows that must have at least two cells."""
PROSE_LINE_WORDS = 8
"""A fragment with this many words is a line of running text; it ends any table run."""
PROSE_WORDS = 4.5
"""Two or more 'columns' whose fragments average this many words are columns of text, not a table."""
PROSE_EMS = 15.0
"""...or this many line heights of width: scripts written without spaces between words (CJK) have few 'words'."""
MIN_SIDE_LINES = 3
"""Lines of running text each side of a gutter needs before the page counts as two columns."""
MAX_LABEL_ROWS = 2
"""Consecutive rows holding only a label in the stub column (sections of a statement) a table may carry."""
MAX_HEADER_ROWS = 3
"""Rows above the first row label that can still be column headings."""
_FIGURE = re.compile(r"^[-+−–(]?[$€£¥₹]?\s?[\d.,]*\d[\d.,]*\s?%?\)?[*†‡a-d]?$|^[-–—]$")
"""An amount, a measurement or a dash standing for none: what the body of a numeric table holds."""
MARKER_GAP = 3.0
"""A list marker at most this many line heights left of its text belongs to it."""
_CURRENCY = frozenset("$€£¥₹")
_MARKER = re.compile(r"^(\(?(\d{1,3}|[a-z]|[ivx]{1,4})[.)]|[•●▪◦○■□►▸‣⁃∙·*–-])$", re.IGNORECASE)
"""A list item's bullet or number on its own."""


@dataclass(slots=True)
class Table:
    """Cells by row; `spans[r][c]` is how many column slots cell c of row r covers; the first
    `header_rows` rows are column headings."""

    cells: list[list[str]]
    spans: list[list[int]]
    lines: list[Line]
    x0: float
    y0: float
    x1: float
    y1: float
    header_rows: int = 1

    def mirrored(self) -> Table:
        """The table with its columns in right-to-left order: how a reader of a right-to-left page reads it
        (the first column is the rightmost)."""
        return Table(cells=[row[::-1] for row in self.cells], spans=[row[::-1] for row in self.spans], lines=self.lines,
                     x0=self.x0, y0=self.y0, x1=self.x1, y1=self.y1, header_rows=self.header_rows)

    def markdown(self) -> str:
        """A pipe table, or HTML when a cell spans columns or the header has several rows (pipe tables
        cannot say either)."""
        if self.header_rows > 1 or any(n > 1 for row in self.spans for n in row):
            return self._html()
        width = max(sum(row) for row in self.spans)
        rows = [[_pipe_cell(c) for c in cells] + [""] * (width - len(cells)) for cells in self.cells]
        out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
        out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(out)

    def _html(self) -> str:
        """The header rows in `<thead>` as `<th>`, the body in `<tbody>`. A heading with nothing under it in
        the header rows below (the stub's heading, a column's heading beside a group's) spans those rows,
        so a reader finds it over its column and not an empty cell."""
        depth = min(self.header_rows, len(self.cells))
        rows = _lifted(self.cells[:depth], self.spans[:depth]) + self.cells[depth:]
        down = _rowspans(rows[:depth], self.spans[:depth])
        out = ["<table>", "<thead>"] if depth else ["<table>"]
        for r, (cells, spans) in enumerate(zip(rows, self.spans)):
            if r == depth:
                out += ["</thead>", "<tbody>"] if depth else ["<tbody>"]
            tag = "th" if r < depth else "td"
            tds = "".join(f"<{tag}{_span('rowspan', down.get((r, i), 1))}{_span('colspan', n)}>{html.escape(c)}</{tag}>"
                          for i, (c, n) in enumerate(zip(cells, spans)) if down.get((r, i), 1) > 0)
            out.append(f"<tr>{tds}</tr>")
        out += ["</tbody>", "</table>"] if len(self.cells) > depth else ["</thead>", "</table>"]
        return "\n".join(out)


def _same_extent(starts: list[list[int]], spans: list[list[int]], r: int, i: int, below: int) -> int | None:
    """The index of the cell of header row `below` over exactly the columns of cell i of row r, if any."""
    j = next((j for j, at in enumerate(starts[below]) if at == starts[r][i]), None)
    return j if j is not None and spans[below][j] == spans[r][i] else None


def _lifted(cells: list[list[str]], spans: list[list[int]]) -> list[list[str]]:
    """Header rows with a heading that has only empty cells above it (the stub's heading, a column beside
    the groups of the others, set on the header's last line) moved up into the topmost of them: it heads
    its column from the top of the header, as the other columns' group headings do."""
    out = [list(row) for row in cells]
    starts = [[sum(row[:i]) for i in range(len(row))] for row in spans]
    for r in range(len(out) - 1):
        for i, text in enumerate(out[r]):
            below, j = r + 1, _same_extent(starts, spans, r, i, r + 1) if not text else None
            while j is not None and not out[below][j] and below + 1 < len(out):
                below, j = below + 1, _same_extent(starts, spans, r, i, below + 1)
            if j is not None and out[below][j]:
                out[r][i], out[below][j] = out[below][j], ""
    return out


def _rowspans(cells: list[list[str]], spans: list[list[int]]) -> dict[tuple[int, int], int]:
    """For header cells: how many rows each spans (absent: 1), 0 for an empty cell that a heading above
    covers. A heading spans down while the rows below hold, over exactly its columns, one empty cell."""
    starts = [[sum(row[:i]) for i in range(len(row))] for row in spans]
    out: dict[tuple[int, int], int] = {}
    for r, row in enumerate(cells):
        for i, text in enumerate(row):
            if not text or out.get((r, i)) == 0:
                continue
            below = r + 1
            while below < len(cells):
                j = _same_extent(starts, spans, r, i, below)
                if j is None or cells[below][j] or out.get((below, j)) == 0:
                    break
                out[(below, j)] = 0
                below += 1
            if below > r + 1:
                out[(r, i)] = below - r
    return out


def _span(name: str, n: int) -> str:
    return f' {name}="{n}"' if n > 1 else ""


def _pipe_cell(text: str) -> str:
    return text.replace("|", "\\|")


def with_header(cells: list[list[str]], spans: list[list[int]],
                known: int = 1) -> tuple[list[list[str]], list[list[int]], int]:
    """The rows with stacked heading lines joined, and how many rows are column headings.

    The first `known` rows are headings whatever they hold (those above a rule under the header). Rows
    above the first row that has a label in the stub column are headings when most rows below have one
    (the stub's own heading is often left blank); a row with a cell spanning columns groups the headings
    of the row below it; a row of words over columns of figures heads them. Heading rows over the same
    columns are one heading set in two lines.
    """
    n = len(cells)
    depth = max(1, min(known, n - 1))
    labelled = [bool(row[0]) for row in cells]
    first_label = labelled.index(True) if any(labelled) else n
    if first_label <= MAX_HEADER_ROWS and first_label < n - 1 and sum(labelled) >= MIN_FILLED_ROWS * (n - first_label):
        depth = max(depth, first_label)
    while depth < min(n - 1, MAX_HEADER_ROWS) and (_groups(cells[depth - 1], spans[depth - 1], cells[depth], spans[depth])
                                                   or _words_over_figures(cells, depth)):
        depth += 1
    head_cells, head_spans = [cells[0]], [spans[0]]
    for row, row_spans in zip(cells[1:depth], spans[1:depth]):
        if row_spans == head_spans[-1]:
            head_cells[-1] = [" ".join(t for t in (a, b) if t) for a, b in zip(head_cells[-1], row)]
        else:
            head_cells.append(row)
            head_spans.append(row_spans)
    return head_cells + cells[depth:], head_spans + spans[depth:], len(head_cells)


def _groups(cells: list[str], spans: list[int], below: list[str], below_spans: list[int]) -> bool:
    """Whether a row heads groups of columns: a cell past the stub spans columns that the row below
    fills with headings of their own."""
    starts = [sum(spans[:i]) for i in range(len(spans))]
    below_starts = [sum(below_spans[:i]) for i in range(len(below_spans))]
    for i in range(1, len(cells)):
        if spans[i] > 1 and cells[i]:
            under = [t for t, at in zip(below, below_starts) if starts[i] <= at < starts[i] + spans[i] and t]
            if len(under) >= 2:
                return True
    return False


def _words_over_figures(cells: list[list[str]], r: int) -> bool:
    """Whether row r holds only words past the stub while the rows below hold mostly figures there."""
    words = [c for c in cells[r][1:] if c]
    below = [c for row in cells[r + 1:] for c in row[1:] if c]
    return (bool(words) and not any(_FIGURE.match(c) for c in words)
            and sum(bool(_FIGURE.match(c)) for c in below) >= MIN_FILLED_ROWS * len(below))


def find_tables(rows: list[Row]) -> list[Table]:
    """Every run of rows that lines up in columns like a table does.

    On a page of two text columns (or two pages side by side) a table in one column and short lines of the
    other (list items, a formula) share rows; read together they make one false table over both. So where
    a gutter parts the running text, each side is searched on its own too: a table across the gutter stands
    only where both sides are tabular within its height (a wide table set over both columns), else the
    side's own tables replace it.

    Rows are changed in place where a currency sign stands apart from its amount (see join_signs)."""
    tables = _find_in_run_of(rows, join=True)
    gutter = _gutter(rows)
    if gutter is None or not any(_straddles(table, gutter) for table in tables):
        return tables
    sides = [_find_in_run_of([Row(part) for row in rows if (part := [ln for ln in row.lines if keep(ln)])], join=False)
             for keep in (lambda ln: ln.x1 <= gutter, lambda ln: ln.x0 >= gutter)]
    out = [table for table in tables if not _straddles(table, gutter)]
    for table in (t for t in tables if _straddles(t, gutter)):
        within = [[t for t in side if t.y0 < table.y1 and t.y1 > table.y0] for side in sides]
        out.extend([table] if all(within) or not any(within) else within[0] + within[1])
    out += [t for side in sides for t in side if t not in out and not any(_overlaps(t, o) for o in out)]
    return out


def _overlaps(a: Table, b: Table) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _straddles(table: Table, gutter: float) -> bool:
    """Whether a table found from aligned text has lines on both sides of the gutter."""
    return any(ln.x1 <= gutter for ln in table.lines) and any(ln.x0 >= gutter for ln in table.lines)


def _gutter(rows: list[Row]) -> float | None:
    """An x that lines of running text on both sides keep clear of (at most a tenth of them cross it, a
    title or an abstract set across both columns): the gutter between two columns of text."""
    prose = [ln for row in rows for ln in row.lines if ln.text.count(" ") + 1 >= PROSE_LINE_WORDS]
    if len(prose) < 2 * MIN_SIDE_LINES:
        return None
    for x in sorted({round(ln.x1) for ln in prose}):
        left = sum(ln.x1 <= x + 1 for ln in prose)
        right = sum(ln.x0 > x + 1 for ln in prose)
        if left >= MIN_SIDE_LINES and right >= MIN_SIDE_LINES and len(prose) - left - right <= 0.1 * len(prose):
            return (x + 1 + min(ln.x0 for ln in prose if ln.x0 > x + 1)) / 2
    return None


def _find_in_run_of(rows: list[Row], join: bool) -> list[Table]:
    tables: list[Table] = []
    run: list[Row] = []
    for row in rows:
        if join:
            join_signs(row)
            _join_marker(row)
        prose = any(line.text.count(" ") + 1 >= PROSE_LINE_WORDS for line in row.lines)
        several = len(row.lines) >= 2 and not prose
        lone = len(row.lines) == 1 and not prose and bool(run) and _may_continue(run, row.lines[0])
        if run and (not (several or lone) or _far_below(run[-1], row)):
            tables.extend(_table_from_run(run))
            run = []
        if several or (lone and run):
            run.append(row)
    tables.extend(_table_from_run(run))
    return tables


def join_signs(row: Row) -> None:
    """A currency sign set apart from the amount after it (a column of '$' in a statement) joins that amount."""
    if len(row.lines) < 2 or not any(line.text in _CURRENCY for line in row.lines[:-1]):
        return
    out: list[Line] = []
    for line in row.lines:
        if out and out[-1].text in _CURRENCY and (line.text[:1].isdigit() or line.text[:1] in ("(", "-")):
            sign = out.pop()
            joined = make_line(sign.spans + line.spans)
            joined.text = sign.text + line.text
            out.append(joined)
        else:
            out.append(line)
    row.lines[:] = out


def _join_marker(row: Row) -> None:
    """A list item's number or bullet set a tab away from its text is one line with it, not a column."""
    if len(row.lines) != 2:
        return
    marker, text = row.lines
    if (_MARKER.match(marker.text) and text.text[:1].isalpha()
            and text.x0 - marker.x1 < MARKER_GAP * max(marker.height, text.height)):
        joined = make_line(marker.spans + text.spans)
        joined.text = marker.text + " " + text.text
        row.lines[:] = [joined]


def _may_continue(run: list[Row], line: Line) -> bool:
    """A row of one fragment stays in a table: a wrapped cell under a full row, or a label in the stub
    column (left of every other column) under a few rows of the table."""
    if len(run[-1].lines) >= 2:
        return True
    last_full = next((row for row in reversed(run) if len(row.lines) >= 2), None)
    if last_full is None:
        return False
    lone = 0
    for row in reversed(run):
        if len(row.lines) >= 2:
            break
        lone += 1
    return lone < MAX_LABEL_ROWS and line.x1 < last_full.lines[1].x0 and line.x0 < last_full.lines[0].x1


def _far_below(above: Row, below: Row) -> bool:
    height = max(line.height for line in above.lines)
    return above.y0 - below.y1 > MAX_ROW_GAP * height


def _table_from_run(run: list[Row]) -> list[Table]:
    while run and len(run[-1].lines) < 2:
        run = run[:-1]
    if len(run) < MIN_ROWS and not (len(run) == 2 and min(len(r.lines) for r in run) >= 3):
        return []
    slots = _column_slots(run)
    if len(slots) < 2 or _looks_like_prose(run, slots):
        return []
    placed = _place_rows(run, slots)
    if sum(sum(bool(c) for c in cells) >= 2 for cells, _ in placed) < MIN_FILLED_ROWS * len(placed):
        return []
    cells, spans, header_rows = with_header([c for c, _ in placed], [s for _, s in placed])
    lines = [line for row in run for line in row.lines]
    return [Table(
        cells=cells,
        spans=spans,
        lines=lines,
        x0=min(line.x0 for line in lines),
        y0=min(line.y0 for line in lines),
        x1=max(line.x1 for line in lines),
        y1=max(line.y1 for line in lines),
        header_rows=header_rows,
    )]


def _column_slots(run: list[Row]) -> list[tuple[float, float]]:
    """Column x-ranges from the rows with the most cells (a spanning header must not merge columns)."""
    most = max(len(row.lines) for row in run)
    full = [row for row in run if len(row.lines) == most]
    basis = full if len(full) >= 2 else [row for row in run if len(row.lines) >= max(2, most - 1)]
    intervals = sorted((line.x0, line.x1) for row in basis for line in row.lines)
    slots: list[list[float]] = []
    for x0, x1 in intervals:
        if slots and x0 <= slots[-1][1]:
            slots[-1][1] = max(slots[-1][1], x1)
        else:
            slots.append([x0, x1])
    return [(a, b) for a, b in slots]


def _looks_like_prose(run: list[Row], slots: list[tuple[float, float]]) -> bool:
    words: list[list[int]] = [[] for _ in slots]
    ems: list[list[float]] = [[] for _ in slots]
    for row in run:
        for line in row.lines:
            slot = max(range(len(slots)), key=lambda i: min(slots[i][1], line.x1) - max(slots[i][0], line.x0))
            words[slot].append(line.text.count(" ") + 1)
            ems[slot].append((line.x1 - line.x0) / max(line.height, 1.0))
    wordy = sum(1 for counts, widths in zip(words, ems)
                if counts and (sum(counts) / len(counts) >= PROSE_WORDS or _upper_quartile(widths) >= PROSE_EMS))
    return wordy >= 2


def _upper_quartile(values: list[float]) -> float:
    """Most of a text column's lines run its full width; a heading or a number in it must not hide that."""
    ordered = sorted(values)
    return ordered[(3 * len(ordered)) // 4]


def _place_rows(run: list[Row], slots: list[tuple[float, float]]) -> list[tuple[list[str], list[int]]]:
    """Rows as cells. A lone fragment under a filled cell continues it (wrapped text), except in the stub
    column, where only a lower-case start continues a label; a label alone on its row whose words go on,
    lower-case, in the stub of the row below (amounts set beside a label's last line) is joined to it."""
    placed: list[tuple[list[str], list[int]]] = []
    for row in run:
        cells, spans = _place(row, slots)
        filled = [i for i, c in enumerate(cells) if c]
        above = placed[-1][0] if placed else []
        if above and len(filled) == 1 and len(row.lines) == 1:
            i = filled[0]
            if i < len(above) and above[i] and (i > 0 or _continues_label(above[0], cells[0])):
                above[i] += " " + cells[i]
                continue
        elif (above and len(filled) >= 2 and cells[0] and _continues_label(above[0], cells[0])
              and not any(above[1:]) and not above[0].endswith(":")):
            cells[0] = above[0] + " " + cells[0]
            placed[-1] = (cells, spans)
            continue
        placed.append((cells, spans))
    return placed


def _grouped(line: Line, lines: list[Line], under: tuple[float, float], slots: list[tuple[float, float]]) -> list[int]:
    """The columns a heading over the rule `under` groups: those under the rule nearer to it than to any
    other heading over the same rule (one rule drawn under several groups' headings is shared out)."""
    heads = [(ln.x0 + ln.x1) / 2 for ln in lines if under[0] <= (ln.x0 + ln.x1) / 2 <= under[1]]
    middle = (line.x0 + line.x1) / 2
    return [i for i, (a, b) in enumerate(slots) if a >= under[0] - 1 and b <= under[1] + 1
            and min(heads, key=lambda h: abs(h - (a + b) / 2)) == middle]


def _at_slot_gaps(line: Line, slots: list[tuple[float, float]], groups: Sequence[tuple[float, float]]) -> list[Line]:
    """A fragment over several columns split where its words part over the gaps between them, when each
    part then sits flush with its own column ("Under 18 18 years" over two columns of figures set close):
    headings of close columns run together as one fragment. A heading centred over columns stays whole."""
    middle = (line.x0 + line.x1) / 2
    if len(line.spans) < 2 or any(a <= middle <= b for a, b in groups):
        return [line]
    spans = line.spans
    cuts = sorted({max(at, key=lambda k: spans[k].x0 - spans[k - 1].x1)  # the widest word gap over each column gap
                   for (_, a1), (b0, _) in zip(slots, slots[1:])
                   if (at := [k for k in range(1, len(spans)) if a1 <= (spans[k - 1].x1 + spans[k].x0) / 2 <= b0])})
    if not cuts:
        return [line]
    pieces = [make_line(line.spans[i:k]) for i, k in zip([0, *cuts], [*cuts, len(line.spans)])]
    return pieces if all(_flush(piece, slots) for piece in pieces) else [line]


def _flush(piece: Line, slots: list[tuple[float, float]]) -> bool:
    """Whether a piece lies in one column and starts or ends where the column does."""
    inside = [(a, b) for a, b in slots if min(b, piece.x1) - max(a, piece.x0) > 0]
    return len(inside) == 1 and (abs(piece.x1 - inside[0][1]) <= 0.5 * piece.height or abs(piece.x0 - inside[0][0]) <= 0.5 * piece.height)


def _continues_label(label: str, text: str) -> bool:
    return bool(label) and (text[:1].islower() or label.endswith(("-", ",")))


def _place(row: Row, slots: list[tuple[float, float]],
           groups: Sequence[tuple[float, float]] = ()) -> tuple[list[str], list[int]]:
    """A row's cells over the slots: empty slots become empty cells, a wide fragment spans slots, one
    centred over the gap between two columns (a heading grouping them) spans both, and one over a rule in
    `groups` (the extent of a rule drawn under it) spans the columns the rule spans."""
    cells: list[str] = []
    spans: list[int] = []
    index = 0
    lines = [piece for whole in row.lines for piece in _at_slot_gaps(whole, slots, groups)]
    for line in lines:
        covered = [i for i, (a, b) in enumerate(slots) if min(b, line.x1) - max(a, line.x0) > 0]
        middle = (line.x0 + line.x1) / 2
        under = next(((a, b) for a, b in groups if a <= middle <= b), None)
        if under is not None:
            covered = sorted({*covered, *_grouped(line, lines, under, slots)})
        gap = next((i for i in range(len(slots) - 1) if slots[i][1] < middle < slots[i + 1][0]), None)
        if gap is not None and len(row.lines) < len(slots):
            covered = sorted({*covered, gap, gap + 1})
        if not covered:
            covered = [min(range(len(slots)), key=lambda i: abs(slots[i][0] - line.x0))]
        first, last = max(covered[0], index), max(covered[-1], index)
        if first >= len(slots):
            cells[-1] += " " + line.text
            continue
        cells.extend([""] * (first - index))
        spans.extend([1] * (first - index))
        cells.append(line.text)
        spans.append(min(last, len(slots) - 1) - first + 1)
        index = first + spans[-1]
    cells.extend([""] * (len(slots) - index))
    spans.extend([1] * (len(slots) - index))
    return cells, spans
