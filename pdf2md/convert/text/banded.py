"""Tables drawn with horizontal rules only (booktabs style): a top rule, a rule under the header, a bottom rule.

Rules of the same length stacked over each other bound a table; the text between them gives the columns by
its alignment. The rows above the first inner rule are the header; without such a rule it is no table. A band holding a line that runs the
rules' whole width is prose (a boxed note, a page between header and footer rules), never a table.
"""

from __future__ import annotations

from pdf2md.convert.text.layout import Row, build_rows
from pdf2md.convert.text.ruled import Rule, joined_rules
from pdf2md.convert.text.spans import Rect, Span
from pdf2md.convert.text.tables import (
    MIN_FILLED_ROWS,
    Table,
    _column_slots,
    _looks_like_prose,
    _place,
    _place_rows,
    join_signs,
    with_header,
)

MIN_RULE_WIDTH = 60.0
"""Shorter horizontal rules are underlines and strokes of drawings, not table borders."""
SAME_EXTENT = 3.0
"""Rules whose ends are this close (points) belong to the same table."""
MAX_RULES = 200
"""Pages with more horizontal rules are drawings: skipped."""
FULL_WIDTH = 0.8
"""A line this wide a share of the rules' length is a line of prose, not a cell."""


def find_banded_tables(spans: list[Span], rules: list[Rect]) -> tuple[list[Table], list[Span]]:
    """Tables between horizontal rules of equal extent, and the spans that are not in any of them."""
    thin = [Rule((y0 + y1) / 2, x0, x1) for x0, y0, x1, y1 in rules if x1 - x0 >= 4 * (y1 - y0)]
    joined = [(rule.lo, rule.at, rule.hi) for rule in joined_rules(thin)]
    horizontal = sorted((rule for rule in joined if rule[2] - rule[0] >= MIN_RULE_WIDTH), key=lambda r: -r[1])
    if len(horizontal) < 2 or len(horizontal) > MAX_RULES or not spans:
        return [], spans
    groups: list[list[tuple[float, float, float]]] = []
    for rule in horizontal:
        group = next((g for g in groups if abs(g[0][0] - rule[0]) <= SAME_EXTENT
                      and abs(g[0][2] - rule[2]) <= SAME_EXTENT), None)
        if group is None:
            groups.append([rule])
        elif group[-1][1] - rule[1] > SAME_EXTENT:  # a double or thick rule counts once
            group.append(rule)
    tables: list[Table] = []
    rest = spans
    for group in groups:
        if len(group) < 2:
            continue
        for table, taken in _group_tables(group, rest, joined):
            tables.append(table)
            rest = [s for s in rest if id(s) not in taken]
    return tables, rest


def _group_tables(group: list[tuple[float, float, float]], spans: list[Span],
                  horizontal: list[tuple[float, float, float]]) -> list[tuple[Table, set[int]]]:
    """Runs of consecutive bands under the group's rules whose text lines up as a table."""
    x0, x1 = group[0][0], group[0][2]
    partial = [rule for rule in horizontal if x0 - SAME_EXTENT <= rule[0] and rule[2] <= x1 + SAME_EXTENT
               and rule[2] - rule[0] < x1 - x0 - 2 * SAME_EXTENT]
    bands: list[list[Row] | None] = []  # None: a band that cannot be part of a table
    for top, bottom in zip(group, group[1:]):
        inside = [s for s in spans if x0 - 1 < (s.x0 + s.x1) / 2 < x1 + 1 and bottom[1] < (s.y0 + s.y1) / 2 < top[1]]
        rows = build_rows(inside)
        prose = not rows or any(line.x1 - line.x0 >= FULL_WIDTH * (x1 - x0) for row in rows for line in row.lines)
        bands.append(None if prose else rows)
    out: list[tuple[Table, set[int]]] = []
    run: list[list[Row]] = []
    for band in [*bands, None]:
        if band is not None:
            run.append(band)
            continue
        table = _table(run, x0, x1, partial) if run else None
        if table is not None:
            out.append((table, {id(s) for rows in run for row in rows for line in row.lines for s in line.spans}))
        run = []
    return out


def _table(bands: list[list[Row]], x0: float, x1: float, partial: list[tuple[float, float, float]]) -> Table | None:
    # A header rule is what tells a table from text that merely sits between two rules.
    if len(bands) < 2 or all(len(row.lines) < 2 for row in bands[0]):
        return None
    rows = [row for band in bands for row in band]
    for row in rows:
        join_signs(row)
    if sum(len(row.lines) >= 2 for row in rows) < 2:
        return None
    slots = _column_slots(rows)
    if len(slots) < 2 or _looks_like_prose(rows, slots):
        return None
    header_rows = bands[0]
    body = rows[len(header_rows):]
    placed = [*(_place(row, slots, _underlines(row, partial)) for row in header_rows), *_place_rows(body, slots)]
    if len(placed) < 2 or sum(sum(bool(c) for c in row) >= 2 for row, _ in placed) < MIN_FILLED_ROWS * len(placed):
        return None
    cells, spans, depth = with_header([c for c, _ in placed], [s for _, s in placed], known=len(header_rows))
    return Table(cells=cells, spans=spans, lines=[], x0=x0, y0=min(row.y0 for row in rows), x1=x1,
                 y1=max(row.y1 for row in rows), header_rows=depth)


def _underlines(row: Row, partial: list[tuple[float, float, float]]) -> list[tuple[float, float]]:
    """The extents of the short rules right under a heading row (booktabs' \\cmidrule): each heading above
    one groups the columns the rule spans."""
    below = [rule for rule in partial if row.y0 - 1.5 * _height(row) <= rule[1] <= row.y0 + 0.5 * _height(row)]
    return [(rx0, rx1) for rx0, _, rx1 in below]


def _height(row: Row) -> float:
    return max(line.height for line in row.lines)

