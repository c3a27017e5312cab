"""Pages of several PDFs share Dolphin's GPU batches inside a shard: one process holds the model, the CPU work
of every PDF runs beside it in the isolated converter children.

A shard with Dolphin runs three kinds of processes:

* planners: isolation.IsolatedConverter children that open a PDF, read its text layer and route its pages
  (`plan`), under the per-PDF time and memory limits and the CPU address-space cap. They load no model, so
  `auto` does not import torch in each of them;
* one GPU feeder (this module's child) holding the model and a dolphin.scheduler.PageScheduler: it renders
  the model pages of every PDF handed to it and reads them in shared batches, layout and element stages
  alike; a PDF's pages come back when its last page is read;
* the shard itself, where each pipeline thread (a FedConverter) plans a PDF in a free planner, hands its
  model pages to the feeder, waits, and assembles the Markdown. Text-only PDFs never reach the feeder.

Limits. A PDF's time limit covers its planning and then, from the round its first model page enters, its
model pages (the time it waits behind other PDFs is not charged to it, as the time it waits for a download
is not). The scheduler enforces it between model calls; a round that does not finish within a whole PDF's
limit means a stuck model call: the feeder is killed. The feeder's memory limit
(PDF2MD_GPU_FEEDER_MEMORY_MB, default the per-PDF limit) bounds the whole process's growth above its
loaded model, without the address-space cap (CUDA maps far more than it uses): past it the feeder is killed.
A feeder that dies (killed for memory or a stall, or crashed) fails the PDFs it held; each is read again
once in a fresh feeder, then fails (`resource-limit`, `timeout` or `conversion-error`). One PDF failing or
timing out inside a shared batch fails alone (PageScheduler). On a stop, waiting PDFs are cancelled in the
feeder and come back `interrupted` at once; the pool's close kills the feeder.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium

from pdf2md.contracts import ErrorKind
from pdf2md.convert import Conversion, ConversionError, ConvertOptions
from pdf2md.convert.backends import BackendUnavailable, PageOutput, load_backend
from pdf2md.convert.document import open_pdf
from pdf2md.convert.dolphin.render import PDFIUM_LOCK
from pdf2md.convert.dolphin.scheduler import PAGES_PER_ROUND, DocumentResult
from pdf2md.convert.pipeline import assemble
from pdf2md.isolation import IsolatedConverter, in_parallel, rss_bytes, start_or_log

log = logging.getLogger(__name__)

ENV_FEEDER_MEMORY_MB = "PDF2MD_GPU_FEEDER_MEMORY_MB"
"""The GPU feeder's memory limit in MB above its loaded model (default: the per-PDF limit)."""
_POLL_S = 0.05

BackendFactory = Callable[[str], Any]
"""Model name -> a backend with `scheduler()` and `render(doc, pages)` (DolphinBackend); module-level, the child imports it."""
ErrorInfo = tuple[str, str]
"""(error class, message): a PDF's failure as it crosses the pipe."""


def feeder_memory_mb(env: Mapping[str, str], pdf_memory_mb: int) -> int:
    """The feeder's memory limit: PDF2MD_GPU_FEEDER_MEMORY_MB, else the per-PDF limit (it renders at a fixed
    resolution, a round of pages at a time, so it grows like one PDF, not like all it holds)."""
    raw = env.get(ENV_FEEDER_MEMORY_MB)
    if not raw:
        return pdf_memory_mb
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{ENV_FEEDER_MEMORY_MB} must be an integer (MB), got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{ENV_FEEDER_MEMORY_MB} must be >= 1, got {value}")
    return value


# --- the feeder process ---------------------------------------------------------------------------


def _feeder_main(conn: Connection, options: ConvertOptions, factory: BackendFactory) -> None:
    """Load the model, then read the pages of every PDF sent, round after round, answering each when done."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the shard decides what happens on a stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    backend: Any = None
    unavailable = ""
    try:
        backend = factory(options.model)
    except BackendUnavailable as exc:
        unavailable = str(exc)
        log.warning("model backend %s unavailable: %s", options.model, exc)
    scheduler = backend.scheduler() if backend is not None else None
    conn.send(("ready", rss_bytes(os.getpid())))
    inbox: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
    cancelled: set[int] = set()
    lock = threading.Lock()

    def receive() -> None:
        """Cancels act at once (the scheduler drops the PDF at its next model call); the rest waits for a round's end."""
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = None
            if message is not None and message[0] == "cancel":
                with lock:
                    cancelled.add(message[1])
                if scheduler is not None:
                    scheduler.cancel(message[1])
                continue
            inbox.put(message)
            if message is None:
                return

    threading.Thread(target=receive, name="feeder-receive", daemon=True).start()
    docs: dict[int, ExitStack] = {}
    while True:
        idle = scheduler is None or not scheduler.pending
        for message in _drain(inbox, block=idle):
            if message is None:
                return
            _, doc_id, path, pages, budget_s = message
            with lock:
                gone = doc_id in cancelled
            if gone or scheduler is None:
                conn.send(("done", doc_id, None, ("interrupted", "cancelled") if gone else ("backend-unavailable", unavailable)))
                continue
            stack = ExitStack()
            try:
                with PDFIUM_LOCK:  # another PDF's pages may be rendering on a prefetch thread
                    doc = stack.enter_context(open_pdf(Path(path), options.passwords, options.max_pages))
                scheduler.submit(doc_id, backend.render(doc, pages), budget_s=budget_s)
            except Exception as exc:  # noqa: BLE001 - this PDF fails, the feeder goes on
                _close(stack)
                conn.send(("done", doc_id, None, error_info(exc)))
                continue
            docs[doc_id] = stack
        if scheduler is not None and scheduler.pending:
            for result in scheduler.step():
                _close(docs.pop(result.doc_id))
                conn.send(_answer(result))
            conn.send(("round",))


def _drain(inbox: queue.Queue[tuple[Any, ...] | None], block: bool) -> Iterator[tuple[Any, ...] | None]:
    """Every message waiting (after the first, when `block`, waiting for one)."""
    if block:
        yield inbox.get()
    while True:
        try:
            yield inbox.get_nowait()
        except queue.Empty:
            return


def _close(stack: ExitStack) -> None:
    with PDFIUM_LOCK:
        stack.close()


def _answer(result: DocumentResult) -> tuple[Any, ...]:
    if result.error is None:
        return ("done", result.doc_id, result.pages, None)
    return ("done", result.doc_id, None, error_info(result.error))


def error_info(exc: BaseException) -> ErrorInfo:
    """A PDF's failure inside the feeder as (error class, message), classified as a converter child would."""
    if isinstance(exc, ConversionError):
        return exc.error_class, exc.message
    if isinstance(exc, pdfium.PdfiumError):
        return "corrupt", f"pdfium cannot read a page: {exc}"
    if isinstance(exc, MemoryError):
        return "resource-limit", "conversion ran out of memory"
    return "conversion-error", f"{type(exc).__name__}: {exc}"[:500]


# --- the shard's side -----------------------------------------------------------------------------


@dataclass(eq=False)
class _Waiter:
    """One PDF handed to a feeder process: settled by its answer, or by the process's death."""

    doc_id: int
    done: threading.Event = field(default_factory=threading.Event)
    pages: dict[int, PageOutput] | None = None
    error: ErrorInfo | None = None
    died: ConversionError | None = None

    def settle(self, pages: dict[int, PageOutput] | None, error: ErrorInfo | None) -> None:
        self.pages, self.error = pages, error
        self.done.set()

    def bury(self, why: ConversionError) -> None:
        self.died = why
        self.done.set()


class _FeederProcess:
    """One feeder child and the thread that watches it: answers, death, memory, and rounds that stall."""

    def __init__(self, options: ConvertOptions, factory: BackendFactory, timeout_s: float, memory_mb: int) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc: Any = ctx.Process(target=_feeder_main, args=(child, options, factory), name="pdf2md-gpu-feeder", daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.died: ConversionError | None = None
        self._waiters: dict[int, _Waiter] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._heard = time.monotonic()
        self._limit_bytes = 0

    def load(self, cancel: Callable[[], bool]) -> None:
        """Wait for the model to load (its memory then is the baseline), then start watching."""
        deadline = time.monotonic() + self.timeout_s
        while not self.conn.poll(_POLL_S):
            if cancel():
                self.kill()
                raise ConversionError("interrupted", "the shard was stopped while the model was loading")
            if not self.proc.is_alive():
                self.kill()
                raise ConversionError("backend-unavailable", f"the GPU feeder died loading the model (exit code {self.proc.exitcode})")
            if time.monotonic() > deadline:
                self.kill()
                raise ConversionError("backend-unavailable", f"the model did not load within {self.timeout_s:g} s")
        try:
            _ready, rss = self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise ConversionError("backend-unavailable", "the GPU feeder died loading the model") from None
        self._limit_bytes = int(rss) + self.memory_mb * 2**20
        log.info("GPU feeder ready: %.0f MB resident with its model, limit %d MB above that", rss / 2**20, self.memory_mb)
        threading.Thread(target=self._watch, name="pdf2md-feeder-watch", daemon=True).start()

    def submit(self, doc_id: int, path: Path, pages: Sequence[int], budget_s: float) -> _Waiter:
        waiter = _Waiter(doc_id)
        with self._lock:
            if self.died is not None:
                waiter.bury(self.died)
                return waiter
            if not self._waiters:
                self._heard = time.monotonic()  # an idle feeder is not a stalled one
            self._waiters[doc_id] = waiter
        self._send(("submit", doc_id, str(path), list(pages), budget_s))
        return waiter

    def cancel(self, doc_id: int) -> None:
        self._send(("cancel", doc_id))

    def close(self) -> None:
        """Stop the feeder now (a model call may run for seconds; the shard's stop window is short)."""
        self._die(ConversionError("interrupted", "the GPU feeder was closed"))

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def _send(self, message: tuple[Any, ...] | None) -> None:
        try:
            with self._send_lock:
                self.conn.send(message)
        except (OSError, ValueError):  # a dead feeder: its watcher buries the waiters
            pass

    def _watch(self) -> None:
        """Settle answers as they come; bury every waiter when the feeder dies or has to be killed."""
        while self.died is None:
            try:
                if self.conn.poll(_POLL_S):
                    self._heard = time.monotonic()
                    self._take(self.conn.recv())
                    continue
            except (EOFError, OSError, ValueError):
                self._die(self._crash_error())
                return
            if not self.proc.is_alive():
                self._die(self._crash_error())
            elif rss_bytes(self.proc.pid) > self._limit_bytes:
                self._die(ConversionError("resource-limit", f"the GPU feeder used more than {self.memory_mb} MB of memory"))
            elif self._stalled():
                self._die(ConversionError("timeout", f"a round of model calls took longer than {self.timeout_s:g} s"))

    def _take(self, message: tuple[Any, ...]) -> None:
        if message[0] != "done":
            return
        _, doc_id, pages, error = message
        with self._lock:
            waiter = self._waiters.pop(doc_id, None)
        if waiter is not None:
            waiter.settle(pages, error)

    def _stalled(self) -> bool:
        with self._lock:
            busy = bool(self._waiters)
        return busy and time.monotonic() - self._heard > self.timeout_s

    def _crash_error(self) -> ConversionError:
        code = self.proc.exitcode
        name = signal.Signals(-code).name if code is not None and code < 0 else f"exit code {code}"
        return ConversionError("conversion-error", f"the GPU feeder died while reading this PDF's pages ({name})")

    def _die(self, why: ConversionError) -> None:
        with self._lock:
            if self.died is not None:
                return
            self.died = why
            waiters, self._waiters = list(self._waiters.values()), {}
        if why.error_class != "interrupted":
            log.warning("GPU feeder lost (%s): the %d PDF(s) in it are read again once", why.message, len(waiters))
        self.kill()
        for waiter in waiters:
            waiter.bury(why)


class GpuFeeder:
    """The shard's handle on the feeder process: `read` a PDF's model pages from any thread; restarted when it dies.

    :param options: the shard's options; `options.model` names the model backend the feeder loads.
    :param timeout_s: the per-PDF time limit (and the model's load limit, as for a converter child).
    :param memory_mb: the feeder's memory limit above its loaded model (feeder_memory_mb).
    :param factory: builds the backend in the child (tests pass a module-level stand-in).
    """

    def __init__(self, options: ConvertOptions, timeout_s: float, memory_mb: int, factory: BackendFactory = load_backend) -> None:
        self.options = options
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.factory = factory
        self.restarts = 0
        self.fault: ConversionError | None = None
        """Set by the first PDF failed `wrong-generation` (dolphin/guard.py): a configuration fault the shard stops on."""
        self._closed = False
        self._process: _FeederProcess | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count()

    @property
    def pid(self) -> int | None:
        """The running feeder's process id (None before the first start)."""
        process = self._process
        return None if process is None else process.proc.pid

    def start(self, cancel: Callable[[], bool] = lambda: False) -> None:
        """Start the feeder and load its model now (else the first PDF with model pages does)."""
        self._running(cancel)

    def read(self, path: Path, pages: Sequence[int], budget_s: float, cancel: Callable[[], bool]) -> dict[int, PageOutput]:
        """The model's output for `pages` of the PDF at `path`, or ConversionError; a feeder death retries once."""
        for attempt in (1, 2):
            process = self._running(cancel)
            waiter = process.submit(next(self._ids), path, pages, budget_s)
            while not waiter.done.wait(_POLL_S):
                if cancel():
                    process.cancel(waiter.doc_id)
                    raise ConversionError("interrupted", "the shard was stopped while the GPU read this PDF's pages")
            if waiter.died is None:
                if waiter.error is not None:
                    error = ConversionError(*waiter.error)
                    if error.error_class == ErrorKind.WRONG_GENERATION and self.fault is None:
                        self.fault = error
                    raise error
                assert waiter.pages is not None
                return waiter.pages
            if waiter.died.error_class == "interrupted":
                raise waiter.died
            if attempt == 2:
                raise ConversionError(waiter.died.error_class, f"{waiter.died.message}, twice")
            log.warning("%s: the GPU feeder was lost (%s); reading its pages again", path.name, waiter.died.message)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            process, self._process = self._process, None
        if process is not None:
            process.close()

    def _running(self, cancel: Callable[[], bool]) -> _FeederProcess:
        """The live feeder, or a new one once its model has loaded (one thread starts it; the others wait)."""
        with self._lock:
            if self._closed:
                raise ConversionError("interrupted", "the GPU feeder was closed")
            if self._process is not None and self._process.died is None:
                return self._process
            if self._process is not None:
                self.restarts += 1
                log.warning("starting a new GPU feeder (restart %d)", self.restarts)
            process = _FeederProcess(self.options, self.factory, self.timeout_s, self.memory_mb)
            self._process = process
            try:
                process.load(cancel)
            except ConversionError as exc:
                process.died = exc  # its watcher never started: nothing else settles it
                raise
            return process


class FedConverter:
    """One pipeline thread's converter: plan in a free planner child, model pages through the feeder, assemble here.

    There are more FedConverters than planners: the ones waiting on the GPU hold no CPU child, so the CPUs
    plan the next PDFs while the feeder pools the waiting ones' pages into its batches.
    """

    def __init__(self, planners: queue.Queue[IsolatedConverter], feeder: GpuFeeder, timeout_s: float) -> None:
        self.planners = planners
        self.feeder = feeder
        self.timeout_s = timeout_s

    sends_ahead = False
    """Planners are shared: a PDF held back for this thread would wait while another planner is free."""

    def start(self, cancel: Callable[[], bool]) -> None:
        self.feeder.start(cancel)

    def convert(self, path: Path, cancel: Callable[[], bool], upcoming: Path | None = None) -> Conversion:
        """Plan `path`, read its model pages through the feeder, assemble (`upcoming` is not used: sends_ahead)."""
        planner = self._take_planner(cancel)
        began = time.perf_counter()
        try:
            plan = planner.plan(path, cancel)
        finally:
            self.planners.put(planner)
        plan = dataclasses.replace(plan, started=began)
        if not plan.model_pages:
            return assemble(plan, {})
        if plan.model != self.feeder.options.model:
            raise ConversionError("backend-unavailable", f"pages for {plan.model!r}, but the GPU feeder runs {self.feeder.options.model!r}")
        left = self.timeout_s - (time.perf_counter() - began)
        if left <= 0:
            raise ConversionError("timeout", f"conversion took longer than {self.timeout_s:g} s")
        return assemble(plan, self.feeder.read(path, plan.model_pages, left, cancel))

    def _take_planner(self, cancel: Callable[[], bool]) -> IsolatedConverter:
        while True:
            if cancel():
                raise ConversionError("interrupted", "the shard was stopped before this PDF started")
            try:
                return self.planners.get(timeout=_POLL_S)
            except queue.Empty:
                continue


class FeederPool:
    """isolation.ConverterPool's counterpart where pages go to Dolphin: `size` planner children, one GPU feeder,
    and `size + lanes` FedConverters for the shard's pipeline threads.

    :param lanes: PDFs that may wait on the GPU beyond one per planner (default: a round of pages' worth).
    """

    def __init__(
        self,
        options: ConvertOptions,
        timeout_s: float,
        memory_mb: int,
        size: int,
        *,
        feeder_memory_mb: int,
        lanes: int = PAGES_PER_ROUND,
        factory: BackendFactory = load_backend,
    ) -> None:
        if size < 1:
            raise ValueError(f"a feeder pool needs at least one planner process, got {size}")
        if not options.model:
            raise ValueError("a feeder pool needs options.model (the model backend the feeder loads)")
        self.planners = tuple(IsolatedConverter(options, timeout_s, memory_mb, load_model=False) for _ in range(size))
        idle: queue.Queue[IsolatedConverter] = queue.Queue()
        for planner in self.planners:
            idle.put(planner)
        self.feeder = GpuFeeder(options, timeout_s, feeder_memory_mb, factory)
        self.converters: Sequence[FedConverter] = tuple(FedConverter(idle, self.feeder, timeout_s) for _ in range(size + max(0, lanes)))

    def __enter__(self) -> FeederPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, cancel: Callable[[], bool] = lambda: False) -> None:
        """Load the model in the feeder and start the planners now, in parallel (see ConverterPool.start)."""
        starts = [self.feeder.start, *(planner.start for planner in self.planners)]
        in_parallel([partial(start_or_log, start, cancel) for start in starts], "start")

    def close(self) -> None:
        in_parallel([self.feeder.close, *(p.close for p in self.planners)], "close")
