"""Dolphin's HTML tables -> Markdown pipe tables when rectangular, clean HTML when cells span."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from html.parser import HTMLParser

_SPANS = ("rowspan", "colspan")


@dataclass
class Cell:
    text: str = ""
    spans: dict[str, int] = field(default_factory=dict)

    @property
    def plain(self) -> bool:
        return all(v <= 1 for v in self.spans.values())


class _TableParser(HTMLParser):
    """Collects rows of cells; tolerant of unclosed tags (a cut loop leaves the table open)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[Cell]] = []
        self._cell: Cell | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._close_cell()
            self.rows.append([])
        elif tag in ("td", "th"):
            self._close_cell()
            if not self.rows:
                self.rows.append([])
            self._cell = Cell(spans={k: _int(v) for k, v in attrs if k in _SPANS})
        elif tag == "br" and self._cell is not None:
            self._cell.text += " "

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th", "tr", "table"):
            self._close_cell()

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.text += data

    def _close_cell(self) -> None:
        if self._cell is not None:
            self._cell.text = " ".join(self._cell.text.split())
            self.rows[-1].append(self._cell)
            self._cell = None

    def close(self) -> None:
        super().close()
        self._close_cell()


def parse_table(markup: str) -> list[list[Cell]]:
    parser = _TableParser()
    parser.feed(markup)
    parser.close()
    return [row for row in parser.rows if row]


def table_markdown(markup: str) -> str | None:
    """A pipe table, or normalised HTML when cells span or rows differ; None when it holds no table."""
    rows = parse_table(markup)
    if not rows:
        return None
    width = len(rows[0])
    if all(cell.plain for row in rows for cell in row) and all(len(row) == width for row in rows):
        return _pipe_table(rows)
    return _html_table(rows)


def _pipe_table(rows: list[list[Cell]]) -> str:
    lines = [_pipe_row(rows[0]), "|" + "---|" * len(rows[0])]
    lines += [_pipe_row(row) for row in rows[1:]]
    return "\n".join(lines)


def _pipe_row(row: list[Cell]) -> str:
    return "| " + " | ".join(cell.text.replace("|", "\\|") for cell in row) + " |"


def _html_table(rows: list[list[Cell]]) -> str:
    body = "".join("<tr>" + "".join(_html_cell(cell) for cell in row) + "</tr>" for row in rows)
    return f"<table>{body}</table>"


def _html_cell(cell: Cell) -> str:
    attrs = "".join(f' {k}="{v}"' for k, v in sorted(cell.spans.items()) if v > 1)
    return f"<td{attrs}>{html.escape(cell.text, quote=False)}</td>"


def _int(value: str | None) -> int:
    try:
        return max(1, int(value or 1))
    except ValueError:
        return 1
