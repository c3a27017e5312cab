"""Tables drawn with rules: the grid of horizontal and vertical lines gives rows, columns and merged cells.

Text alignment alone cannot tell two close numeric columns apart, nor a wrapped cell from a new row;
drawn borders can. Rules that touch form one grid; a grid needs two rows and two columns of text.
"""

from __future__ import annotations

from dataclasses import dataclass

from pdf2md.convert.text.layout import build_rows
from pdf2md.convert.text.spans import FIGURE, Rect, Span
from pdf2md.convert.text.tables import Table, with_header

SNAP = 2.0
"""Rules this close (points) are the same grid line; touching rules are within this distance."""
MAX_RULE_PAIRS = 40_000
"""Pages with more horizontal x vertical rules than this are drawings, not tables: skipped."""
MIN_FILLED_CELLS = 3
MAX_MEAN_CELL_CHARS = 200
"""Boxes whose cells hold this much text on average are framed prose (columns in a border), not a table."""
COARSE_ROWS = 4
"""Lines of figures side by side in this many rows of one drawn cell row: the rules only frame column groups."""


@dataclass(slots=True)
class Rule:
    at: float  # y of a horizontal rule, x of a vertical one
    lo: float
    hi: float


@dataclass(slots=True)
class _Grid:
    xs: list[float]  # column edges, left to right
    ys: list[float]  # row edges, top to bottom
    horizontal: list[Rule]
    vertical: list[Rule]


def find_ruled_tables(spans: list[Span], rules: list[Rect]) -> tuple[list[Table], list[Span]]:
    """Tables whose cells are drawn, and the spans that are not in any of them."""
    horizontal = joined_rules([Rule((y0 + y1) / 2, x0, x1) for x0, y0, x1, y1 in rules if x1 - x0 >= y1 - y0])
    vertical = joined_rules([Rule((x0 + x1) / 2, y0, y1) for x0, y0, x1, y1 in rules if x1 - x0 < y1 - y0])
    if len(horizontal) < 2 or len(vertical) < 2 or len(horizontal) * len(vertical) > MAX_RULE_PAIRS:
        return [], spans
    tables: list[Table] = []
    rest = spans
    for grid in _grids(horizontal, vertical):
        inside = [s for s in rest if _inside(s, grid)]
        table = _table(grid, inside) if inside else None
        if table is not None:
            tables.append(table)
            taken = {id(s) for s in inside}
            rest = [s for s in rest if id(s) not in taken]
    return tables, rest


def joined_rules(rules: list[Rule]) -> list[Rule]:
    """Collinear rules that touch as one: borders (and rules under column groups) are often drawn cell by
    cell. banded.py joins its horizontal rules with it too."""
    out: list[Rule] = []
    for rule in sorted(rules, key=lambda r: (round(r.at / SNAP), r.lo)):
        last = out[-1] if out else None
        if last and abs(rule.at - last.at) <= SNAP and rule.lo <= last.hi + SNAP:
            last.hi = max(last.hi, rule.hi)
        else:
            out.append(Rule(rule.at, rule.lo, rule.hi))
    return out


def _grids(horizontal: list[Rule], vertical: list[Rule]) -> list[_Grid]:
    """Connected sets of touching rules with at least two row and two column edges each."""
    parent = list(range(len(horizontal) + len(vertical)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, h in enumerate(horizontal):
        for j, v in enumerate(vertical):
            if h.lo - SNAP <= v.at <= h.hi + SNAP and v.lo - SNAP <= h.at <= v.hi + SNAP:
                parent[root(i)] = root(len(horizontal) + j)
    groups: dict[int, tuple[list[Rule], list[Rule]]] = {}
    for i, h in enumerate(horizontal):
        groups.setdefault(root(i), ([], []))[0].append(h)
    for j, v in enumerate(vertical):
        groups.setdefault(root(len(horizontal) + j), ([], []))[1].append(v)
    grids = []
    for hs, vs in groups.values():
        if not hs or not vs:
            continue
        # Where rules stop counts as an edge too: open-sided tables draw no outer verticals.
        xs = _snap([v.at for v in vs] + [min(h.lo for h in hs), max(h.hi for h in hs)])
        ys = _snap([h.at for h in hs] + [min(v.lo for v in vs), max(v.hi for v in vs)])[::-1]
        if len(xs) >= 3 and len(ys) >= 3:
            grids.append(_Grid(xs, ys, hs, vs))
    return grids


def _snap(values: list[float]) -> list[float]:
    """Sorted positions with near-duplicates (double rules, thick borders) merged."""
    out: list[float] = []
    for v in sorted(values):
        if not out or v - out[-1] > SNAP:
            out.append(v)
    return out


def _inside(span: Span, grid: _Grid) -> bool:
    cx, cy = (span.x0 + span.x1) / 2, (span.y0 + span.y1) / 2
    return grid.xs[0] < cx < grid.xs[-1] and grid.ys[-1] < cy < grid.ys[0]


def _table(grid: _Grid, spans: list[Span]) -> Table | None:
    """The grid's cells filled with its spans; None unless it reads as a table (rows and columns of text)."""
    by_row = _by_row(grid, spans)
    coarse = [r for r, placed in by_row.items() if _coarse(placed)]
    if coarse:
        if not all(_one_line_per_cell(by_row[r]) for r in coarse):
            return None
        grid = _split_rows(grid, [by_row[r] for r in coarse])
        by_row = _by_row(grid, spans)
    n_rows, n_cols = len(grid.ys) - 1, len(grid.xs) - 1
    anchor = _anchors(grid, n_rows, n_cols)
    _open_rows(anchor, by_row)
    texts: dict[tuple[int, int], list[Span]] = {}
    for r, placed in by_row.items():
        for c, span in placed:
            texts.setdefault(anchor[r][c], []).append(span)
    filled = {key: _cell_text(group) for key, group in texts.items()}
    if len(filled) < MIN_FILLED_CELLS or len({c for _, c in filled}) < 2 or len({r for r, _ in filled}) < 2:
        return None
    if sum(map(len, filled.values())) > MAX_MEAN_CELL_CHARS * len(filled):
        return None
    cells, spans_out, depth = with_header(*_rows(grid, anchor, filled, n_rows, n_cols))
    return Table(cells=cells, spans=spans_out, lines=[], x0=grid.xs[0], y0=grid.ys[-1], x1=grid.xs[-1], y1=grid.ys[0],
                 header_rows=depth)


def _by_row(grid: _Grid, spans: list[Span]) -> dict[int, list[tuple[int, Span]]]:
    """The spans of each grid row, with the grid column each one's middle falls in."""
    n_rows, n_cols = len(grid.ys) - 1, len(grid.xs) - 1
    by_row: dict[int, list[tuple[int, Span]]] = {}
    for span in spans:
        cx, cy = (span.x0 + span.x1) / 2, (span.y0 + span.y1) / 2
        r = next(i for i in range(n_rows) if cy >= grid.ys[i + 1])
        c = next(i for i in range(n_cols) if cx <= grid.xs[i + 1])
        by_row.setdefault(r, []).append((c, span))
    return by_row


def _one_line_per_cell(placed: list[tuple[int, Span]]) -> bool:
    """Whether no drawn column of a drawn row holds two lines of text side by side: the drawn columns are
    the table's columns (a line may run over a rule, figures set too close to stand apart as lines), only
    the rows between the body's lines are not drawn."""
    column = {id(span): c for c, span in placed}
    for row in build_rows([span for _, span in placed]):
        columns = [{column[id(span)] for span in line.spans} for line in row.lines]
        if sum(map(len, columns)) > len({c for cs in columns for c in cs}):
            return False
    return True


def _split_rows(grid: _Grid, coarse: list[list[tuple[int, Span]]]) -> _Grid:
    """The grid with a row edge between consecutive lines of text in each coarse row: a table that rules its
    header and its columns but not the rows of its body (the lines of text are the rows)."""
    cuts: list[float] = []
    for placed in coarse:
        rows = build_rows([span for _, span in placed])
        cuts += [(upper.y0 + lower.y1) / 2 for upper, lower in zip(rows, rows[1:])]
    ys = sorted({*grid.ys, *cuts}, reverse=True)
    drawn = [Rule(y, grid.xs[0], grid.xs[-1]) for y in cuts]
    return _Grid(grid.xs, ys, grid.horizontal + drawn, grid.vertical)


def _coarse(placed: list[tuple[int, Span]]) -> bool:
    """Whether one drawn row holds a table of its own: COARSE_ROWS lines or more that run across three
    of its cells or more, mostly figures (a statistical table ruled between column groups only, where
    each drawn cell holds a whole column of figures). Read as drawn, every figure of a column would
    fall into one cell; the lines' alignment tells the real rows."""
    column = {id(span): c for c, span in placed}
    aligned = 0
    for row in build_rows([span for _, span in placed]):
        spans = [span for line in row.lines for span in line.spans]
        figures = sum(bool(FIGURE.fullmatch(span.text)) for span in spans)
        aligned += len({column[id(span)] for span in spans}) >= 3 and 2 * figures > len(spans)
    return aligned >= COARSE_ROWS


def _anchors(grid: _Grid, n_rows: int, n_cols: int) -> list[list[tuple[int, int]]]:
    """For every grid cell, the top-left cell of the merged cell it belongs to (no border between them)."""
    at_x = [[rule for rule in grid.vertical if abs(rule.at - x) <= SNAP] for x in grid.xs]
    at_y = [[rule for rule in grid.horizontal if abs(rule.at - y) <= SNAP] for y in grid.ys]
    anchor = [[(r, c) for c in range(n_cols)] for r in range(n_rows)]
    for r in range(n_rows):
        mid_y = (grid.ys[r] + grid.ys[r + 1]) / 2
        for c in range(n_cols):
            mid_x = (grid.xs[c] + grid.xs[c + 1]) / 2
            if c and not _crossed(at_x[c], mid_y):
                anchor[r][c] = anchor[r][c - 1]
            elif r and not _crossed(at_y[r], mid_x) and anchor[r - 1][c][1] == c:
                anchor[r][c] = anchor[r - 1][c]
    return anchor


def _open_rows(anchor: list[list[tuple[int, int]]], by_row: dict[int, list[tuple[int, Span]]]) -> None:
    """Rows that no vertical rule crosses, but whose text stands apart in several columns, get a cell
    per column: tables that draw their columns' borders in the header only and rule the body with
    horizontal lines alone (every row a band). A row whose text is one line across is a spanning row
    (a section label) and stays one cell."""
    for r, placed in by_row.items():
        row = anchor[r]
        if len(row) < 2 or any(key != row[0] for key in row):
            continue
        fragments = [line for band in build_rows([span for _, span in placed]) for line in band.lines]
        column = {id(span): c for c, span in placed}
        if len({column[id(line.spans[0])] for line in fragments}) >= 2 and all(
                len({column[id(span)] for span in line.spans}) == 1 for line in fragments):
            anchor[r] = [(r, c) for c in range(len(row))]


def _crossed(rules: list[Rule], mid: float) -> bool:
    """Whether one of the rules on a grid line spans the point `mid` along it: a border between two cells."""
    return any(rule.lo - SNAP <= mid <= rule.hi + SNAP for rule in rules)


def _cell_text(spans: list[Span]) -> str:
    return " ".join(line.text for row in build_rows(spans) for line in row.lines)


def _rows(grid: _Grid, anchor: list[list[tuple[int, int]]], filled: dict[tuple[int, int], str],
          n_rows: int, n_cols: int) -> tuple[list[list[str]], list[list[int]]]:
    """Cells row by row with column spans; rows and columns without any text are left out."""
    used_cols = sorted({c for r in range(n_rows) for c in range(n_cols) if anchor[r][c] in filled})
    cells: list[list[str]] = []
    spans: list[list[int]] = []
    for r in range(n_rows):
        if not any(anchor[r][c] in filled and anchor[r][c][0] == r for c in used_cols):
            continue
        row_cells: list[str] = []
        row_spans: list[int] = []
        previous: tuple[int, int] | None = None
        for c in used_cols:
            key = anchor[r][c]
            if key == previous and key[0] == r:
                row_spans[-1] += 1
                continue
            row_cells.append(filled.get(key, "") if key[0] == r else "")
            row_spans.append(1)
            previous = key
        cells.append(row_cells)
        spans.append(row_spans)
    return cells, spans
