"""Tables from aligned text: runs of rows split into several fragments that share column slots."""

from __future__ import annotations

import html
from dataclasses import dataclass

from pdf2md.convert.text.layout import Line, Row

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


@dataclass(slots=True)
class Table:
    """Cells by row; `spans[r][c]` is how many column slots cell c of row r covers."""

    cells: list[list[str]]
    spans: list[list[int]]
    lines: list[Line]
    x0: float
    y0: float
    x1: float
    y1: float

    def markdown(self) -> str:
        """A pipe table, or HTML when a cell spans columns (pipe tables cannot say so)."""
        if any(n > 1 for row in self.spans for n in row):
            return self._html()
        width = max(sum(row) for row in self.spans)
        rows = [[_pipe_cell(c) for c in cells] + [""] * (width - len(cells)) for cells in self.cells]
        out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
        out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(out)

    def _html(self) -> str:
        out = ["<table>"]
        for r, (cells, spans) in enumerate(zip(self.cells, self.spans)):
            tag = "th" if r == 0 else "td"
            tds = "".join(f"<{tag}{_colspan(n)}>{html.escape(c)}</{tag}>" for c, n in zip(cells, spans))
            out.append(f"<tr>{tds}</tr>")
        out.append("</table>")
        return "\n".join(out)


def _colspan(n: int) -> str:
    return f' colspan="{n}"' if n > 1 else ""


def _pipe_cell(text: str) -> str:
    return text.replace("|", "\\|")


def find_tables(rows: list[Row]) -> list[Table]:
    """Every run of rows that lines up in columns like a table does."""
    tables: list[Table] = []
    run: list[Row] = []
    for row in rows:
        prose = any(line.text.count(" ") + 1 >= PROSE_LINE_WORDS for line in row.lines)
        several = len(row.lines) >= 2 and not prose
        wrapped_cell = len(row.lines) == 1 and not prose and bool(run) and len(run[-1].lines) >= 2
        if run and (not (several or wrapped_cell) or _far_below(run[-1], row)):
            tables.extend(_table_from_run(run))
            run = []
        if several or (wrapped_cell and run):
            run.append(row)
    tables.extend(_table_from_run(run))
    return tables


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
    lines = [line for row in run for line in row.lines]
    return [Table(
        cells=[cells for cells, _ in placed],
        spans=[spans for _, spans in placed],
        lines=lines,
        x0=min(line.x0 for line in lines),
        y0=min(line.y0 for line in lines),
        x1=max(line.x1 for line in lines),
        y1=max(line.y1 for line in lines),
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
    """Rows as cells; a lone fragment under a filled row continues that row's cell (wrapped text)."""
    placed: list[tuple[list[str], list[int]]] = []
    for row in run:
        cells, spans = _place(row, slots)
        lone = [i for i, c in enumerate(cells) if c]
        if placed and len(lone) == 1 and len(row.lines) == 1:
            above = placed[-1][0]
            if lone[0] < len(above) and above[lone[0]]:
                above[lone[0]] += " " + cells[lone[0]]
                continue
        placed.append((cells, spans))
    return placed


def _place(row: Row, slots: list[tuple[float, float]]) -> tuple[list[str], list[int]]:
    """A row's cells over the slots: empty slots become empty cells, a wide fragment spans slots."""
    cells: list[str] = []
    spans: list[int] = []
    index = 0
    for line in row.lines:
        covered = [i for i, (a, b) in enumerate(slots) if min(b, line.x1) - max(a, line.x0) > 0]
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
