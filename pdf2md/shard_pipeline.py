"""A shard's PDFs as a pipeline: the next ones download while the current ones convert, and finished Markdown
uploads in the background, so neither the CPUs nor a GPU wait on S3.

Three kinds of threads share bounded queues:

* downloaders claim PDFs in manifest order and fetch each to disk; they wait while the PDFs on disk
  (downloaded, waiting or converting) would pass `Bounds.disk_bytes` or `Bounds.queued_pdfs`;
* one thread per isolated converter (isolation.ConverterPool) converts them, each PDF under its converter
  child's own time and memory limits (with Dolphin, gpu_feeder.FeederPool: the threads plan PDFs in CPU
  children and share one GPU process's batches);
* uploaders publish the Markdown; converters wait while the Markdown not yet written would pass
  `Bounds.upload_bytes`.

Memory and disk are capped by bytes whatever the PDFs' sizes: a single PDF bigger than a bound still passes,
alone. Each PDF is settled exactly once (published, skipped or failed): a thread left behind at a stop
cannot record anything afterwards. On a stop no new PDF starts, conversions in flight are cut (their
converters watch the same flag), finished Markdown keeps being written for `Bounds.flush_s`, and every PDF
not settled by then is recorded `interrupted`.

The shard's S3 side comes in as callables (ShardIO), so this module knows nothing of manifests or buckets.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from pdf2md import machine
from pdf2md.contracts import ErrorKind
from pdf2md.convert import Conversion, ConversionError
from pdf2md.isolation import start_or_log

log = logging.getLogger(__name__)

T = TypeVar("T")
_POLL_S = 0.05
MAX_IO_THREADS = 64
"""Downloaders (and, apart, uploaders) at most by default: the S3 client's connection pool must hold both."""
NOT_STARTED = "the shard was stopped before this PDF started"
NOT_WRITTEN = "the shard was stopped before this PDF's Markdown was written"


class _Skip:
    def __repr__(self) -> str:
        return "SKIP"


SKIP: Any = _Skip()
"""What `ShardIO.fetch` returns for a PDF that needs no conversion (its output is already up to date)."""


class ItemFailed(Exception):
    """Raised by `ShardIO.fetch` for a PDF that cannot be fetched; the pipeline records it through `fail`."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message


class Converter(Protocol):
    """isolation.IsolatedConverter's interface, as the pipeline uses it (one thread per converter)."""

    sends_ahead: bool
    """Whether `convert` should be told the converter's next PDF (`upcoming`) when one is already waiting:
    its own child then starts it without a round trip through this process. Converters that share their
    workers (gpu_feeder's) say no: a PDF held for one of them would wait while another is free."""

    def start(self, cancel: Callable[[], bool]) -> None: ...

    def convert(self, path: Path, cancel: Callable[[], bool], upcoming: Path | None = None) -> Conversion: ...


@dataclass(frozen=True)
class ShardIO(Generic[T]):
    """The shard's side of the pipeline.

    `fetch(item, dest)` writes the PDF to `dest` and returns what `publish` needs (e.g. the ETag of the
    output it replaces), SKIP, or raises ItemFailed. `publish(item, context, conversion)` writes the
    Markdown and records the outcome itself; publishes and fetches run concurrently, so what they record
    must be thread-safe. `fail(item, error_class, message)` and `skip(item)` record a PDF settled by the
    pipeline; they and `progress()` (called after each settled PDF) never run concurrently with each other.
    """

    fetch: Callable[[T, Path], Any]
    publish: Callable[[T, Any, Conversion], None]
    fail: Callable[[T, str, str], None]
    skip: Callable[[T], None]
    size_of: Callable[[T], int]
    progress: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Bounds:
    """How far the pipeline runs ahead of its converters (0: derived from the number of converters)."""

    disk_bytes: int = 1 << 30
    """PDFs on disk: downloaded and waiting, or converting."""
    queued_pdfs: int = 0
    """PDFs on disk, counted (0: one per downloader plus two per converter: every downloader can be busy
    while each converter has its next PDF waiting)."""
    upload_bytes: int = 64 << 20
    """Markdown converted and not yet written (held in memory)."""
    downloaders: int = 0
    """Threads fetching PDFs (0: 16 per converter plus 16, MAX_IO_THREADS at most). A small PDF converts in
    5-10 ms: at 100 ms per S3 request a converter needs 10-20 downloads in flight never to wait."""
    uploaders: int = 0
    """Threads writing Markdown (0: as many as the downloaders' default)."""
    flush_s: float = 15.0
    """After a stop, how long finished Markdown keeps being written (the stop window is 30 s in all)."""
    abandon_s: float = 3.0
    """After a stop, how long a download in flight is waited for before its PDF is recorded interrupted."""


class Budget:
    """Bytes and items in flight. `acquire` waits until both fit, or until nothing is held (a single item
    larger than the budget passes alone, so no PDF is refused for its size)."""

    def __init__(self, max_bytes: int, max_items: int | None = None) -> None:
        self.max_bytes = max(1, max_bytes)
        self.max_items = max_items
        self.bytes = 0
        self.items = 0
        self.peak_bytes = 0
        self.peak_items = 0
        self._cond = threading.Condition()

    def acquire(self, n: int, give_up: Callable[[], bool] = lambda: False) -> bool:
        """Hold `n` bytes and one item; False (nothing held) when `give_up` turns true first."""
        with self._cond:
            while not self._fits(n):
                if give_up():
                    return False
                self._cond.wait(_POLL_S)
            self._hold(n, 1)
            return True

    def resize(self, held: int, actual: int) -> None:
        """An item turned out `actual` bytes, not the `held` it was admitted with (a size the manifest got wrong)."""
        with self._cond:
            self._hold(actual - held, 0)
            self._cond.notify_all()

    def release(self, n: int) -> None:
        with self._cond:
            self._hold(-n, -1)
            self._cond.notify_all()

    def _fits(self, n: int) -> bool:
        if self.items == 0:
            return True
        if self.max_items is not None and self.items >= self.max_items:
            return False
        return self.bytes + n <= self.max_bytes

    def _hold(self, n: int, items: int) -> None:
        self.bytes += n
        self.items += items
        self.peak_bytes = max(self.peak_bytes, self.bytes)
        self.peak_items = max(self.peak_items, self.items)


@dataclass
class _Fetched(Generic[T]):
    index: int
    item: T
    path: Path
    size: int
    context: Any


@dataclass
class _Converted(Generic[T]):
    index: int
    item: T
    context: Any
    conversion: Conversion
    size: int


class ShardPipeline(Generic[T]):
    """Runs `items` through fetch → convert → publish with the given converters (one thread each)."""

    def __init__(
        self,
        items: Sequence[T],
        io: ShardIO[T],
        converters: Sequence[Converter],
        workdir: Path,
        stop: Callable[[], bool],
        bounds: Bounds = Bounds(),
    ) -> None:
        if not converters:
            raise ValueError("a shard pipeline needs at least one converter")
        self.items = items
        self.io = io
        self.converters = converters
        self.workdir = workdir
        self.stop = stop
        self.bounds = bounds
        n = len(converters)
        io_threads = min(MAX_IO_THREADS, 16 * (n + 1))
        self.downloaders = bounds.downloaders or io_threads
        self.uploaders = bounds.uploaders or io_threads
        self.disk = Budget(bounds.disk_bytes, bounds.queued_pdfs or self.downloaders + 2 * n)
        self.outbox = Budget(bounds.upload_bytes)
        self._ready: queue.Queue[_Fetched[T] | None] = queue.Queue()
        self._uploads: queue.Queue[_Converted[T] | None] = queue.Queue()
        self._claims: Iterator[tuple[int, T]] = iter(enumerate(items))
        self._claim_lock = threading.Lock()
        self._settled: set[int] = set()
        self._settle_lock = threading.Lock()
        self._record_lock = threading.Lock()
        self._stopped_at: float | None = None

    # --- the run --------------------------------------------------------------------------------

    def run(self) -> None:
        """Until every item is settled, or the stop window is spent (the rest then recorded interrupted)."""
        downloaders = self._threads("download", self._download_loop, self.downloaders)
        converters = [self._thread(f"convert-{i}", self._convert_loop, c) for i, c in enumerate(self.converters)]
        uploaders = self._threads("upload", self._upload_loop, self.uploaders)
        self._join(downloaders, lambda: self.bounds.abandon_s)
        for _ in converters:
            self._ready.put(None)
        self._join(converters, lambda: self.bounds.abandon_s)
        for _ in uploaders:
            self._uploads.put(None)
        self._join(uploaders, lambda: self.bounds.flush_s + self.bounds.abandon_s)
        left = [(i, item) for i, item in enumerate(self.items) if self._settle(i)]
        for _, item in left:
            self._record(self.io.fail, item, ErrorKind.INTERRUPTED, NOT_STARTED)
        if left:
            log.warning("%d PDF(s) recorded interrupted: the shard was stopped", len(left))
        behind = sum(t.is_alive() for t in downloaders + converters + uploaders)
        if behind:
            log.warning("%d pipeline thread(s) still busy at the stop; what they finish is not recorded", behind)

    def stopped_for(self) -> float | None:
        """Seconds since the stop was first seen (None while running)."""
        if self._stopped_at is None:
            if not self.stop():
                return None
            with self._settle_lock:
                if self._stopped_at is None:
                    self._stopped_at = time.monotonic()
        return time.monotonic() - self._stopped_at

    def _threads(self, name: str, loop: Callable[[], None], count: int) -> list[threading.Thread]:
        return [self._thread(f"{name}-{i}", loop) for i in range(max(1, count))]

    def _thread(self, name: str, loop: Callable[..., None], *args: Any) -> threading.Thread:
        thread = threading.Thread(target=self._guard, args=(loop, *args), name=f"pdf2md-{name}", daemon=True)
        thread.start()
        return thread

    def _guard(self, loop: Callable[..., None], *args: Any) -> None:
        try:
            loop(*args)
        except Exception:  # a pipeline bug must not hang the shard: its items are recorded at the end
            log.exception("shard pipeline thread failed")

    def _join(self, threads: list[threading.Thread], grace_s: Callable[[], float]) -> None:
        """Wait for `threads`; after a stop, for `grace_s()` seconds at most (counted from the stop)."""
        for thread in threads:
            while thread.is_alive():
                thread.join(_POLL_S)
                waited = self.stopped_for()
                if waited is not None and waited > grace_s():
                    return

    # --- the stages -----------------------------------------------------------------------------

    def _download_loop(self) -> None:
        while self.stopped_for() is None and (claim := self._claim()) is not None:
            index, item = claim
            size = max(1, self.io.size_of(item))
            if not self.disk.acquire(size, self.stop):
                self._finish(index, self.io.fail, item, ErrorKind.INTERRUPTED, NOT_STARTED)
                return
            path = self.workdir / f"{index}.pdf"
            try:
                context = self.io.fetch(item, path)
            except ItemFailed as exc:
                self._discard(path, size)
                self._finish(index, self.io.fail, item, exc.error_class, exc.message)
                continue
            except Exception as exc:  # noqa: BLE001 - a fetch bug fails this PDF (retryable), not the shard
                log.exception("fetching PDF %d failed", index)
                self._discard(path, size)
                self._finish(index, self.io.fail, item, ErrorKind.S3_ERROR, f"reading the PDF: {type(exc).__name__}: {exc}")
                continue
            if context is SKIP:
                self._discard(path, size)
                self._finish(index, self.io.skip, item)
                continue
            actual = path.stat().st_size if path.exists() else size
            self.disk.resize(size, actual)
            self._ready.put(_Fetched(index, item, path, actual, context))

    def _convert_loop(self, converter: Converter) -> None:
        start_or_log(converter.start, self.stop)
        job = self._ready.get()
        while job is not None:
            upcoming = self._waiting() if converter.sends_ahead else None
            try:
                conversion = self._convert(converter, job, upcoming)
            finally:
                self._discard(job.path, job.size)
            if conversion is not None:
                self._hand_over(job, conversion)
            job = upcoming if upcoming is not None else self._ready.get()

    def _waiting(self) -> _Fetched[T] | None:
        """A PDF already downloaded and waiting, taken now so that its converter can send it ahead (None when
        none waits, or the end of the shard is next: that marker stays for the thread to see)."""
        try:
            job = self._ready.get_nowait()
        except queue.Empty:
            return None
        if job is None:
            self._ready.put(None)
        return job

    def _hand_over(self, job: _Fetched[T], conversion: Conversion) -> None:
        """Queue the Markdown for upload once the outbox has room (or record the PDF unwritten after a stop)."""
        size = len(conversion.markdown)
        if not self.outbox.acquire(size, self._flush_over):
            self._finish(job.index, self.io.fail, job.item, ErrorKind.INTERRUPTED, NOT_WRITTEN)
            return
        self._uploads.put(_Converted(job.index, job.item, job.context, conversion, size))

    def _convert(self, converter: Converter, job: _Fetched[T], upcoming: _Fetched[T] | None) -> Conversion | None:
        if self.stopped_for() is not None:
            self._finish(job.index, self.io.fail, job.item, ErrorKind.INTERRUPTED, NOT_STARTED)
            return None
        try:
            return converter.convert(job.path, self.stop, upcoming.path if upcoming is not None else None)
        except ConversionError as exc:
            self._finish(job.index, self.io.fail, job.item, exc.error_class, exc.message)
        except Exception as exc:  # noqa: BLE001 - the converter's own bug fails this PDF, not the shard
            log.exception("converting PDF %d failed", job.index)
            self._finish(job.index, self.io.fail, job.item, ErrorKind.CONVERSION_ERROR, f"{type(exc).__name__}: {exc}"[:500])
        return None

    def _upload_loop(self) -> None:
        while (job := self._uploads.get()) is not None:
            try:
                if self._flush_over():
                    self._finish(job.index, self.io.fail, job.item, ErrorKind.INTERRUPTED, NOT_WRITTEN)
                elif self._settle(job.index):
                    self._publish(job)
            finally:
                self.outbox.release(job.size)

    def _publish(self, job: _Converted[T]) -> None:
        try:
            self.io.publish(job.item, job.context, job.conversion)
        except Exception as exc:  # noqa: BLE001 - publish records S3 errors itself; anything else fails this PDF only
            log.exception("publishing PDF %d failed", job.index)
            self._record(self.io.fail, job.item, ErrorKind.S3_ERROR, f"writing the Markdown: {type(exc).__name__}: {exc}")
        self._progress()

    # --- bookkeeping ----------------------------------------------------------------------------

    def _claim(self) -> tuple[int, T] | None:
        with self._claim_lock:
            return next(self._claims, None)

    def _flush_over(self) -> bool:
        waited = self.stopped_for()
        return waited is not None and waited > self.bounds.flush_s

    def _settle(self, index: int) -> bool:
        """Whether the caller is the one to settle item `index` (true once per item)."""
        with self._settle_lock:
            if index in self._settled:
                return False
            self._settled.add(index)
            return True

    def _finish(self, index: int, record: Callable[..., None], *args: Any) -> None:
        if self._settle(index):
            self._record(record, *args)
            self._progress()

    def _record(self, record: Callable[..., None], *args: Any) -> None:
        with self._record_lock:
            record(*args)

    def _progress(self) -> None:
        try:
            self._record(self.io.progress)
        except Exception:  # noqa: BLE001 - progress is advisory
            log.exception("progress callback failed")

    def _discard(self, path: Path, size: int) -> None:
        path.unlink(missing_ok=True)
        self.disk.release(size)


def converter_processes_for(model: str, requested: int, pdf_memory_mb: int, feeder_memory_mb: int = 0) -> int:
    """Converter (or, with Dolphin, planner) children for a shard whose model pages go to `model` ('' for
    none): as many as the machine allows (machine.converter_processes), one CPU left to the GPU feeder
    where Dolphin reads the pages (one model on the GPU, in gpu_feeder.py's process)."""
    return machine.converter_processes(
        requested, pdf_memory_mb=pdf_memory_mb, gpu_feeder=model == "dolphin", feeder_memory_mb=feeder_memory_mb
    )
