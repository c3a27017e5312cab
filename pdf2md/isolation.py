"""Each PDF converts in a child process under a time and memory limit, so one file cannot take a
shard down. The child lives across PDFs and is replaced when it is killed. It loads its model before
the first PDF, so the model's load time and memory are never charged to a PDF.

The caller may name the PDF it will convert next: that request is sent ahead, so the child starts it the
moment it answers the current one instead of idling while the parent's thread picks its answer up and
asks again (a few ms a PDF, a tenth of a small PDF's conversion when the parent is busy with S3)."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import resource
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pdf2md.convert import Conversion, ConversionError, ConvertOptions, convert_pdf
from pdf2md.convert.backends import BackendUnavailable, load_backend
from pdf2md.convert.pipeline import Plan, model_backend_for, plan_pdf

log = logging.getLogger(__name__)

ConvertFn = Callable[[Path, ConvertOptions], Conversion]
"""What a child runs on each PDF: convert_pdf, or (tests) a module-level stand-in the child can import."""

_POLL_S = 0.05
_PAGE = os.sysconf("SC_PAGE_SIZE")


class IsolatedConverter:
    """`convert()` (or `plan()`) one PDF at a time in a long-lived child; limits enforced from the parent.

    `convert(path, upcoming=next_path)` sends `next_path` ahead; the next call must then be for it (any other
    request first replaces the child, dropping the request sent ahead).

    :param load_model: whether the child loads the model backend and reads model pages itself; a child that
        only plans (its model pages go to a gpu_feeder.GpuFeeder) loads none and runs under the CPU cap.
    """

    sends_ahead = True
    """shard_pipeline's cue that handing this converter its next PDF early keeps its child busy."""

    def __init__(
        self, options: ConvertOptions, timeout_s: float, memory_mb: int, convert: ConvertFn = convert_pdf, *, load_model: bool = True
    ) -> None:
        self.options = options
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.load_model = load_model
        self._convert = convert
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._baseline = 0
        self._ahead: tuple[str, str] | None = None
        """The request sent ahead, which the child starts when it sends its current answer."""
        self._answered_at = 0.0

    def __enter__(self) -> IsolatedConverter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send(None)
            except OSError:
                pass
        self._kill()

    def start(self, cancel: Callable[[], bool] = lambda: False) -> None:
        """Start the child and load its model now (else the first PDF does); raises ConversionError as convert() would."""
        self._ensure_child(cancel)

    def convert(self, path: Path, cancel: Callable[[], bool] = lambda: False, upcoming: Path | None = None) -> Conversion:
        """Convert `path` or raise ConversionError (timeout, resource-limit, crash → corrupt, ...).

        `cancel` is polled while the child works: when it turns true the PDF is cut as `interrupted`.
        `upcoming`, the PDF the next call converts, is sent ahead; its time limit counts from the moment
        the child starts it. A child replaced (killed, crashed) loses it, and the next call sends it again.
        """
        result: Conversion = self._request("convert", path, cancel, upcoming)
        return result

    def plan(self, path: Path, cancel: Callable[[], bool] = lambda: False) -> Plan:
        """Open and route `path` in the child (the text layer read, model pages left for the caller), under the
        same limits as `convert`."""
        result: Plan = self._request("plan", path, cancel)
        return result

    def _request(self, kind: str, path: Path, cancel: Callable[[], bool], upcoming: Path | None = None) -> Any:
        request = (kind, str(path))
        if self._ahead is not None and self._ahead != request:
            log.warning("converter asked for %s, not the PDF sent ahead (%s): replacing its child", path, self._ahead[1])
            self._kill()
        conn = self._ensure_child(cancel)
        if self._ahead == request:
            started = self._answered_at
        else:
            conn.send(request)
            started = time.monotonic()
        self._ahead = None
        if upcoming is not None:
            self._ahead = (kind, str(upcoming))
            conn.send(self._ahead)
        limit_bytes = self._baseline + self.memory_mb * 1024 * 1024
        late = ConversionError("timeout", f"conversion took longer than {self.timeout_s:g} s")
        answer, *payload = self._watch(conn, cancel, "this PDF was converting", _crash_error, late, limit_bytes, started)
        self._answered_at = time.monotonic()
        if answer == "ok":
            return payload[0]
        raise ConversionError(payload[0], payload[1])

    def _ensure_child(self, cancel: Callable[[], bool]) -> Connection:
        """The running child, or a new one once it has loaded its model (its memory then is the baseline)."""
        if self._proc is not None and self._proc.is_alive() and self._conn is not None:
            return self._conn
        self._kill()
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=_child_main, args=(child, self.options, self.memory_mb, self._convert, self.load_model), name="pdf2md-convert", daemon=True
        )
        self._proc.start()
        child.close()
        self._conn = parent
        late = ConversionError("backend-unavailable", f"the model did not load within {self.timeout_s:g} s")
        _ready, rss = self._watch(parent, cancel, "the model was loading", _load_error, late)
        self._baseline = int(rss)
        log.info("converter child ready: %.0f MB resident before its first PDF", rss / 2**20)
        return parent

    def _watch(
        self,
        conn: Connection,
        cancel: Callable[[], bool],
        doing: str,
        died: Callable[[int | None], ConversionError],
        late: ConversionError,
        limit_bytes: int | None = None,
        started: float | None = None,
    ) -> tuple[Any, ...]:
        """The child's next message, killing it first if the shard stops, time runs out (counted from
        `started`, default now) or memory passes the limit."""
        deadline = (time.monotonic() if started is None else started) + self.timeout_s
        while not conn.poll(_POLL_S):
            if cancel():
                self._kill()
                raise ConversionError("interrupted", f"the shard was stopped while {doing}")
            if not self._proc.is_alive():
                code = self._proc.exitcode
                self._kill()
                if cancel():
                    raise ConversionError("interrupted", f"the shard was stopped while {doing}")
                raise died(code)
            if time.monotonic() > deadline:
                self._kill()
                raise late
            if limit_bytes is not None and rss_bytes(self._proc.pid) > limit_bytes:
                self._kill()
                raise ConversionError("resource-limit", f"conversion used more than {self.memory_mb} MB of memory")
        try:
            message: tuple[Any, ...] = conn.recv()
        except (EOFError, OSError):
            code = self._proc.exitcode if self._proc else None
            self._kill()
            raise died(code) from None
        return message

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        self._ahead = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if proc is not None and proc.is_alive():
            proc.kill()
        if proc is not None:
            proc.join(5)


class ConverterPool:
    """`size` IsolatedConverters, one per parallel PDF, each its own child under its own time and memory limits.

    A converter is used by one thread at a time: the pool does not schedule, a shard's thread per converter
    does (shard_pipeline). Closing stops the children in parallel, so a stopping shard waits for the slowest only.
    """

    def __init__(
        self, options: ConvertOptions, timeout_s: float, memory_mb: int, size: int, convert: ConvertFn = convert_pdf
    ) -> None:
        if size < 1:
            raise ValueError(f"a converter pool needs at least one process, got {size}")
        self.converters: Sequence[IsolatedConverter] = tuple(
            IsolatedConverter(options, timeout_s, memory_mb, convert) for _ in range(size)
        )

    def __enter__(self) -> ConverterPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[IsolatedConverter]:
        return iter(self.converters)

    def __len__(self) -> int:
        return len(self.converters)

    def start(self, cancel: Callable[[], bool] = lambda: False) -> None:
        """Start every child now, in parallel (else each starts with its first PDF); one that fails is
        logged, and its first PDF tries again."""
        in_parallel([partial(start_or_log, converter.start, cancel) for converter in self.converters], "start")

    def close(self) -> None:
        in_parallel([converter.close for converter in self.converters], "close")


def in_parallel(calls: Sequence[Callable[[], object]], name: str) -> None:
    """Run each call on a thread of its own and wait for them all: a pool's children start or stop
    together, so the pool waits for the slowest only."""
    with ThreadPoolExecutor(len(calls), thread_name_prefix=f"pdf2md-{name}") as pool:
        list(pool.map(lambda call: call(), calls))


def start_or_log(start: Callable[[Callable[[], bool]], None], cancel: Callable[[], bool]) -> None:
    """Start a child ahead of its first PDF; a failure is that PDF's to report (it starts the child again)."""
    try:
        start(cancel)
    except ConversionError as exc:
        log.warning("converter did not start (its first PDF will try again): %s", exc.message)


def _load_error(exitcode: int | None) -> ConversionError:
    return ConversionError("backend-unavailable", f"the converter process died loading the model (exit code {exitcode})")


def _crash_error(exitcode: int | None) -> ConversionError:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        return ConversionError("corrupt", f"the PDF engine crashed on this file ({name})")
    return ConversionError("corrupt", f"the converter process died (exit code {exitcode})")


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _child_main(
    conn: Connection, options: ConvertOptions, memory_mb: int, convert: ConvertFn = convert_pdf, load_model: bool = True
) -> None:
    # Spot reclaim signals the whole process group: the parent decides what happens to this PDF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    model = None if options.backend == "text" or not load_model else options.model or model_backend_for(options.backend)
    if model != "dolphin":
        _limit_address_space(memory_mb)
    if model:
        _load_model(model)
    conn.send(("ready", rss_bytes(os.getpid())))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        kind, path = request
        conn.send(_convert_one(plan_pdf if kind == "plan" else convert, Path(path), options))


def _load_model(name: str) -> None:
    """Load the backend now; one that cannot load is reported by each PDF that needs it."""
    try:
        load_backend(name)
    except BackendUnavailable as exc:
        log.warning("model backend %s unavailable: %s", name, exc)


def _convert_one(convert: Callable[[Path, ConvertOptions], Any], path: Path, options: ConvertOptions) -> tuple[Any, ...]:
    try:
        return ("ok", convert(path, options))
    except ConversionError as exc:
        return ("err", exc.error_class, exc.message)
    except MemoryError:
        return ("err", "resource-limit", "conversion ran out of memory")
    except Exception as exc:  # noqa: BLE001 - any converter bug becomes this PDF's failure, not the shard's
        log.exception("converter failed on %s", path)
        return ("err", "conversion-error", f"{type(exc).__name__}: {exc}"[:500])


def _limit_address_space(memory_mb: int) -> None:
    """A hard cap for CPU backends (CUDA maps more address space than it uses, so not where Dolphin runs,
    asked for or chosen by `auto`)."""
    cap = memory_mb * 1024 * 1024 * 2
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
