"""Sorting more lines than fit in memory: sorted runs spilled to disk, merged lazily.

The planner's memory must not grow with the collection (ten million keys would not fit an Airflow
worker), so everything it has to order goes through here: lines of bytes, compared as bytes, held
CHUNK_BYTES at a time. Callers put the sort key first in each line, in a form whose byte order is the
order they want (see sort_token).
"""

from __future__ import annotations

import heapq
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

CHUNK_BYTES = 32 * 1024 * 1024
"""Line bytes held before a run is sorted and spilled: with list overhead, about 45 MB of memory."""
MAX_FANIN = 128
"""Runs merged at once; beyond it runs are merged in groups first (open files stay few)."""
_READ_BUFFER = 256 * 1024


def sort_token(text: str) -> bytes:
    """`text` as bytes with no byte below 0x20, injective: a field that sorts consistently and can be
    followed by a tab separator (which then sorts before any longer value with the same start)."""
    return text.encode("unicode_escape")


class ExternalSort:
    """Add lines (each ending in b'\\n'), then read them back in byte order, once."""

    def __init__(self, chunk_bytes: int | None = None, max_fanin: int | None = None) -> None:
        self._chunk_bytes = chunk_bytes or CHUNK_BYTES
        self._max_fanin = max_fanin or MAX_FANIN
        self._lines: list[bytes] = []
        self._held = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._runs: list[Path] = []
        self._made = 0
        self.count = 0

    def __enter__(self) -> ExternalSort:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def add(self, line: bytes) -> None:
        self._lines.append(line)
        self._held += len(line)
        self.count += 1
        if self._held >= self._chunk_bytes:
            self._spill()

    def extend(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            self.add(line)

    def sorted(self) -> Iterator[bytes]:
        """Every line added, in byte order; runs on disk are deleted as the merge finishes."""
        if not self._runs:
            self._lines.sort()
            lines, self._lines, self._held = self._lines, [], 0
            yield from lines
            return
        self._spill()
        while len(self._runs) > self._max_fanin:
            groups = [self._runs[i : i + self._max_fanin] for i in range(0, len(self._runs), self._max_fanin)]
            self._runs = [self._merge_to_run(group) for group in groups]
        files = [run.open("rb", buffering=_READ_BUFFER) for run in self._runs]
        try:
            yield from heapq.merge(*files)
        finally:
            for fh in files:
                fh.close()
            self.close()

    def close(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        self._runs, self._lines, self._held = [], [], 0

    def _new_run(self) -> tuple[Path, BinaryIO]:
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="pdf2md-sort-")
        self._made += 1
        path = Path(self._dir.name) / f"run-{self._made:06d}"
        return path, path.open("wb", buffering=_READ_BUFFER)

    def _spill(self) -> None:
        if not self._lines:
            return
        self._lines.sort()
        path, fh = self._new_run()
        with fh:
            fh.writelines(self._lines)
        self._runs.append(path)
        self._lines, self._held = [], 0

    def _merge_to_run(self, group: list[Path]) -> Path:
        path, out = self._new_run()
        files = [run.open("rb", buffering=_READ_BUFFER) for run in group]
        with out:
            out.writelines(heapq.merge(*files))
        for fh, run in zip(files, group, strict=True):
            fh.close()
            run.unlink()
        return path
